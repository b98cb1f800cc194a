import GeoGateCore
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Auto-trust from Asterisk: the Asterisk Manager Interface's security events
/// (`SuccessfulAuth`, sent when a phone registers or places a call with a valid
/// password) become run-time allow entries on the daemon's socket, so a phone's
/// address is let in while it keeps registering, and a bad password on another
/// phone of the same office cannot get the whole office blocked. (MiRTA PBX calls
/// this "Autowhitelist from Tenants IP Registration".)
///
/// The AMI is a text protocol over TCP: a banner line, then blocks of `Key: Value`
/// lines, each block ended by an empty line (RFC 822 style, CRLF). Everything read
/// is bounded: a line over `maxLineBytes` or a block over `maxFields` ends the
/// connection, as does silence past the keepalive.
public struct AMIEventReader {
    public static let maxLineBytes = 4096
    public static let maxFields = 128

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public static let maxBodyBytes = 65536

    private var line: [UInt8] = []
    private var fields: [(String, String)] = []
    /// The banner (`Asterisk Call Manager/9.0.0`) comes first, alone on its line.
    public private(set) var banner: String?
    /// FreeSWITCH's event socket (ESL) instead: no banner, and a block with a
    /// `Content-Length` is followed by that many bytes of body, whose own
    /// `Key: Value` lines (values percent-encoded) are the event.
    let eventSocket: Bool
    private var bodyLength: Int?
    private var bodyType = ""
    private var body: [UInt8] = []

    public init(eventSocket: Bool = false) {
        self.eventSocket = eventSocket
    }

    /// Takes the bytes of one read; returns the blocks completed by them (each a
    /// list of fields, keys as sent), or throws on a line or block over the caps.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) throws(Failure) -> [[(String, String)]] {
        var blocks: [[(String, String)]] = []
        for byte in bytes {
            if let length = bodyLength {
                body.append(byte)
                if body.count == length {
                    // The header's Content-Type first: an event, an api answer, a disconnect notice.
                    blocks.append([("Content-Type", bodyType)] + Self.eventBody(body))
                    body.removeAll(keepingCapacity: true)
                    bodyLength = nil
                }
                continue
            }
            if byte != 0x0A {
                guard line.count < Self.maxLineBytes else {
                    throw Failure(description: "a line of over \(Self.maxLineBytes) bytes: not the Asterisk Manager Interface?")
                }
                line.append(byte)
                continue
            }
            if line.last == 0x0D { line.removeLast() }
            defer { line.removeAll(keepingCapacity: true) }
            if banner == nil && !eventSocket {
                banner = SafeText.bytes(line, limit: 120)
                continue
            }
            if line.isEmpty {
                if eventSocket, let text = Self.value("Content-Length", in: fields) {
                    guard let length = Int(text), length >= 0, length <= Self.maxBodyBytes else {
                        throw Failure(description: "a Content-Length of \(SafeText.field(text, limit: 20)) (at most \(Self.maxBodyBytes))")
                    }
                    bodyType = Self.value("Content-Type", in: fields) ?? ""
                    fields.removeAll()
                    if length > 0 { bodyLength = length } else { blocks.append([("Content-Type", bodyType)]) }
                    continue
                }
                if !fields.isEmpty { blocks.append(fields) }
                fields.removeAll()
                continue
            }
            guard fields.count < Self.maxFields else { throw Failure(description: "a block of over \(Self.maxFields) fields") }
            // "Key: Value"; a line without the colon is kept as a key with no value.
            if let colon = line.firstIndex(of: 0x3A) {
                var valueStart = colon + 1
                while valueStart < line.count && line[valueStart] == 0x20 { valueStart += 1 }
                fields.append((String(decoding: line[..<colon], as: UTF8.self), String(decoding: line[valueStart...], as: UTF8.self)))
            } else {
                fields.append((String(decoding: line, as: UTF8.self), ""))
            }
        }
        return blocks
    }

    /// An ESL event body: `Key: Value` lines, values percent-encoded.
    static func eventBody(_ body: [UInt8]) -> [(String, String)] {
        var out: [(String, String)] = []
        for raw in body.split(separator: 0x0A) where out.count < maxFields {
            let line = raw.last == 0x0D ? raw.dropLast() : raw[...]
            guard let colon = line.firstIndex(of: 0x3A) else { continue }
            var value = line[(colon + 1)...].drop { $0 == 0x20 }
            var decoded: [UInt8] = []
            decoded.reserveCapacity(value.count)
            while let b = value.first {
                value = value.dropFirst()
                if b == 0x25, value.count >= 2, let h = hex(value[value.startIndex]), let l = hex(value[value.startIndex + 1]) {
                    decoded.append(h << 4 | l)
                    value = value.dropFirst(2)
                } else {
                    decoded.append(b)
                }
            }
            out.append((String(decoding: line[..<colon], as: UTF8.self), String(decoding: decoded, as: UTF8.self)))
        }
        return out
    }

    static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x41...0x46: c - 0x41 + 10
        case 0x61...0x66: c - 0x61 + 10
        default: nil
        }
    }

    /// The value of `key` (case-insensitive, as Asterisk's own readers take it).
    public static func value(_ key: String, in block: [(String, String)]) -> String? {
        block.first { $0.0.lowercased() == key.lowercased() }?.1
    }

    /// The address of an AMI address field: `IPV4/UDP/198.51.100.44/5060`,
    /// `IPV6/TCP/2001:db8::7/5061` (transport UDP, TCP, TLS, WS, WSS).
    public static func address(_ field: String) -> IPAddress? {
        let parts = field.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "IPV4" || parts[0] == "IPV6", let a = IPAddress(parts[2]),
              (a.family == .v4) == (parts[0] == "IPV4") else { return nil }
        return a.unmappedIPv4 ?? a
    }
}

/// What `geogate ami-trust` does with each block: an address to trust, or why not.
public enum AMITrustDecision: Equatable, Sendable {
    case trust(IPAddress, service: String, account: String)
    /// A SuccessfulAuth not acted on, and why (logged).
    case skip(String)
    /// Not a SuccessfulAuth event: nothing to say.
    case other
}

public enum PBX: String, Sendable {
    case asterisk, freeswitch
}

/// Connects to the AMI (or FreeSWITCH's event socket), logs in, and turns the
/// events of phones that authenticated into `ALLOW` requests.
public final class AMITrust {
    public struct Settings: Sendable {
        public var host: String
        public var port: UInt16
        public var username: String
        public var secret: String
        public var profile: String
        /// How long a trust lasts (renewed by the next registration).
        public var seconds: Int
        /// The services whose SuccessfulAuth counts (PJSIP, SIP, IAX2): not AMI's own logins.
        public var services: Set<String>
        public var daemonSocket: String
        /// Asterisk's AMI (SuccessfulAuth), or FreeSWITCH's event socket (sofia::register).
        public var pbx: PBX
        public init(host: String, port: UInt16, username: String, secret: String, profile: String, seconds: Int,
                    services: Set<String>, daemonSocket: String, pbx: PBX = .asterisk) {
            self.pbx = pbx
            self.host = host
            self.port = port
            self.username = username
            self.secret = secret
            self.profile = profile
            self.seconds = seconds
            self.services = services
            self.daemonSocket = daemonSocket
        }
    }

    let settings: Settings
    let logger: Logger
    /// When each address was last trusted (monotonic seconds): a registration
    /// storm renews each address at most once per `renewAfter`. Bounded.
    private var lastTrusted: [IPAddress: Double] = [:]
    static let maxRemembered = 100_000
    /// Silence after which a Ping is sent, and after which the connection is dropped.
    static let keepaliveSeconds = 60.0

    public private(set) var trusted = 0
    public private(set) var events = 0

    public init(settings: Settings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    /// What the log lines start with.
    var tag: String { settings.pbx == .freeswitch ? "FreeSWITCH" : "AMI" }

    var renewAfter: Double { Double(min(max(settings.seconds / 4, 1), 300)) }

    /// What to do with one event block.
    public func decide(_ block: [(String, String)]) -> AMITrustDecision {
        if settings.pbx == .freeswitch {
            // sofia::register: a registration the profile accepted (its credentials
            // checked); register_attempt and register_failure are other subclasses.
            guard AMIEventReader.value("Event-Name", in: block) == "CUSTOM",
                  AMIEventReader.value("Event-Subclass", in: block) == "sofia::register" else { return .other }
            let account = SafeText.field(AMIEventReader.value("username", in: block) ?? AMIEventReader.value("from-user", in: block) ?? "?", limit: 64)
            let ip = AMIEventReader.value("network-ip", in: block) ?? ""
            guard let a = IPAddress(ip) else { return .skip("network-ip \(SafeText.field(ip, limit: 80)) is not an address") }
            return .trust(a.unmappedIPv4 ?? a, service: "sofia", account: account)
        }
        guard AMIEventReader.value("Event", in: block) == "SuccessfulAuth" else { return .other }
        let service = AMIEventReader.value("Service", in: block) ?? ""
        let account = SafeText.field(AMIEventReader.value("AccountID", in: block) ?? "?", limit: 64)
        guard settings.services.contains(service) else { return .skip("service \(SafeText.field(service, limit: 32)) is not one of \(settings.services.sorted().joined(separator: ","))") }
        guard AMIEventReader.value("UsingPassword", in: block) != "0" else { return .skip("account \(account) authenticated without a password") }
        let remote = AMIEventReader.value("RemoteAddress", in: block) ?? ""
        guard let address = AMIEventReader.address(remote) else { return .skip("RemoteAddress \(SafeText.field(remote, limit: 80)) is not an address") }
        return .trust(address, service: SafeText.field(service, limit: 32), account: account)
    }

    /// One session: connect, log in, act on events until the connection ends.
    /// Throws why it ended (the caller reconnects).
    public func runSession() throws(AMIEventReader.Failure) {
        let fd = try connect()
        defer { close(fd) }
        let esl = settings.pbx == .freeswitch
        // The AMI takes the login at once; the event socket asks for it first.
        if !esl { try send(fd, "Action: Login\r\nUsername: \(settings.username)\r\nSecret: \(settings.secret)\r\nEvents: security\r\n\r\n") }
        var reader = AMIEventReader(eventSocket: esl)
        var loggedIn = false
        var buffer = [UInt8](repeating: 0, count: 65536)
        var lastData = monotonicSeconds()
        var pinged = false
        while true {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, 1000)
            if ready < 0 && errno != EINTR { throw AMIEventReader.Failure(description: "poll: \(String(cString: strerror(errno)))") }
            if ready <= 0 {
                let idle = monotonicSeconds() - lastData
                if idle > 3 * Self.keepaliveSeconds { throw AMIEventReader.Failure(description: "no answer for \(Int(idle)) s") }
                if idle > Self.keepaliveSeconds && !pinged {
                    try send(fd, esl ? "api uptime\n\n" : "Action: Ping\r\n\r\n")
                    pinged = true
                }
                continue
            }
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw AMIEventReader.Failure(description: n == 0 ? "the \(esl ? "event socket" : "AMI") closed the connection" : "read: \(String(cString: strerror(errno)))") }
            lastData = monotonicSeconds()
            pinged = false
            let fed = buffer.withUnsafeBytes { bytes in
                Result { () throws(AMIEventReader.Failure) in try reader.feed(UnsafeRawBufferPointer(rebasing: bytes[0..<n])) }
            }
            let blocks = try fed.get()
            for block in blocks {
                if esl {
                    switch AMIEventReader.value("Content-Type", in: block) {
                    case "auth/request":
                        try send(fd, "auth \(settings.secret)\n\n")
                        continue
                    case "command/reply" where !loggedIn:
                        let reply = AMIEventReader.value("Reply-Text", in: block) ?? ""
                        guard reply.hasPrefix("+OK") else {
                            throw AMIEventReader.Failure(description: "the event socket refused the password: \(SafeText.field(reply, limit: 200))")
                        }
                        loggedIn = true
                        logger.info("FreeSWITCH: logged in to the event socket at \(settings.host):\(settings.port)")
                        try send(fd, "event plain CUSTOM sofia::register\n\n")
                        continue
                    case "text/disconnect-notice":
                        throw AMIEventReader.Failure(description: "the event socket closed the connection")
                    case "text/event-plain":
                        break
                    default:
                        continue  // replies and api responses
                    }
                    guard loggedIn else { continue }
                    events += 1
                    act(on: block)
                    continue
                }
                if !loggedIn {
                    guard let response = AMIEventReader.value("Response", in: block) else { continue }
                    guard response == "Success" else {
                        throw AMIEventReader.Failure(description: "login as \(SafeText.field(settings.username, limit: 64)) refused: "
                                                     + SafeText.field(AMIEventReader.value("Message", in: block) ?? response, limit: 200))
                    }
                    loggedIn = true
                    logger.info("AMI: logged in to \(settings.host):\(settings.port) (\(reader.banner ?? "no banner")) as \(SafeText.field(settings.username, limit: 64))")
                    continue
                }
                events += 1
                act(on: block)
            }
        }
    }

    /// Trusts the address of a SuccessfulAuth (at most once per renewAfter).
    func act(on block: [(String, String)]) {
        switch decide(block) {
        case .other: return
        case .skip(let why): logger.info("\(settings.pbx == .freeswitch ? "FreeSWITCH: sofia::register" : "AMI: SuccessfulAuth") not trusted: \(why)")
        case .trust(let address, let service, let account):
            let now = monotonicSeconds()
            if let last = lastTrusted[address], now - last < renewAfter { return }
            if lastTrusted.count >= Self.maxRemembered {
                // Forget the oldest half: they are renewed again at their next registration.
                let cut = lastTrusted.values.sorted()[lastTrusted.count / 2]
                lastTrusted = lastTrusted.filter { $0.value > cut }
            }
            let request = "ALLOW \(settings.profile) \(address) \(settings.seconds) ami \(service) \(account)"
            do {
                let answer = try UnixSocketClient.ask(settings.daemonSocket, request, timeoutSeconds: 5)
                if answer.hasPrefix("OK ") {
                    lastTrusted[address] = now
                    trusted += 1
                    logger.notice("\(tag): trusted \(address) for \(settings.seconds) s (\(service) account \(account) authenticated)")
                } else {
                    logger.warning("\(tag): the daemon refused to trust \(address): \(SafeText.field(answer, limit: 300))")
                }
            } catch {
                logger.error("\(tag): cannot ask the daemon at \(settings.daemonSocket) to trust \(address): \(error)")
            }
        }
    }

    /// Sessions for ever, reconnecting after 1 s, doubling to 60 s while they fail
    /// at once; `once`: one session only (tests, a first try by hand).
    public func run(once: Bool) -> Int32 {
        var backoff = 1.0
        while true {
            let started = monotonicSeconds()
            do { try runSession() } catch {
                logger.warning("\(tag): \(error)")
            }
            if once { return 0 }
            if monotonicSeconds() - started > 60 { backoff = 1 }
            logger.info("\(tag): reconnecting in \(Int(backoff)) s")
            usleep(UInt32(backoff * 1_000_000))
            backoff = min(backoff * 2, 60)
        }
    }

    /// A TCP connection to host:port (a numeric address: no DNS at run time), or
    /// why not, within 10 s.
    func connect() throws(AMIEventReader.Failure) -> Int32 {
        guard let address = IPAddress(settings.host) else { throw AMIEventReader.Failure(description: "\(settings.host) is not an IP address") }
        let fd = socket(address.family == .v4 ? AF_INET : AF_INET6, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue | SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw AMIEventReader.Failure(description: "socket: \(String(cString: strerror(errno)))") }
        var ok: Int32
        if address.family == .v4 {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = settings.port.bigEndian
            sa.sin_addr.s_addr = UInt32(truncatingIfNeeded: address.value).bigEndian
            ok = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        } else {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = settings.port.bigEndian
            withUnsafeMutableBytes(of: &sa.sin6_addr) { b in for i in 0..<16 { b[i] = UInt8(truncatingIfNeeded: address.value >> UInt128(8 * (15 - i))) } }
            ok = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        }
        if ok != 0 && errno == EINPROGRESS {
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            if poll(&p, 1, 10_000) == 1, getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0, error == 0 { ok = 0 } else {
                errno = error != 0 ? error : ETIMEDOUT
            }
        }
        guard ok == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw AMIEventReader.Failure(description: "cannot connect to \(settings.host):\(settings.port): \(why)")
        }
        return fd
    }

    func send(_ fd: Int32, _ text: String) throws(AMIEventReader.Failure) {
        let bytes = Array(text.utf8)
        var sent = 0
        let deadline = monotonicSeconds() + 10
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + sent, $0.count - sent) }
            if n > 0 { sent += n; continue }
            guard n < 0, errno == EAGAIN || errno == EINTR, monotonicSeconds() < deadline else {
                throw AMIEventReader.Failure(description: "write: \(String(cString: strerror(errno)))")
            }
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = poll(&p, 1, 100)
        }
    }
}
