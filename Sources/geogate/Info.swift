import ArgumentParser
import GeoGateCore
import GeoGateTrie
#if canImport(Glibc)
import Glibc
#endif

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a trie file's metadata: build time, sources with SHA-256, counts per family, countries.")

    @OptionGroup var database: DatabaseOption

    func run() throws {
        let trie = try openTrie(try database.path())
        let m = trie.metadata
        var out = OutputBuffer()
        out.write("file: \(trie.path)\n")
        out.write("size: \(trie.size) bytes\n")
        out.write("format: geogate trie version \(TrieFormat.version)\n")
        out.write("built: \(formatUTC(m.buildTime)) (\(m.buildTime))\n")
        out.write("sources:\n")
        for s in m.sources {
            out.write("  \(s.name) \(s.format) \(s.storedSize) bytes sha256:\(hexString(s.sha256))\n")
        }
        out.write("ipv4: \(m.v4RangeCount) ranges, \(m.v4AddressCount) addresses\n")
        out.write("ipv6: \(m.v6RangeCount) ranges, \(m.v6AddressCount) addresses\n")
        out.write("countries: \(trie.countries.count)\n")
        out.write("  " + trie.countries.sorted().map(\.description).joined(separator: " ") + "\n")
        out.flush()
    }
}

func formatUTC(_ seconds: Int64) -> String {
    var t = time_t(seconds)
    var parts = tm()
    gmtime_r(&t, &parts)
    var buffer = [CChar](repeating: 0, count: 64)
    let n = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%SZ", &parts)
    return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
