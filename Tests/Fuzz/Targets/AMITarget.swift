import GeoGateCore
import GeoGateDaemon
import Logging

/// Asterisk Manager Interface text, or FreeSWITCH event socket text (`geogate
/// ami-trust`, `--pbx freeswitch`): the input cut into reads by its first byte,
/// through the event reader, each block through the trust
/// decision. Blocks stay within the caps; a trusted address is a real address of
/// the family its field names; every reason logged is one bounded printable line.
let amiTarget = FuzzTarget("ami", "Asterisk Manager Interface and FreeSWITCH event socket events: the reader's caps, the trust decision") { input throws(FuzzFailure) in
    guard let first = input.first else { return }
    // Byte 0: bit 7 picks FreeSWITCH's event socket (Content-Length bodies), the rest the read size.
    let eventSocket = first & 0x80 != 0
    let step = max(1, Int(first & 0x7F))
    let body = UnsafeRawBufferPointer(rebasing: input.dropFirst())
    var reader = AMIEventReader(eventSocket: eventSocket)
    let trust = AMITrust(settings: .init(host: "127.0.0.1", port: 5038, username: "u", secret: "s", profile: "full", seconds: 600,
                                         services: ["PJSIP", "SIP", "IAX2"], daemonSocket: "/nonexistent",
                                         pbx: eventSocket ? .freeswitch : .asterisk),
                         logger: Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() }))
    var offset = 0
    while offset < body.count {
        let chunk = UnsafeRawBufferPointer(rebasing: body[offset..<min(body.count, offset + step)])
        offset += step
        let blocks: [[(String, String)]]
        do throws(AMIEventReader.Failure) { blocks = try reader.feed(chunk) } catch {
            try expectShownSafely(error.description, limit: 512, "the AMI reader's error")
            return
        }
        for block in blocks {
            guard block.count <= AMIEventReader.maxFields else { throw FuzzFailure("a block of \(block.count) fields") }
            switch trust.decide(block) {
            case .trust(let address, let service, let account) where eventSocket:
                guard IPAddress(AMIEventReader.value("network-ip", in: block) ?? "").map({ $0.unmappedIPv4 ?? $0 }) == address else {
                    throw FuzzFailure("trusted \(address), not the event's network-ip")
                }
                try expectShownSafely(service + account, limit: 512, "a trusted event's service and account")
            case .trust(let address, let service, let account):
                let field = AMIEventReader.value("RemoteAddress", in: block) ?? ""
                // IPv4 from an IPV4 field (or an IPV6 field's mapped form), IPv6 only from an IPV6 field.
                guard field.hasPrefix("IPV6/") || (address.family == .v4 && field.hasPrefix("IPV4/")) else {
                    throw FuzzFailure("trusted \(address) from \(SafeText.field(field))")
                }
                try expectShownSafely(service + account, limit: 512, "a trusted event's service and account")
            case .skip(let why):
                try expectShownSafely(why, limit: 1024, "a skipped event's reason")
            case .other:
                break
            }
        }
    }
    if let banner = reader.banner { try expectShownSafely(banner, limit: 512, "the AMI banner") }
}
