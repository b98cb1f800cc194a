import GeoGateCore

/// MaxMind GeoLite2/GeoIP2 Country CSV: a Blocks-IPv4 or Blocks-IPv6 file
/// (`network,geoname_id,registered_country_geoname_id,...,is_anonymous_proxy,
/// is_satellite_provider`) read with its Locations file (`geoname_id,...,
/// country_iso_code,...`). Columns are found by their header names.
///
/// A network's country is its `geoname_id`'s ISO code, else its registered
/// country's. A network with neither but flagged as an anonymous proxy or a
/// satellite provider keeps that flag as the legacy code A1 or A2.
public enum MaxMindCSV {
    /// geoname id → ISO code; nil for locations without a country (continents).
    public typealias Locations = [UInt32: CountryCode?]

    public static func parseLocations(_ file: SourceFile) throws(ImportError) -> Locations {
        var locations: Locations = [:]
        var idColumn = -1, codeColumn = -1
        // The header is the first line that is not blank (not always line 1).
        var headerSeen = false
        try file.content.withUnsafeBufferPointer { (buffer) throws(ImportError) in
            try TextLines(buffer).forEach { (line, number) throws(ImportError) in
                if line.trimmed.isEmpty { return }
                let fields = Fields(line, separator: UInt8(ascii: ","))
                if !headerSeen {
                    headerSeen = true
                    for i in 0..<min(fields.count, Fields.capacity) {
                        switch fields.string(i) {
                        case "geoname_id": idColumn = i
                        case "country_iso_code": codeColumn = i
                        default: break
                        }
                    }
                    guard idColumn >= 0, codeColumn >= 0 else {
                        throw ImportError(file: file.path, line: number, reason: "not a MaxMind Locations header: needs geoname_id and country_iso_code columns")
                    }
                    return
                }
                guard fields.count > max(idColumn, codeColumn) else {
                    throw ImportError(file: file.path, line: number, reason: "too few fields")
                }
                guard let id = fields[idColumn].decimalValue, id <= UInt64(UInt32.max) else {
                    throw ImportError(file: file.path, line: number, field: idColumn + 1, reason: "bad geoname_id '\(fields[idColumn].text)'")
                }
                let code = fields[codeColumn]
                if code.isEmpty {
                    locations[UInt32(id)] = .some(nil)
                } else if code.count == 2, let cc = CountryCode.validated(code[0], code[1]) {
                    locations[UInt32(id)] = cc
                } else {
                    throw ImportError(file: file.path, line: number, field: codeColumn + 1,
                                      reason: "unknown country code '\(code.text)'")
                }
            }
        }
        if locations.isEmpty { throw ImportError(file: file.path, reason: "empty input: no locations") }
        return locations
    }

    public static func parseBlocks(_ file: SourceFile, locations: Locations, options: ImportOptions) throws(ImportError) -> ImportedSource {
        var sink = RangeSink(file: file, format: .maxmindCSV, options: options)
        var network = -1, geoname = -1, registered = -1, proxy = -1, satellite = -1
        let a1 = CountryCode("A1")!, a2 = CountryCode("A2")!
        var headerSeen = false
        try file.content.withUnsafeBufferPointer { (buffer) throws(ImportError) in
            try TextLines(buffer).forEach { (line, number) throws(ImportError) in
                if line.trimmed.isEmpty { return }
                let fields = Fields(line, separator: UInt8(ascii: ","))
                if !headerSeen {
                    headerSeen = true
                    for i in 0..<min(fields.count, Fields.capacity) {
                        switch fields.string(i) {
                        case "network": network = i
                        case "geoname_id": geoname = i
                        case "registered_country_geoname_id": registered = i
                        case "is_anonymous_proxy": proxy = i
                        case "is_satellite_provider": satellite = i
                        default: break
                        }
                    }
                    guard network >= 0, geoname >= 0, registered >= 0 else {
                        throw ImportError(file: file.path, line: number, reason: "not a MaxMind Blocks header: needs network, geoname_id and registered_country_geoname_id columns")
                    }
                    return
                }
                guard fields.count <= Fields.capacity, fields.count > max(network, geoname, registered, proxy, satellite) else {
                    try sink.invalid(line: number, "wrong number of fields (\(fields.count))")
                    return
                }
                let cidr: CIDR
                switch CIDR.parse(fields[network]) {
                case .success(let c): cidr = c
                case .failure(.badPrefixLength(let n)):
                    try sink.invalid(line: number, field: network + 1, n >= 0 ? "prefix length /\(n) is longer than the family allows" : "bad prefix length in '\(fields[network].text)'")
                    return
                case .failure(.hostBitsSet):
                    try sink.invalid(line: number, field: network + 1, "host bits set in '\(fields[network].text)'")
                    return
                case .failure(.badAddress):
                    try sink.invalid(line: number, field: network + 1, "not a network: '\(fields[network].text)'")
                    return
                }
                var country: CountryCode?
                for column in [geoname, registered] where country == nil {
                    let field = fields[column]
                    if field.isEmpty { continue }
                    guard let id = field.decimalValue, id <= UInt64(UInt32.max), let location = locations[UInt32(id)] else {
                        try sink.invalid(line: number, field: column + 1, "geoname_id '\(field.text)' is not in the Locations file")
                        return
                    }
                    country = location
                }
                if country == nil {
                    if proxy >= 0, fields[proxy].elementsEqual([0x31]) { country = a1 }
                    else if satellite >= 0, fields[satellite].elementsEqual([0x31]) { country = a2 }
                }
                let start = IPAddress(family: cidr.family, value: cidr.first)
                let end = IPAddress(family: cidr.family, value: cidr.last)
                try sink.addChecked(start: start, end: end, country: country, line: number)
            }
        }
        return try sink.finish()
    }
}
