import GeoGateCore

/// RIR delegated and delegated-extended statistics (AFRINIC, APNIC, ARIN, LACNIC,
/// RIPE NCC): `registry|cc|type|start|value|date|status[|opaque-id|...]`.
///
/// Only `ipv4` and `ipv6` records with status `allocated` or `assigned` carry a
/// country; `available` and `reserved` records, `asn` records, the version line
/// and the `*` summary lines are skipped. An IPv4 value is an address count (not
/// always a power of two); an IPv6 value is a prefix length.
enum RIRDelegated {
    static func parse(_ file: SourceFile, options: ImportOptions) throws(ImportError) -> ImportedSource {
        var sink = RangeSink(file: file, format: .rir, options: options)
        var sawVersion = false
        try file.content.withUnsafeBufferPointer { (buffer) throws(ImportError) in
            try TextLines(buffer).forEach { (line, number) throws(ImportError) in
                if line.isBlankOrComment { return }
                let fields = Fields(line, separator: UInt8(ascii: "|"))
                // The version line: "2|ripencc|20240101|..." or "2.3|arin|...".
                if !sawVersion, let first = fields[0].first, first >= 0x30 && first <= 0x39 {
                    sawVersion = true
                    return
                }
                guard fields.count >= 6 else {
                    try sink.invalid(line: number, "expected 'registry|cc|type|start|value|date|status', found \(fields.count) fields")
                    return
                }
                if fields.count >= 6 && fields[5].elementsEqual(Array("summary".utf8)) { return }
                let type = fields[2]
                let isV4 = type.elementsEqual(Array("ipv4".utf8)), isV6 = type.elementsEqual(Array("ipv6".utf8))
                if !isV4 && !isV6 {
                    if type.elementsEqual(Array("asn".utf8)) { return }
                    try sink.invalid(line: number, field: 3, "unknown record type '\(type.text)'")
                    return
                }
                guard fields.count >= 7 else {
                    try sink.invalid(line: number, "expected 7 or more fields, found \(fields.count)")
                    return
                }
                let status = fields[6]
                let delegated = status.elementsEqual(Array("allocated".utf8)) || status.elementsEqual(Array("assigned".utf8))
                if !delegated {
                    if status.elementsEqual(Array("available".utf8)) || status.elementsEqual(Array("reserved".utf8)) {
                        sink.unassignedRanges += 1
                        return
                    }
                    try sink.invalid(line: number, field: 7, "unknown status '\(status.text)'")
                    return
                }
                guard let start = IPAddress.parse(fields[3]), start.family == (isV4 ? .v4 : .v6) else {
                    try sink.invalid(line: number, field: 4, "not an \(isV4 ? "IPv4" : "IPv6") address: '\(fields[3].text)'")
                    return
                }
                guard let value = fields[4].decimalValue else {
                    try sink.invalid(line: number, field: 5, "not a number: '\(fields[4].text)'")
                    return
                }
                let end: UInt128
                if isV4 {
                    guard value >= 1, start.value + UInt128(value) - 1 <= UInt128(UInt32.max) else {
                        try sink.invalid(line: number, field: 5, "address count \(value) does not fit after \(start)")
                        return
                    }
                    end = start.value + UInt128(value) - 1
                } else {
                    guard value <= 128 else {
                        try sink.invalid(line: number, field: 5, "prefix length /\(value) is longer than IPv6 allows")
                        return
                    }
                    let cidr = CIDR(family: .v6, address: start.value, prefixLength: Int(value))
                    guard start.value & cidr.hostMask == 0 else {
                        try sink.invalid(line: number, field: 4, "\(start)/\(value) has host bits set")
                        return
                    }
                    end = cidr.last
                }
                switch parseCountry(fields[1]) {
                case .success(let country):
                    try sink.addChecked(start: start, end: IPAddress(family: start.family, value: end),
                                        country: country, line: number)
                case .failure(let reason):
                    try sink.invalid(line: number, field: 2, reason.text)
                }
            }
        }
        return try sink.finish()
    }
}
