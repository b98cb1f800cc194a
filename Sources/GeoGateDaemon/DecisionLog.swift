import GeoGateCore
import GeoGatePolicy
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// The decision log (`daemon.log-decisions: deny | all`): one line per CHECK
/// answer, in a stable format that fail2ban's filter (Docs/fail2ban/geogate.conf)
/// and scripts can rely on:
///
///     DENY 203.0.113.9 CN profile=web reason=country-not-allowed
///     ALLOW 81.2.69.160 GB profile=web reason=country-allowed
///     DENY 203.0.113.66 -- profile=full reason=block-network network=203.0.113.66/32
///
/// Under the journal the line carries its priority (`<5>` notice for DENY, `<6>`
/// info for ALLOW) and the journal adds `geogate[pid]:` and the time; anywhere
/// else it starts with an ISO 8601 UTC time and `geogate[pid]: `, as a syslog
/// line would, so the same filter reads a log file. Every part comes from the
/// daemon's own values (a parsed address, a two-letter code, a validated profile
/// name, a fixed reason word): nothing a client sent goes into it unchecked.
/// The lines of one read's requests go to standard error together, in one write(2)
/// (journald and a file take them apart at the newlines): a pipelining client
/// that is denied a thousand times costs one system call, not a thousand.
final class DecisionLog: Sendable {
    /// The lines waiting for a write; empty (no allocation) until the first one.
    struct Lines {
        var buffer: ByteBuffer?
        /// This read's "<time> geogate[pid]: " (outside the journal): made once per
        /// read, copied into each of its lines.
        var stamp: [UInt8]?
    }

    let journal: Bool
    /// "geogate[pid]: ", made once.
    let tag: String

    init(journal: Bool = Journal.isStandardError) {
        self.journal = journal
        self.tag = "geogate[\(getpid())]: "
    }

    func append(_ decision: Decision, address: IPAddress, profile: String, to lines: inout Lines) {
        if !journal && lines.stamp == nil {
            var now = time(nil)
            var parts = tm()
            gmtime_r(&now, &parts)
            var text = [CChar](repeating: 0, count: 32)
            let n = strftime(&text, text.count, "%Y-%m-%dT%H:%M:%SZ ", &parts)
            lines.stamp = text[..<n].map { UInt8(bitPattern: $0) } + Array(tag.utf8)
        }
        // Taken out of `lines` while written, so the buffer stays uniquely owned.
        var b = lines.buffer.take() ?? ByteBufferAllocator().buffer(capacity: 4096)
        defer { lines.buffer = b }
        // The whole line composed in place with plain stores (a line is at most
        // about 200 bytes): ByteBuffer's checked writes, byte by byte, cost more
        // than the decision itself.
        var ipv6: String? = address.family == .v6 ? IPAddress.format(address.value, family: .v6) : nil
        var name = profile
        let stamp = lines.stamp
        b.writeWithUnsafeMutableBytes(minimumWritableBytes: 256) { out in
            let base = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
            var n = 0
            func put(_ s: StaticString) {
                (base + n).update(from: s.utf8Start, count: s.utf8CodeUnitCount)
                n += s.utf8CodeUnitCount
            }
            func put(_ bytes: UnsafeBufferPointer<UInt8>) {
                (base + n).update(from: bytes.baseAddress!, count: bytes.count)
                n += bytes.count
            }
            let deny = decision.verdict == .deny
            if let stamp { stamp.withUnsafeBufferPointer { put($0) } } else { put(deny ? "<5>" : "<6>") }
            put(deny ? "DENY " : "ALLOW ")
            if ipv6 != nil {
                ipv6!.withUTF8 { put($0) }
            } else {
                let v = UInt32(truncatingIfNeeded: address.value)
                for shift in stride(from: 24, through: 0, by: -8) {
                    let octet = UInt8(truncatingIfNeeded: v >> UInt32(shift))
                    if octet >= 100 { base[n] = 0x30 + octet / 100; n += 1 }
                    if octet >= 10 { base[n] = 0x30 + octet / 10 % 10; n += 1 }
                    base[n] = 0x30 + octet % 10
                    n += 1
                    if shift > 0 { base[n] = UInt8(ascii: "."); n += 1 }
                }
            }
            base[n] = 0x20
            if let c = decision.country {
                base[n + 1] = UInt8(truncatingIfNeeded: c.rawValue >> 8)
                base[n + 2] = UInt8(truncatingIfNeeded: c.rawValue)
            } else {
                base[n + 1] = UInt8(ascii: "-")
                base[n + 2] = UInt8(ascii: "-")
            }
            n += 3
            put(" profile=")
            name.withUTF8 { put($0) }
            put(" reason=")
            put(decision.reason.word)
            if let network = decision.reason.network {
                put(" network=")
                var text = network.description
                text.withUTF8 { put($0) }
            }
            base[n] = 0x0A
            return n + 1
        }
    }

    /// Writes what `lines` holds and empties it.
    func write(_ lines: inout Lines) {
        guard let buffer = lines.buffer, buffer.readableBytes > 0 else { return }
        buffer.withUnsafeReadableBytes { Journal.writeLine($0) }
        lines = Lines()
    }
}
