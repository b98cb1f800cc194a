import CMaxMindDB
import GeoGateCore
#if canImport(Glibc)
import Glibc
#endif

/// MaxMind DB (.mmdb) through libmaxminddb: walks the search tree node by node
/// (MMDB_read_node) instead of looking addresses up, so every network is seen once.
///
/// In an IPv6 database the IPv4 space is the subtree at ::/96; it becomes the IPv4
/// family. Any other record that points at that subtree's root node is an alias of
/// it (GeoLite2 aliases ::ffff:0:0/96, 2001::/32 Teredo and 2002::/16 6to4) and is
/// skipped, so the IPv4 data is not copied into IPv6 networks. A record's country is `country.iso_code`,
/// else `registered_country.iso_code`.
enum MMDBFile {
    static let metadataMarker: [UInt8] = [0xAB, 0xCD, 0xEF] + Array("MaxMind.com".utf8)

    static func parse(_ file: SourceFile, options: ImportOptions) throws(ImportError) -> ImportedSource {
        // libmaxminddb opens paths; a compressed input is inflated to a private temp file.
        var path = file.path
        var temporary: String?
        if file.compression != .none {
            var template = Array("/tmp/geogate-mmdb-XXXXXX".utf8CString)
            let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
            guard fd >= 0 else { throw ImportError(file: file.path, reason: "cannot create a temporary file to inflate into") }
            let name = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            temporary = name
            let written = file.content.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            close(fd)
            guard written == file.content.count else {
                unlink(name)
                throw ImportError(file: file.path, reason: "cannot write the inflated database to \(name)")
            }
            path = name
        }
        defer { if let temporary { unlink(temporary) } }

        var db = MMDB_s()
        let status = MMDB_open(path, UInt32(MMDB_MODE_MMAP), &db)
        guard status == MMDB_SUCCESS else {
            throw ImportError(file: file.path, reason: "corrupt or unreadable MMDB: \(String(cString: MMDB_strerror(status)))")
        }
        defer { MMDB_close(&db) }
        var walker = TreeWalker(db: db, file: file, options: options)
        try walker.walk()
        return try walker.sink.finish()
    }

    /// The depth-first walk over the search tree.
    struct TreeWalker {
        var db: MMDB_s
        var sink: RangeSink
        /// data-section offset → country (nil: the record has none), so each record is decoded once.
        var countryByOffset: [UInt32: CountryCode?] = [:]
        let isIPv6: Bool
        /// The node at ::/96 (the IPv4 tree) in an IPv6 database, if there is one.
        var ipv4Root: UInt32?

        init(db: MMDB_s, file: SourceFile, options: ImportOptions) {
            self.db = db
            self.sink = RangeSink(file: file, format: .mmdb, options: options)
            self.isIPv6 = db.metadata.ip_version == 6
        }

        mutating func walk() throws(ImportError) {
            let bits = isIPv6 ? 128 : 32
            let nodeCount = Int(db.metadata.node_count)
            guard nodeCount > 0 else { throw corrupt("the search tree is empty") }
            // Explicit stack of (node, depth, prefix); each node is read once in a tree.
            if isIPv6 { ipv4Root = try findIPv4Root() }
            var stack: [(node: UInt32, depth: Int, prefix: UInt128)] = [(0, 0, 0)]
            var visits = 0
            while let (nodeNumber, depth, prefix) = stack.popLast() {
                visits += 1
                if visits > 2 * nodeCount + 16 { throw corrupt("the search tree revisits nodes (a cycle or shared subtrees)") }
                var node = MMDB_search_node_s()
                let status = MMDB_read_node(&db, nodeNumber, &node)
                guard status == MMDB_SUCCESS else { throw corrupt("node \(nodeNumber): \(String(cString: MMDB_strerror(status)))") }
                // Right (bit 1) first so the left child is processed first.
                for (bit, record, type, entry) in [(UInt128(1), node.right_record, node.right_record_type, node.right_record_entry),
                                                   (UInt128(0), node.left_record, node.left_record_type, node.left_record_entry)] {
                    let childDepth = depth + 1
                    let childPrefix = prefix | (bit << UInt128(bits - childDepth))
                    switch Int32(type) {
                    case Int32(MMDB_RECORD_TYPE_SEARCH_NODE):
                        if let v4 = ipv4Root, UInt32(record) == v4, !(childDepth == 96 && childPrefix == 0) { continue }
                        guard childDepth < bits else { throw corrupt("the search tree is deeper than \(bits) bits") }
                        stack.append((UInt32(record), childDepth, childPrefix))
                    case Int32(MMDB_RECORD_TYPE_EMPTY):
                        continue
                    case Int32(MMDB_RECORD_TYPE_DATA):
                        let country = try self.country(of: entry)
                        try emit(prefix: childPrefix, depth: childDepth, bits: bits, country: country)
                    default:
                        throw corrupt("node \(nodeNumber) has an invalid record")
                    }
                }
            }
        }

        /// Follows 96 zero bits from the root: the node there is the IPv4 tree's root.
        mutating func findIPv4Root() throws(ImportError) -> UInt32? {
            var nodeNumber: UInt32 = 0
            for _ in 0..<96 {
                var node = MMDB_search_node_s()
                let status = MMDB_read_node(&db, nodeNumber, &node)
                guard status == MMDB_SUCCESS else { throw corrupt("node \(nodeNumber): \(String(cString: MMDB_strerror(status)))") }
                guard Int32(node.left_record_type) == Int32(MMDB_RECORD_TYPE_SEARCH_NODE) else { return nil }
                nodeNumber = UInt32(node.left_record)
            }
            return nodeNumber
        }

        mutating func emit(prefix: UInt128, depth: Int, bits: Int, country: CountryCode?) throws(ImportError) {
            let hostBits = bits - depth
            let last = prefix | (hostBits == 128 ? .max : (UInt128(1) << UInt128(hostBits)) - 1)
            guard let country else {
                sink.unassignedRanges += 1
                return
            }
            if !isIPv6 {
                sink.add(family: .v4, start: prefix, end: last, country: country, line: 0)
                return
            }
            let v4Top = UInt128(UInt32.max)
            if prefix <= v4Top {
                // The part inside ::/96 is IPv4.
                sink.add(family: .v4, start: prefix, end: min(last, v4Top), country: country, line: 0)
                if last > v4Top {
                    sink.add(family: .v6, start: v4Top + 1, end: last, country: country, line: 0)
                }
                return
            }
            sink.add(family: .v6, start: prefix, end: last, country: country, line: 0)
        }

        mutating func country(of entry: MMDB_entry_s) throws(ImportError) -> CountryCode? {
            if let known = countryByOffset[entry.offset] { return known }
            var result: CountryCode?
            for key in ["country", "registered_country"] where result == nil {
                result = try isoCode(entry: entry, mapKey: key)
            }
            countryByOffset[entry.offset] = result
            return result
        }

        func isoCode(entry: MMDB_entry_s, mapKey: String) throws(ImportError) -> CountryCode? {
            var entry = entry
            var data = MMDB_entry_data_s()
            let status: Int32 = mapKey.withCString { key in
                "iso_code".withCString { iso in
                    var path: [UnsafePointer<CChar>?] = [key, iso, nil]
                    return path.withUnsafeMutableBufferPointer { MMDB_aget_value(&entry, &data, $0.baseAddress) }
                }
            }
            if status == MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR { return nil }
            guard status == MMDB_SUCCESS else {
                throw corrupt("data record at offset \(entry.offset): \(String(cString: MMDB_strerror(status)))")
            }
            guard data.has_data else { return nil }
            guard data.type == UInt32(MMDB_DATA_TYPE_UTF8_STRING), data.data_size == 2,
                  let text = data.utf8_string else {
                throw corrupt("data record at offset \(entry.offset): \(mapKey).iso_code is not a two-letter string")
            }
            let a = UInt8(bitPattern: text[0]), b = UInt8(bitPattern: text[1])
            guard let code = CountryCode.validated(a, b) else {
                let shown = SafeText.bytes([a, b])
                throw corrupt("data record at offset \(entry.offset): unknown country code '\(shown)' in \(mapKey).iso_code")
            }
            return code
        }

        func corrupt(_ reason: String) -> ImportError {
            ImportError(file: sink.file.path, reason: "corrupt MMDB: \(reason)")
        }
    }
}
