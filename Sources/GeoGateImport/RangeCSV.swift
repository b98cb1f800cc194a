import GeoGateCore

/// The `start,end,CC` line shape shared by the IPFire/Tor range files and the DB-IP
/// country lite CSV. Addresses are textual (IPv4 dotted, IPv6) or, in Tor's IPv4
/// file, plain integers. `#` comments and blank lines are skipped.
enum RangeCSV {
    static func parse(_ file: SourceFile, format: SourceFormat, options: ImportOptions) throws(ImportError) -> ImportedSource {
        var sink = RangeSink(file: file, format: format, options: options)
        try file.content.withUnsafeBufferPointer { (buffer) throws(ImportError) in
            try TextLines(buffer).forEach { (line, number) throws(ImportError) in
                if line.isEmpty || line[0] == UInt8(ascii: "#") || line.isBlankOrComment { return }
                let fields = Fields(line, separator: UInt8(ascii: ","))
                guard fields.count == 3 else {
                    try sink.invalid(line: number, "expected 3 fields 'start,end,country', found \(fields.count > 8 ? "more than 8" : String(fields.count))")
                    return
                }
                guard let start = parseAddress(fields[0]) else {
                    try sink.invalid(line: number, field: 1, "not an IP address: '\(fields[0].text)'")
                    return
                }
                guard let end = parseAddress(fields[1]) else {
                    try sink.invalid(line: number, field: 2, "not an IP address: '\(fields[1].text)'")
                    return
                }
                switch parseCountry(fields[2]) {
                case .success(let country):
                    try sink.addChecked(start: start, end: end, country: country, line: number)
                case .failure(let reason):
                    try sink.invalid(line: number, field: 3, reason.text)
                }
            }
        }
        return try sink.finish()
    }

    /// A textual address, or a decimal integer IPv4 address (Tor's IPv4 file).
    @inline(__always)
    static func parseAddress(_ bytes: UnsafeBufferPointer<UInt8>) -> IPAddress? {
        if let first = bytes.first, first >= 0x30 && first <= 0x39,
           !bytes.contains(UInt8(ascii: ".")), !bytes.contains(UInt8(ascii: ":")) {
            guard let v = bytes.decimalValue, v <= UInt64(UInt32.max) else { return nil }
            return IPAddress(family: .v4, value: UInt128(v))
        }
        return IPAddress.parse(bytes)
    }
}
