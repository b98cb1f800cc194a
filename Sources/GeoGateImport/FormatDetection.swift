import GeoGateCore

extension SourceFormat {
    /// Recognises a format from content (after decompression), looking at the first
    /// meaningful line; the file name only breaks the tie between Tor and DB-IP.
    public static func detect(_ file: SourceFile) -> SourceFormat? {
        let content = file.content
        // An MMDB ends with its metadata section, which starts with this marker.
        if content.count >= MMDBFile.metadataMarker.count {
            let tail = content.suffix(128 * 1024)
            let marker = MMDBFile.metadataMarker
            if let first = marker.first {
                var i = tail.startIndex
                while let found = tail[i...].firstIndex(of: first) {
                    if tail[found...].starts(with: marker) { return .mmdb }
                    i = found + 1
                }
            }
        }
        var sawComment = false
        var firstLine: [UInt8]?
        content.withUnsafeBufferPointer { buffer in
            try? TextLines(buffer).forEach { (line, _) throws(ImportError) in
                guard firstLine == nil else { return }
                let t = line.trimmed
                if t.isEmpty { return }
                if t[0] == UInt8(ascii: "#") { sawComment = true; return }
                firstLine = Array(t)
            }
        }
        guard let line = firstLine else { return nil }
        let text = String(decoding: line, as: UTF8.self)
        if text.hasPrefix("network,") && text.contains("geoname_id") { return .maxmindCSV }
        if text.hasPrefix("geoname_id,") && text.contains("country_iso_code") { return .maxmindLocations }
        let pipes = text.split(separator: "|", omittingEmptySubsequences: false)
        if pipes.count >= 6 { return .rir }
        let commas = text.split(separator: ",", omittingEmptySubsequences: false)
        if commas.count == 3 {
            let first = commas[0].trimmingQuotes
            if !first.isEmpty && first.allSatisfy(\.isNumber) { return .tor }   // Tor's integer IPv4
            if IPAddress(first) != nil && IPAddress(commas[1].trimmingQuotes) != nil {
                // Textual ranges: Tor's IPv6 file (comment header, or named geoip6) or DB-IP.
                return sawComment || file.name.hasPrefix("geoip") ? .tor : .dbipCSV
            }
        }
        if commas.count == 1 {
            // A network, an address or a start-end range; a bad prefix still means a
            // CIDR list, so the importer can say what is wrong with the line.
            let network = Substring(text).split(separator: "/", maxSplits: 1).first ?? Substring(text)
            let first = (network.split(separator: "-", maxSplits: 1).first ?? network).trimmingQuotes
            if IPAddress(first) != nil { return .cidrList }
        }
        return nil
    }
}

extension Substring {
    var trimmingQuotes: Substring {
        var s = self
        while s.first == "\"" || s.first == " " { s = s.dropFirst() }
        while s.last == "\"" || s.last == " " { s = s.dropLast() }
        return s
    }
}

/// Reads input files into `ImportedSource`s: detects each format (unless forced),
/// and pairs MaxMind blocks files with their Locations file (given among the
/// inputs, or found beside the blocks file). Each file is parsed as soon as it is
/// read and its text let go, so one input's text is in memory at a time.
public enum SourceLoader {
    public static func load(paths: [String], format forced: SourceFormat? = nil,
                            options given: ImportOptions = ImportOptions()) throws(ImportError) -> [ImportedSource] {
        var options = given
        var sources: [ImportedSource] = []
        var locations: MaxMindCSV.Locations?
        for (i, path) in paths.enumerated() {
            let file = try SourceFile.read(path: path, options: options)
            let format = try detect(file, forced: forced)
            if format == .maxmindLocations {
                if locations == nil { locations = try MaxMindCSV.parseLocations(file) }
                continue
            }
            if format == .maxmindCSV && locations == nil {
                locations = try findLocations(for: file, among: paths[(i + 1)...], forced: forced, options: options)
            }
            options.rangesBefore = given.rangesBefore + sources.reduce(0) { $0 + $1.v4.ranges.count + $1.v6.ranges.count }
            sources.append(try parse(file, format: format, locations: locations ?? [:], options: options))
        }
        guard !sources.isEmpty else {
            throw ImportError(file: paths.joined(separator: ", "), reason: "no data inputs (a Locations file alone holds no networks)")
        }
        return sources
    }

    /// One data file in a known format (a MaxMind blocks file with its Locations).
    public static func parse(_ file: SourceFile, format: SourceFormat, locations: MaxMindCSV.Locations = [:],
                             options: ImportOptions = ImportOptions()) throws(ImportError) -> ImportedSource {
        switch format {
        case .tor, .dbipCSV: return try RangeCSV.parse(file, format: format, options: options)
        case .maxmindCSV: return try MaxMindCSV.parseBlocks(file, locations: locations, options: options)
        case .maxmindLocations:
            throw ImportError(file: file.path, reason: "a MaxMind Locations file holds no networks: it goes with a blocks file")
        case .mmdb: return try MMDBFile.parse(file, options: options)
        case .rir: return try RIRDelegated.parse(file, options: options)
        case .cidrList: return try CIDRList.parse(file, options: options)
        }
    }

    static func detect(_ file: SourceFile, forced: SourceFormat?) throws(ImportError) -> SourceFormat {
        if let forced {
            // A forced CSV format still lets a Locations file through as the companion.
            return (forced == .maxmindCSV && SourceFormat.detect(file) == .maxmindLocations) ? .maxmindLocations : forced
        }
        guard let detected = SourceFormat.detect(file) else {
            if file.content.isEmpty { throw ImportError(file: file.path, reason: "empty input: the file has no data") }
            throw ImportError(file: file.path, reason: "unknown format: not an MMDB, a range CSV, MaxMind CSV, RIR statistics or a CIDR list (use --format to force one)")
        }
        return detected
    }

    /// The Locations file for a MaxMind blocks file: a later input, else the file
    /// beside the blocks named after its edition.
    static func findLocations(for blocks: SourceFile, among later: ArraySlice<String>, forced: SourceFormat?,
                              options: ImportOptions) throws(ImportError) -> MaxMindCSV.Locations {
        for path in later {
            let file = try SourceFile.read(path: path, options: options)
            if (try? detect(file, forced: forced)) == .maxmindLocations { return try MaxMindCSV.parseLocations(file) }
        }
        let directory = blocks.path.contains("/") ? String(blocks.path[..<blocks.path.lastIndex(of: "/")!]) + "/" : ""
        let edition = blocks.name.components(before: "-Blocks-") ?? "GeoLite2-Country"
        let candidate = "\(directory)\(edition)-Locations-en.csv"
        guard let file = try? SourceFile.read(path: candidate, options: options) else {
            throw ImportError(file: blocks.path, reason: "MaxMind blocks need their Locations file: pass it as an input, or put \(candidate) beside the blocks")
        }
        return try MaxMindCSV.parseLocations(file)
    }
}

extension String {
    func components(before separator: String) -> String? {
        guard let r = range(of: separator) else { return nil }
        return String(self[..<r.lowerBound])
    }
}

/// The merged result of all inputs, ready for the trie builder.
public struct CountryDataset: Sendable {
    public var v4: RangeMap
    public var v6: RangeMap

    /// Merges sources in order: where two overlap, the later one wins. Within one
    /// source overlapping ranges of different countries were already an error.
    public init(sources: [ImportedSource]) {
        var v4 = RangeMap(family: .v4), v6 = RangeMap(family: .v6)
        for source in sources {
            // The first source is taken as it is (shared, not copied).
            v4 = v4.ranges.isEmpty ? source.v4 : v4.overlaid(with: source.v4)
            v6 = v6.ranges.isEmpty ? source.v6 : v6.overlaid(with: source.v6)
        }
        self.v4 = v4
        self.v6 = v6
    }

    /// Merges and lets go of the sources' own maps (their names, digests and
    /// counts stay), so the ranges are not held twice while the trie is built.
    public init(taking sources: inout [ImportedSource]) {
        self.init(sources: sources)
        for i in sources.indices { sources[i].releaseRanges() }
    }

    public func map(for family: IPFamily) -> RangeMap { family == .v4 ? v4 : v6 }
}
