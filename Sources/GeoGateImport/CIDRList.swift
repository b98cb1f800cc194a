import GeoGateCore

/// A plain list of networks of one country, as ipdeny.com's zone files are: one
/// CIDR (`1.2.3.0/24`), address, or `start-end` range a line; `#` comments.
/// The country comes from `--country`, else from the file name: `ch.zone`,
/// `ch-aggregated.zone`, `CH.txt`, `ipv6-ch.zone` all mean CH.
enum CIDRList {
    static func parse(_ file: SourceFile, options: ImportOptions) throws(ImportError) -> ImportedSource {
        let country = try listCountry(file: file, options: options)
        var sink = RangeSink(file: file, format: .cidrList, options: options)
        try file.content.withUnsafeBufferPointer { (buffer) throws(ImportError) in
            try TextLines(buffer).forEach { (line, number) throws(ImportError) in
                if line.isBlankOrComment { return }
                let text = line.trimmed
                if let dash = text.firstIndex(of: UInt8(ascii: "-")) {
                    let a = UnsafeBufferPointer(rebasing: text[..<dash]).trimmed
                    let b = UnsafeBufferPointer(rebasing: text[(dash + 1)...]).trimmed
                    guard let start = IPAddress.parse(a), let end = IPAddress.parse(b) else {
                        try sink.invalid(line: number, "not an address range: '\(text.text)'")
                        return
                    }
                    try sink.addChecked(start: start, end: end, country: country, line: number)
                    return
                }
                switch CIDR.parse(text) {
                case .success(let cidr):
                    try sink.addChecked(start: IPAddress(family: cidr.family, value: cidr.first),
                                        end: IPAddress(family: cidr.family, value: cidr.last),
                                        country: country, line: number)
                case .failure(.badPrefixLength(let n)) where n >= 0:
                    try sink.invalid(line: number, "prefix length /\(n) is longer than the family allows: '\(text.text)'")
                case .failure(.hostBitsSet):
                    try sink.invalid(line: number, "host bits set in '\(text.text)'")
                case .failure:
                    try sink.invalid(line: number, "not a network: '\(text.text)'")
                }
            }
        }
        return try sink.finish()
    }

    static func listCountry(file: SourceFile, options: ImportOptions) throws(ImportError) -> CountryCode {
        if let given = options.listCountry {
            guard let code = CountryCode(given) else {
                throw ImportError(file: file.path, reason: "--country '\(given)' is not a known country code")
            }
            return code
        }
        var stem = Substring(file.name)
        for suffix in [".gz", ".xz", ".zone", ".txt", ".cidr", ".list", ".netset"] where stem.hasSuffix(suffix) {
            stem = stem.dropLast(suffix.count)
        }
        for part in stem.split(whereSeparator: { $0 == "-" || $0 == "_" || $0 == "." }) where part.count == 2 {
            if let code = CountryCode(part) { return code }
        }
        throw ImportError(file: file.path, reason: "cannot tell this list's country: name the file CC.zone (e.g. ch.zone) or pass --country CC")
    }
}
