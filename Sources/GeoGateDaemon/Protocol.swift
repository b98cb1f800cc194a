import GeoGateCore

/// One request line of the socket protocol (Docs/PROTOCOL.md): a command word,
/// case-insensitive, and its arguments, separated by spaces.
public enum Request: Sendable, Equatable {
    case lookup(IPAddress)
    case check(profile: String, IPAddress)
    case info
    case stats
    case ping
    case reload

    /// The longest request line accepted, without its newline.
    public static let maxLineLength = 1024

    /// Parses one line (without the newline; a trailing CR is ignored).
    public static func parse(_ line: some Collection<UInt8>) -> Result<Request, ProtocolError> {
        var bytes = Array(line)
        if bytes.last == 0x0D { bytes.removeLast() }
        guard bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else {
            return .failure(ProtocolError(.notText, "requests are printable ASCII lines"))
        }
        let words = bytes.split(separator: 0x20).map { String(decoding: $0, as: UTF8.self) }
        guard let command = words.first?.uppercased() else { return .failure(ProtocolError(.syntax, "empty request")) }
        let args = Array(words.dropFirst())
        func address(_ text: String) -> Result<IPAddress, ProtocolError> {
            IPAddress(text).map { .success($0) } ?? .failure(ProtocolError(.badAddress, "\"\(text.prefix(64))\" is not an IP address"))
        }
        func arity(_ n: Int, _ usage: String) -> ProtocolError? {
            args.count == n ? nil : ProtocolError(.syntax, "usage: \(usage)")
        }
        switch command {
        case "LOOKUP":
            if let e = arity(1, "LOOKUP <ip>") { return .failure(e) }
            return address(args[0]).map { .lookup($0) }
        case "CHECK":
            if let e = arity(2, "CHECK <profile> <ip>") { return .failure(e) }
            return address(args[1]).map { .check(profile: args[0], $0) }
        case "INFO": return arity(0, "INFO").map { .failure($0) } ?? .success(.info)
        case "STATS": return arity(0, "STATS").map { .failure($0) } ?? .success(.stats)
        case "PING": return arity(0, "PING").map { .failure($0) } ?? .success(.ping)
        case "RELOAD": return arity(0, "RELOAD").map { .failure($0) } ?? .success(.reload)
        default:
            return .failure(ProtocolError(.unknownCommand, "\"\(command.prefix(32))\" (commands: LOOKUP CHECK INFO STATS PING RELOAD)"))
        }
    }
}

/// An `ERR <code> <message>` answer; the connection stays usable (except `too-long`).
public struct ProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case syntax, notText = "not-text", unknownCommand = "unknown-command", badAddress = "bad-address",
             unknownProfile = "unknown-profile", tooLong = "too-long", forbidden, reloadFailed = "reload-failed",
             busy
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "ERR \(code.rawValue) \(message)" }
}
