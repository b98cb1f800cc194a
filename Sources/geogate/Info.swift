import ArgumentParser
import GeoGateCore
import GeoGateFleet
import GeoGateTrie
#if canImport(Glibc)
import Glibc
#endif

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a trie file's metadata: build time, sources with SHA-256, counts per family, countries.")

    @OptionGroup var database: DatabaseOption
    @Option(help: ArgumentHelp("Check FILE.sig against this public key (repeatable: the keys a node trusts).", valueName: "PUB"))
    var publicKey: [String] = []

    func run() throws {
        let path = try database.path()
        let trie = try openTrie(path)
        let m = trie.metadata
        var out = OutputBuffer()
        out.write("file: \(trie.path)\n")
        out.write("signature: \(try signature(path))\n")
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

    /// What `<trie>.sig` says: none, a key id, or the key that verified it; a
    /// signature that does not verify with the given keys is exit 1.
    func signature(_ path: String) throws -> String {
        guard let line = try? readWholeFile(path + ".sig", limit: 4096) else { return "none (no \(path).sig)" }
        let keys: [TrieSigning.PublicKey]
        do { keys = try publicKey.map { p throws(TrieSigning.Failure) in try TrieSigning.publicKey(p) } } catch {
            printError("geogate: --public-key: \(error)")
            throw ExitCode(2)
        }
        guard !keys.isEmpty else {
            let words = String(decoding: line.prefix(200), as: UTF8.self).split(separator: " ")
            return "key \(SafeText.field(words.count > 1 ? words[1] : "?", limit: 32)) (not checked: give --public-key)"
        }
        let bytes: [UInt8]
        do { bytes = try readWholeFile(path, limit: 1 << 30) } catch {
            printError("geogate: \(error)")
            throw ExitCode(2)
        }
        do {
            let key = try bytes.withUnsafeBytes { b throws(TrieSigning.Failure) in try TrieSigning.verify(b, signature: line, keys: keys, name: path + ".sig") }
            return "key \(key.id), verified with \(key.origin)"
        } catch {
            printError("geogate: \(error)")
            throw ExitCode(1)
        }
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
