import GeoGateCore

/// The formats geogate reads. `--format` takes the raw values.
public enum SourceFormat: String, Sendable, CaseIterable {
    /// IPFire/Tor range files: `from,to,CC`, IPv4 as integers, IPv6 textual.
    case tor
    /// DB-IP country lite CSV: `start,end,CC`, textual IPv4 and IPv6.
    case dbipCSV = "dbip-csv"
    /// MaxMind GeoLite2/GeoIP2 Country CSV blocks (with the Locations file).
    case maxmindCSV = "maxmind-csv"
    /// MaxMind GeoLite2/GeoIP2 Country Locations CSV (the blocks' companion).
    case maxmindLocations = "maxmind-locations"
    /// MaxMind DB binary (.mmdb).
    case mmdb
    /// RIR delegated(-extended) statistics.
    case rir
    /// One network (CIDR or start-end range) a line, all of one country (ipdeny zones).
    case cidrList = "cidr-list"
}

/// One parsed input: where it came from and its ranges per family.
public struct ImportedSource: Sendable {
    public var name: String
    public var sha256: [UInt8]
    public var storedSize: Int
    public var format: SourceFormat
    public var v4: RangeMap
    public var v6: RangeMap
    /// Malformed lines skipped under `--skip-invalid`.
    public var skippedLines: Int
    /// Ranges the source lists with no country ("??", empty), which carry no data.
    public var unassignedRanges: Int

    public func map(for family: IPFamily) -> RangeMap { family == .v4 ? v4 : v6 }

    /// Range counts as parsed, also once the maps are released.
    public var v4Count: Int { released?.v4 ?? v4.ranges.count }
    public var v6Count: Int { released?.v6 ?? v6.ranges.count }
    var released: (v4: Int, v6: Int)? = nil

    /// Lets go of the ranges (CountryDataset(taking:) has merged them).
    mutating func releaseRanges() {
        released = (v4.ranges.count, v6.ranges.count)
        v4 = RangeMap(family: .v4)
        v6 = RangeMap(family: .v6)
    }
}

/// Collects one source's ranges with the error policy of `ImportOptions`, then
/// checks them and produces the `ImportedSource`.
struct RangeSink {
    let file: SourceFile
    let format: SourceFormat
    let options: ImportOptions
    var v4 = RangeMapBuilder(family: .v4)
    var v6 = RangeMapBuilder(family: .v6)
    var skippedLines = 0
    var unassignedRanges = 0
    /// Where the first skipped line was, for the summary message.
    var firstSkipped: ImportError?
    /// Set when a range past options.maximumRanges was dropped: finish() refuses.
    var overRangeLimit = false

    init(file: SourceFile, format: SourceFormat, options: ImportOptions) {
        self.file = file
        self.format = format
        self.options = options
        // Room for as many ranges as the text could hold (a line is at least 16
        // bytes), reserved as address space: the arrays never grow by copying, which
        // would hold the ranges twice at the peak.
        let most = file.content.count / 16 + 16
        v4.reserveCapacity(most)
        v6.reserveCapacity(most)
    }

    /// A malformed line: fatal, or counted and skipped under `--skip-invalid`.
    mutating func invalid(line: Int?, field: Int? = nil, _ reason: String) throws(ImportError) {
        let error = ImportError(file: file.path, line: line, field: field, reason: reason)
        guard options.skipInvalid else { throw error }
        skippedLines += 1
        if firstSkipped == nil { firstSkipped = error }
    }

    @inline(__always)
    mutating func add(family: IPFamily, start: UInt128, end: UInt128, country: CountryCode, line: Int) {
        // Counted as they come, so the ranges held never pass the limit.
        if v4.count + v6.count + options.rangesBefore >= options.maximumRanges {
            overRangeLimit = true
            return
        }
        if family == .v4 {
            v4.add(start: start, end: end, country: country, line: line)
        } else if end < RangeSink.mappedFirst || start > RangeSink.mappedLast {
            v6.add(start: start, end: end, country: country, line: line)
        } else {
            addMapped(start: start, end: end, country: country, line: line)
        }
    }

    /// ::ffff:0:0/96, IPv4-mapped IPv6 addresses: what lies there is IPv4 data.
    static let mappedFirst: UInt128 = 0xffff_0000_0000
    static let mappedLast: UInt128 = 0xffff_ffff_ffff

    /// A range written as IPv4-mapped IPv6 (`::ffff:1.0.0.0,::ffff:1.0.0.255,AU`) is
    /// stored as the IPv4 range, where lookups (which answer `::ffff:a.b.c.d` as
    /// a.b.c.d) find it; a part outside ::ffff:0:0/96 stays IPv6.
    mutating func addMapped(start: UInt128, end: UInt128, country: CountryCode, line: Int) {
        let first = max(start, RangeSink.mappedFirst), last = min(end, RangeSink.mappedLast)
        if start < first { v6.add(start: start, end: first - 1, country: country, line: line) }
        v4.add(start: first - RangeSink.mappedFirst, end: last - RangeSink.mappedFirst, country: country, line: line)
        if end > last { v6.add(start: last + 1, end: end, country: country, line: line) }
    }

    /// Validates a parsed range and adds it; `country` nil means "listed without a country".
    @inline(__always)
    mutating func addChecked(start: IPAddress, end: IPAddress, country: CountryCode?, line: Int) throws(ImportError) {
        guard start.family == end.family else {
            try invalid(line: line, "range mixes an \(start.family) start with an \(end.family) end")
            return
        }
        guard start.value <= end.value else {
            try invalid(line: line, "inverted range: start \(start) is after end \(end)")
            return
        }
        guard let country else {
            unassignedRanges += 1
            return
        }
        add(family: start.family, start: start.value, end: end.value, country: country, line: line)
    }

    mutating func finish() throws(ImportError) -> ImportedSource {
        if overRangeLimit {
            throw ImportError(file: file.path, reason: "holds more than \(options.maximumRanges - options.rangesBefore) ranges"
                + (options.rangesBefore > 0 ? " (the inputs before it hold \(options.rangesBefore))" : "")
                + ": over the range limit of \(options.maximumRanges) (--max-ranges, refresh.max-ranges)")
        }
        let v4Map: RangeMap
        let v6Map: RangeMap
        do {
            v4Map = try v4.build()
            v6Map = try v6.build()
        } catch {
            switch error {
            case let .conflictingOverlap(firstLine, first, secondLine, second, family, start, end):
                let span = "\(IPAddress.format(start, family: family))-\(IPAddress.format(end, family: family))"
                let lines = firstLine > 0 ? "lines \(firstLine) (\(first)) and \(secondLine) (\(second))"
                                          : "\(first) and \(second)"
                throw ImportError(file: file.path, line: secondLine > 0 ? secondLine : nil,
                                  reason: "overlapping ranges with different countries: \(lines) both claim \(span)")
            }
        }
        if v4Map.isEmpty && v6Map.isEmpty {
            let why = skippedLines > 0 ? " (\(skippedLines) malformed lines skipped; first: \(firstSkipped!))" : ""
            throw ImportError(file: file.path, reason: "empty input: no ranges with a country\(why)")
        }
        return ImportedSource(name: file.name, sha256: file.sha256, storedSize: file.storedSize, format: format,
                              v4: v4Map, v6: v6Map, skippedLines: skippedLines, unassignedRanges: unassignedRanges)
    }
}

/// Reads a country field: a known code, or nil for the "no country" markers
/// ("??", "--", empty). Anything else is an error naming the field.
@inline(__always)
func parseCountry(_ bytes: UnsafeBufferPointer<UInt8>) -> Result<CountryCode?, ImportErrorReason> {
    if bytes.isEmpty { return .success(nil) }
    if bytes.count == 2 {
        if let code = CountryCode.validated(bytes[0], bytes[1]) { return .success(code) }
        if (bytes[0] == 0x3F && bytes[1] == 0x3F) || (bytes[0] == 0x2D && bytes[1] == 0x2D) { return .success(nil) }
    }
    return .failure(ImportErrorReason("unknown country code '\(bytes.text)' (not ISO 3166-1 alpha-2 nor a documented special code)"))
}

struct ImportErrorReason: Error {
    let text: String
    init(_ text: String) { self.text = text }
}
