import CZlib
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
/// 1. the trie goes in as `geogate-<first 16 hex of its SHA-256>.trie`, gzipped
///    as `<that>.gz` (what nodes fetch), and its signature as `<that>.sig`, each
///    written aside, fsynced and renamed;
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
        let gzipped = try gzip(bytes)
        let m = trie.metadata
        let manifest = Manifest(
            trieName: name, size: bytes.count, sha256: sha,
            signatureLine: String(decoding: signature.dropLast(), as: UTF8.self),
            buildTime: m.buildTime, publishedTime: now,
            sources: m.sources.map { .init(name: $0.name, sha256: hexString($0.sha256), size: $0.storedSize, format: $0.format) },
            gzipName: name + ".gz", gzipSize: gzipped.count)

        let manifestPath = directory + "/" + manifestName
        if let old = try? readWholeFile(manifestPath, limit: Manifest.maxBytes),
           let current = try? Manifest.parse(old, name: manifestPath),
           current.sha256 == sha, current.keyID == manifest.keyID, fileSize(directory + "/" + name) == bytes.count {
            return Outcome(manifest: current, changed: false, removed: [])
        }
        do {
            if fileSize(directory + "/" + name) != bytes.count { try AtomicFile.write(bytes, to: directory + "/" + name) }
            try AtomicFile.write(gzipped, to: directory + "/" + name + ".gz")
            try AtomicFile.write(signature, to: directory + "/" + name + ".sig")
            try FaultInjection.check("publish-manifest")
            let previous = modificationTime(manifestPath)
            try AtomicFile.write(Array(manifest.text.utf8), to: manifestPath + ".new")
            laterThan(previous, manifestPath + ".new")
            guard rename(manifestPath + ".new", manifestPath) == 0 else { throw SystemError("rename", path: manifestPath, errno: errno) }
            AtomicFile.syncDirectory(of: manifestPath)
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
            unlink(directory + "/" + t.name + ".gz")
        }
        return old.map(\.name)
    }

    /// gzip (RFC 1952) at level 9, whole in memory: a trie is a few MB.
    static func gzip(_ bytes: [UInt8]) throws(TrieSigning.Failure) -> [UInt8] {
        var stream = z_stream()
        guard deflateInit2_(&stream, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw TrieSigning.Failure("gzip: cannot start zlib")
        }
        defer { deflateEnd(&stream) }
        var out = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(bytes.count))) + 64)
        let status = bytes.withUnsafeBufferPointer { input in
            out.withUnsafeMutableBufferPointer { output in
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
                stream.avail_in = uInt(input.count)
                stream.next_out = output.baseAddress
                stream.avail_out = uInt(output.count)
                return deflate(&stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END else { throw TrieSigning.Failure("gzip: zlib status \(status)") }
        out.removeSubrange(Int(stream.total_out)...)
        return out
    }

    /// Web servers derive a file's validators from its modification time in whole
    /// seconds (nginx's ETag is mtime-size, Last-Modified the mtime): a manifest
    /// replaced within the second of the one before, at the same size, would look
    /// unchanged to a node's conditional request. So a new manifest's time is
    /// always at least a second past the old one's.
    static func laterThan(_ previous: Int?, _ path: String) {
        guard let previous, let now = modificationTime(path), now <= previous else { return }
        var times = [timespec(tv_sec: previous + 1, tv_nsec: 0), timespec(tv_sec: previous + 1, tv_nsec: 0)]
        utimensat(AT_FDCWD, path, &times, 0)
    }

    static func modificationTime(_ path: String) -> Int? {
        var s = stat()
        return stat(path, &s) == 0 ? s.st_mtim.tv_sec : nil
    }

    static func fileSize(_ path: String) -> Int {
        var s = stat()
        return stat(path, &s) == 0 ? Int(s.st_size) : -1
    }
}
