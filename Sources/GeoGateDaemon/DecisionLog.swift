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
    }

    let journal: Bool
    /// "geogate[pid]: ", made once.
    let tag: String

    init(journal: Bool = Journal.isStandardError) {
        self.journal = journal
        self.tag = "geogate[\(getpid())]: "
    }

    func append(_ decision: Decision, address: IPAddress, profile: String, to lines: inout Lines) {
        if lines.buffer == nil { lines.buffer = ByteBufferAllocator().buffer(capacity: 1024) }
        let deny = decision.verdict == .deny
        if journal {
            lines.buffer!.writeStaticString(deny ? "<5>" : "<6>")
        } else {
            var now = time(nil)
            var parts = tm()
            gmtime_r(&now, &parts)
            lines.buffer!.writeWithUnsafeMutableBytes(minimumWritableBytes: 32) { out in
                strftime(out.baseAddress!.assumingMemoryBound(to: CChar.self), 32, "%Y-%m-%dT%H:%M:%SZ ", &parts)
            }
            lines.buffer!.writeString(tag)
        }
        lines.buffer!.writeStaticString(deny ? "DENY " : "ALLOW ")
        lines.buffer!.writeAddress(address)
        lines.buffer!.writeInteger(UInt8(0x20))
        lines.buffer!.writeCountry(decision.country)
        lines.buffer!.writeStaticString(" profile=")
        lines.buffer!.writeString(profile)
        lines.buffer!.writeStaticString(" reason=")
        lines.buffer!.writeStaticString(decision.reason.word)
        if let network = decision.reason.network {
            lines.buffer!.writeStaticString(" network=")
            lines.buffer!.writeString(network.description)
        }
        lines.buffer!.writeInteger(UInt8(0x0A))
    }

    /// Writes what `lines` holds and empties it.
    func write(_ lines: inout Lines) {
        guard let buffer = lines.buffer, buffer.readableBytes > 0 else { return }
        buffer.withUnsafeReadableBytes { Journal.writeLine($0) }
        lines.buffer = nil
    }
}
