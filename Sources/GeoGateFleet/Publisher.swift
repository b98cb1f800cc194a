import Crypto
import GeoGateCore
import GeoGateTrie
#if canImport(Glibc)
import Glibc
#endif

/// `geogate publish`: puts a signed trie where a web server serves it to the nodes.
///
/// A web server reading the directory mid-update never shows a trie with another
/// trie's signature or hash, because nothing a manifest names is ever rewritten:
/// 1. the trie goes in as `geogate-<first 16 hex of its SHA-256>.trie`, and its
///    signature as `<that>.sig`, each written aside, fsynced and renamed;
/// 2. then `manifest` is replaced the same way: that rename is the publication;
/// 3. then the tries of publications older than the last `keep` are removed (a
///    node that read the previous manifest a moment ago still finds its trie).
/// Publishers take `<dir>/.publish.lock`, so two never interleave.
public enum Publisher {
    public struct Outcome: Sendable {
        public let manifest: Manifest
        /// False: the directory already published these bytes with this key.
        public let changed: Bool
        public let removed: [String]
    }

    public static let manifestName = "manifest"

    public static func trieName(sha256: String) -> String { "geogate-\(sha256.prefix(16)).trie" }

    public static func publish(trie path: String, key: Curve25519.Signing.PrivateKey, directory: String, keep: Int,
                               now: Int64) throws(TrieSigning.Failure) -> Outcome {
        do { try createDirectories(directory) } catch { throw TrieSigning.Failure("\(error)") }
        let lock: RunLock
        do { lock = try RunLock(path: directory + "/.publish.lock", waitSeconds: 60, command: "geogate publish", waiting: { _ in }) } catch {
            throw TrieSigning.Failure("\(error)")
        }
        defer { lock.release() }

        // Only a trie that opens and validates is published.
        let bytes: [UInt8]
        let trie: TrieFile
        do {
            bytes = try readWholeFile(path, limit: 1 << 30)
            trie = try TrieFile(bytes: bytes, name: path)
        } catch { throw TrieSigning.Failure("\(error)") }
        let sha = hexString(Array(SHA256.hash(data: bytes)))
        let signature = try TrieSigning.sign(bytes, with: key)
        let name = trieName(sha256: sha)
        let m = trie.metadata
        let manifest = Manifest(
            trieName: name, size: bytes.count, sha256: sha,
            signatureLine: String(decoding: signature.dropLast(), as: UTF8.self),
            buildTime: m.buildTime, publishedTime: now,
            sources: m.sources.map { .init(name: $0.name, sha256: hexString($0.sha256), size: $0.storedSize, format: $0.format) })

        let manifestPath = directory + "/" + manifestName
        if let old = try? readWholeFile(manifestPath, limit: Manifest.maxBytes),
           let current = try? Manifest.parse(old, name: manifestPath),
           current.sha256 == sha, current.keyID == manifest.keyID, fileSize(directory + "/" + name) == bytes.count {
            return Outcome(manifest: current, changed: false, removed: [])
        }
        do {
            if fileSize(directory + "/" + name) != bytes.count { try AtomicFile.write(bytes, to: directory + "/" + name) }
            try AtomicFile.write(signature, to: directory + "/" + name + ".sig")
            try FaultInjection.check("publish-manifest")
            try AtomicFile.write(Array(manifest.text.utf8), to: manifestPath)
        } catch { throw TrieSigning.Failure("\(directory): \(error); the manifest still names the earlier publication") }
        return Outcome(manifest: manifest, changed: true, removed: prune(directory, current: name, keep: keep))
    }

    /// Removes published tries (and their signatures) beyond the newest `keep`,
    /// never the current one.
    static func prune(_ directory: String, current: String, keep: Int) -> [String] {
        guard let dir = opendir(directory) else { return [] }
        var tries: [(name: String, time: Int)] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.hasPrefix("geogate-"), name.hasSuffix(".trie"), name != current else { continue }
            var s = stat()
            if stat(directory + "/" + name, &s) == 0 { tries.append((name, s.st_mtim.tv_sec * 1_000_000_000 + s.st_mtim.tv_nsec)) }
        }
        closedir(dir)
        let old = tries.sorted { $0.time > $1.time }.dropFirst(max(keep - 1, 0))
        for t in old {
            unlink(directory + "/" + t.name)
            unlink(directory + "/" + t.name + ".sig")
        }
        return old.map(\.name)
    }

    static func fileSize(_ path: String) -> Int {
        var s = stat()
        return stat(path, &s) == 0 ? Int(s.st_size) : -1
    }
}
