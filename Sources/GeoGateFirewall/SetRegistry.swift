import GeoGateCore
#if canImport(Glibc)
import Glibc
#endif

/// What geogate created in the kernel, so that it only ever replaces or destroys
/// its own sets: `<runtime-dir>/sets`, one line a set,
/// `<netns cookie> <name> <4|6> live|temporary [<digest>]`, the digest being the
/// contents geogate last put in a live set (FirewallSet.contentDigest), so an
/// unchanged set is not reloaded. The network namespace's cookie
/// (SO_NETNS_COOKIE, never reused while the machine runs) keeps namespaces apart;
/// /run is emptied at boot, as the kernel's sets are. A temporary set is recorded
/// before it is created, so one left by a killed run is found and destroyed by the
/// next. Read and written only under the run lock (RunLock).
public struct SetRegistry {
    public struct Entry: Equatable, Sendable {
        public var namespace: UInt64
        public var name: String
        public var family: IPFamily
        public var temporary: Bool
        public var digest: String?
    }

    public let path: String
    public private(set) var entries: [Entry]
    /// This process's network namespace.
    public let namespace: UInt64

    /// Reads the record (a missing file is an empty record).
    public init(path: String) throws(IPSetError) {
        self.path = path
        namespace = try SetRegistry.currentNamespace()
        entries = []
        guard access(path, F_OK) == 0 else { return }
        let bytes: [UInt8]
        do { bytes = try readWholeFile(path, limit: 1 << 20) } catch { throw IPSetError("\(path): \(error)") }
        for (i, line) in String(decoding: bytes, as: UTF8.self).split(separator: "\n").enumerated() {
            let f = line.split(separator: " ")
            guard f.count == 4 || f.count == 5, let ns = UInt64(f[0]), f[2] == "4" || f[2] == "6", f[3] == "live" || f[3] == "temporary" else {
                throw IPSetError("\(path):\(i + 1): not a set record: \(SafeText.field(line)) (remove the line, or the file, to start afresh)")
            }
            entries.append(Entry(namespace: ns, name: String(f[1]), family: f[2] == "4" ? .v4 : .v6, temporary: f[3] == "temporary",
                                 digest: f.count == 5 ? String(f[4]) : nil))
        }
    }

    /// True when geogate created `name` (of `family`) in this namespace.
    public func owns(_ name: String, family: IPFamily) -> Bool {
        entries.contains { $0.namespace == namespace && $0.name == name && $0.family == family && !$0.temporary }
    }

    /// What geogate last loaded into its live set `name` (nil: not known).
    public func digest(of name: String) -> String? {
        entries.first { $0.namespace == namespace && $0.name == name && !$0.temporary }?.digest
    }

    /// Temporary sets recorded in this namespace: left by a run that did not finish.
    public var leftovers: [Entry] { entries.filter { $0.namespace == namespace && $0.temporary } }

    public mutating func record(_ name: String, family: IPFamily, temporary: Bool, digest: String? = nil) throws(IPSetError) {
        forgetInMemory(name)
        entries.append(Entry(namespace: namespace, name: name, family: family, temporary: temporary, digest: digest))
        try save()
    }

    public mutating func forget(_ names: [String]) throws(IPSetError) {
        for name in names { forgetInMemory(name) }
        try save()
    }

    private mutating func forgetInMemory(_ name: String) {
        entries.removeAll { $0.namespace == namespace && $0.name == name }
    }

    func save() throws(IPSetError) {
        let text = entries.map { "\($0.namespace) \($0.name) \($0.family == .v4 ? 4 : 6) \($0.temporary ? "temporary" : "live")\($0.digest.map { " " + $0 } ?? "")\n" }.joined()
        do { try AtomicFile.write(Array(text.utf8), to: path) } catch { throw IPSetError("recording geogate's sets: \(error)") }
    }

    /// The network namespace's cookie: a 64-bit number the kernel never gives to
    /// another namespace while it runs (Linux 5.14 and later).
    static func currentNamespace() throws(IPSetError) -> UInt64 {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw IPSetError("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var cookie: UInt64 = 0
        var length = socklen_t(MemoryLayout<UInt64>.size)
        let soNetnsCookie: Int32 = 71
        guard getsockopt(fd, SOL_SOCKET, soNetnsCookie, &cookie, &length) == 0 else {
            throw IPSetError("cannot tell this network namespace apart (SO_NETNS_COOKIE needs Linux 5.14): \(String(cString: strerror(errno)))")
        }
        return cookie
    }
}
