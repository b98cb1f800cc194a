import GeoGateCore
import GeoGatePolicy

/// One request line of the socket protocol (Docs/PROTOCOL.md): a command word,
/// case-insensitive, and its arguments, separated by spaces.
public enum Request: Sendable, Equatable {
    case lookup(IPAddress)
    case check(profile: String, IPAddress)
    case info
    case stats
    case ping
    /// RELOAD, with an optional one-word reason that the daemon logs ("refresh").
    case reload(reason: String?)
    /// ALLOW, BLOCK, UNLIST or ENTRIES: run-time entries.
    case entry(EntryRequest)

    /// The longest request line accepted, without its newline.
    public static let maxLineLength = 1024

    /// Parses one line (without the newline; a trailing CR is ignored) in place,
    /// without allocating for a well-formed LOOKUP or CHECK (the daemon's hot path;
    /// a profile name of up to 15 bytes is a small string).
    public static func parse(_ line: UnsafeRawBufferPointer) -> Result<Request, ProtocolError> {
        var end = line.count
        if end > 0 && line[end - 1] == 0x0D { end -= 1 }
        // Up to three words, as ranges of `line`; a fourth only makes it "too many".
        var words: (Range<Int>, Range<Int>, Range<Int>) = (0..<0, 0..<0, 0..<0)
        var count = 0
        var i = 0
        while i < end {
            let byte = line[i]
            guard byte >= 0x20 && byte < 0x7F else {
                return .failure(ProtocolError(.notText, "requests are printable ASCII lines"))
            }
            if byte == 0x20 { i += 1; continue }
            var j = i
            while j < end && line[j] != 0x20 {
                guard line[j] >= 0x20 && line[j] < 0x7F else {
                    return .failure(ProtocolError(.notText, "requests are printable ASCII lines"))
                }
                j += 1
            }
            switch count {
            case 0: words.0 = i..<j
            case 1: words.1 = i..<j
            case 2: words.2 = i..<j
            default: break
            }
            count += 1
            i = j
        }
        guard count > 0 else { return .failure(ProtocolError(.syntax, "empty request")) }
        let command = UnsafeRawBufferPointer(rebasing: line[words.0])
        let arguments = count - 1
        func address(_ range: Range<Int>) -> Result<IPAddress, ProtocolError> {
            let bytes = UnsafeRawBufferPointer(rebasing: line[range]).assumingMemoryBound(to: UInt8.self)
            if let a = IPAddress.parse(bytes) { return .success(a) }
            return .failure(ProtocolError(.badAddress, "\"\(String(decoding: bytes.prefix(64), as: UTF8.self))\" is not an IP address"))
        }
        func usage(_ text: String) -> Result<Request, ProtocolError> { .failure(ProtocolError(.syntax, "usage: \(text)")) }
        if command.equalsIgnoringCase("CHECK") {
            guard arguments == 2 else { return usage("CHECK <profile> <ip>") }
            let profile = String(decoding: UnsafeRawBufferPointer(rebasing: line[words.1]), as: UTF8.self)
            return address(words.2).map { .check(profile: profile, $0) }
        }
        if command.equalsIgnoringCase("LOOKUP") {
            guard arguments == 1 else { return usage("LOOKUP <ip>") }
            return address(words.1).map { .lookup($0) }
        }
        if command.equalsIgnoringCase("RELOAD") {
            guard arguments <= 1 else { return usage("RELOAD [reason]") }
            let reason = arguments == 1 ? String(decoding: UnsafeRawBufferPointer(rebasing: line[words.1]).prefix(64), as: UTF8.self) : nil
            return .success(.reload(reason: reason))
        }
        if command.equalsIgnoringCase("ALLOW") || command.equalsIgnoringCase("BLOCK") || command.equalsIgnoringCase("UNLIST")
            || command.equalsIgnoringCase("ENTRIES") {
            // Every byte up to `end` is printable ASCII (checked above).
            return EntryRequest.parse(String(decoding: UnsafeRawBufferPointer(rebasing: line[0..<end]), as: UTF8.self)).map { .entry($0) }
        }
        let bare: [(StaticString, Request)] = [("INFO", .info), ("STATS", .stats), ("PING", .ping)]
        for (name, request) in bare where command.equalsIgnoringCase(name) {
            return arguments == 0 ? .success(request) : usage("\(name)")
        }
        let shown = String(decoding: command.prefix(32), as: UTF8.self).uppercased()
        return .failure(ProtocolError(.unknownCommand, "\"\(shown)\" (commands: LOOKUP CHECK INFO STATS PING RELOAD ALLOW BLOCK UNLIST ENTRIES)"))
    }
}

extension UnsafeRawBufferPointer {
    /// ASCII case-insensitive comparison with an upper-case `word`.
    func equalsIgnoringCase(_ word: StaticString) -> Bool {
        guard count == word.utf8CodeUnitCount else { return false }
        let expected = word.utf8Start
        for i in 0..<count where self[i] & 0xDF != expected[i] { return false }
        return true
    }
}

/// An `ERR <code> <message>` answer; the connection stays usable (except `too-long`).
public struct ProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case syntax, notText = "not-text", unknownCommand = "unknown-command", badAddress = "bad-address",
             unknownProfile = "unknown-profile", tooLong = "too-long", forbidden, reloadFailed = "reload-failed",
             busy, full, notFound = "not-found", badRequest = "bad-request", entryFailed = "entry-failed"
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "ERR \(code.rawValue) \(message)" }
}

/// The run-time entry requests (Docs/PROTOCOL.md):
///
///     ALLOW <profile> <address|network> <duration|0> [reason...]
///     BLOCK <profile> <address|network> <duration|0> [reason...]
///     UNLIST <profile> <address|network>
///     ENTRIES <profile>
///
/// A duration is seconds or 90s, 15m, 2h, 7d; 0 is until unlisted.
public enum EntryRequest: Sendable, Equatable {
    case put(RuntimeEntry.Action, profile: String, network: CIDR, seconds: Int64, reason: String)
    case unlist(profile: String, network: CIDR)
    case count(profile: String)

    /// `line`: printable ASCII.
    static func parse(_ line: String) -> Result<EntryRequest, ProtocolError> {
        let words = line.split(separator: " ", maxSplits: 4, omittingEmptySubsequences: true)
        let command = words[0].uppercased()
        func usage() -> Result<EntryRequest, ProtocolError> {
            .failure(ProtocolError(.syntax, command == "UNLIST" ? "usage: UNLIST <profile> <address|network>"
                                   : command == "ENTRIES" ? "usage: ENTRIES <profile>"
                                   : "usage: \(command) <profile> <address|network> <duration|0> [reason]"))
        }
        func network(_ text: Substring) -> Result<CIDR, ProtocolError> {
            if let a = IPAddress(text) {
                let a4 = a.unmappedIPv4 ?? a
                return .success(CIDR(family: a4.family, address: a4.value, prefixLength: a4.family.bitWidth))
            }
            if let c = CIDR(text), c.prefixLength > 0 { return .success(c) }
            return .failure(ProtocolError(.badAddress, "\"\(text.prefix(64))\" is not an address or a network (CIDR, host bits clear)"))
        }
        switch command {
        case "ENTRIES":
            guard words.count == 2 else { return usage() }
            return .success(.count(profile: String(words[1].prefix(64))))
        case "UNLIST":
            guard words.count == 3 else { return usage() }
            return network(words[2]).map { .unlist(profile: String(words[1].prefix(64)), network: $0) }
        default:
            guard words.count >= 4 else { return usage() }
            guard let seconds = words[3] == "0" ? 0 : RuntimeEntries.parseDuration(String(words[3].prefix(32))), seconds >= 0 else {
                return .failure(ProtocolError(.syntax, "\"\(words[3].prefix(32))\" is not a duration (seconds, or 90s, 15m, 2h, 7d; 0: until unlisted)"))
            }
            let action: RuntimeEntry.Action = command == "ALLOW" ? .allow : .block
            let reason = words.count > 4 ? String(words[4]) : ""
            return network(words[2]).map { .put(action, profile: String(words[1].prefix(64)), network: $0, seconds: seconds, reason: reason) }
        }
    }
}
