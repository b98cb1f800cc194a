import GeoGateCore
#if canImport(Glibc)
import Glibc
#endif

/// The peers of established incoming TCP connections (SSH, web...) from
/// /proc/net/tcp and tcp6 of this network namespace: those a new set must keep
/// letting in, or `apply` would cut the admin off.
public enum Lockout {
    public struct Connection: Sendable, CustomStringConvertible {
        public let peer: IPAddress
        public let peerPort: Int
        public let localPort: Int
        public var description: String {
            "\(peer.family == .v6 ? "[\(peer)]" : "\(peer)"):\(peerPort) -> local port \(localPort)"
        }
    }

    /// Established connections whose local port is a listening port.
    public static func incomingConnections(procNet: String = "/proc/net") -> [Connection] {
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
