import CConntrack
import GeoGateCore
#if canImport(Glibc)
import Glibc
#endif

/// The peers a new set must keep letting in, or `apply` would cut them off: the
/// established incoming TCP connections (SSH, web) from /proc/net/tcp and tcp6, and
/// the incoming TCP and UDP flows the kernel's connection tracking has seen answered
/// (SIP phones registered over UDP 5060), of this network namespace.
public enum Lockout {
    public struct Connection: Sendable, Hashable, CustomStringConvertible {
        public let peer: IPAddress
        public let peerPort: Int
        public let localPort: Int
        public var proto = "tcp"
        public var description: String {
            "\(peer.family == .v6 ? "[\(peer)]" : "\(peer)"):\(peerPort) -> local \(proto) port \(localPort)"
        }
    }

    /// Both sources, without repeats.
    public static func incomingConnections() -> [Connection] {
        var seen = Set<Connection>()
        return (establishedTCP() + trackedFlows()).filter { seen.insert($0).inserted }
    }

    /// Incoming flows from connection tracking: answered (traffic seen both ways;
    /// a TCP flow also established), sent to one of this host's addresses. An
    /// unanswered probe does not count. Without conntrack (no module, no rule that
    /// makes the kernel track) the list is empty.
    public static func trackedFlows(limit: Int = 1 << 20) -> [Connection] {
        var flows: UnsafeMutablePointer<gg_flow>?
        var error = [CChar](repeating: 0, count: 256)
        let count = gg_conntrack_dump(&flows, limit, &error, error.count)
        guard count > 0, let flows else { free(flows); return [] }
        defer { free(flows) }
        let local = localAddresses()
        var out: [Connection] = []
        for f in UnsafeBufferPointer(start: flows, count: count) {
            guard f.assured != 0, f.protocol == 17 || (f.protocol == 6 && f.established != 0) else { continue }
            let family: IPFamily = f.family == 4 ? .v4 : .v6
            let source = address(f.src, family), destination = address(f.dst, family)
            guard local.contains(destination) else { continue }
            out.append(Connection(peer: source.unmappedIPv4 ?? source, peerPort: Int(f.src_port), localPort: Int(f.dst_port),
                                  proto: f.protocol == 6 ? "tcp" : "udp"))
        }
        return out
    }

    static func address(_ bytes: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                                  UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8), _ family: IPFamily) -> IPAddress {
        withUnsafeBytes(of: bytes) { raw in
            var value: UInt128 = 0
            for i in 0..<(family == .v4 ? 4 : 16) { value = value << 8 | UInt128(raw[i]) }
            return IPAddress(family: family, value: value)
        }
    }

    /// This namespace's own addresses (getifaddrs).
    static func localAddresses() -> Set<IPAddress> {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return [] }
        defer { freeifaddrs(list) }
        var out = Set<IPAddress>()
        var cursor = list
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let sa = entry.pointee.ifa_addr else { continue }
            if Int32(sa.pointee.sa_family) == AF_INET {
                let a = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
                out.insert(IPAddress(family: .v4, value: UInt128(UInt32(bigEndian: a))))
            } else if Int32(sa.pointee.sa_family) == AF_INET6 {
                let a = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr.__in6_u.__u6_addr8 }
                out.insert(address(a, .v6))
            }
        }
        return out
    }

    /// Established TCP connections whose local port is a listening port.
    public static func establishedTCP(procNet: String = "/proc/net") -> [Connection] {
        var entries: [(state: Int, local: (IPAddress, Int), remote: (IPAddress, Int))] = []
        for (file, family) in [("tcp", IPFamily.v4), ("tcp6", IPFamily.v6)] {
            guard let bytes = try? readWholeFile("\(procNet)/\(file)") else { continue }
            let text = String(decoding: bytes, as: UTF8.self)
            for line in text.split(separator: "\n").dropFirst() {
                let f = line.split(separator: " ")
                guard f.count > 3, let local = endpoint(f[1], family), let remote = endpoint(f[2], family),
                      let state = Int(f[3], radix: 16) else { continue }
                entries.append((state, local, remote))
            }
        }
        let listening = Set(entries.filter { $0.state == 0x0A }.map { $0.local.1 })
        return entries.filter { $0.state == 0x01 && listening.contains($0.local.1) }
            .map { Connection(peer: $0.remote.0.unmappedIPv4 ?? $0.remote.0, peerPort: $0.remote.1, localPort: $0.local.1) }
    }

    /// "0100007F:0016": the address as 1 (IPv4) or 4 (IPv6) hex words, then the port.
    static func endpoint(_ text: Substring, _ family: IPFamily) -> (IPAddress, Int)? {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1], radix: 16) else { return nil }
        let hex = parts[0]
        let words = stride(from: 0, to: hex.count, by: 8).compactMap { i -> UInt32? in
            let start = hex.index(hex.startIndex, offsetBy: i)
            // The kernel prints each 32-bit word of the network-order bytes as a host integer.
            return UInt32(hex[start..<hex.index(start, offsetBy: 8)], radix: 16).map { UInt32(bigEndian: $0) }
        }
        guard words.count == (family == .v4 ? 1 : 4) else { return nil }
        var value: UInt128 = 0
        for w in words { value = value << 32 | UInt128(w) }
        return (IPAddress(family: family, value: value), port)
    }
}
