import GeoGateCore
import GeoGatePolicy
#if canImport(Glibc)
import Glibc
#endif

/// How the last `geogate refresh` ended, kept in `<refresh.state-dir>/last-refresh`
/// for `geogate status`: `key=value` lines (time, exit, outcome, message), the
/// message escaped and cut (it may quote a server's words).
public struct RefreshRecord: Sendable, Equatable {
    public var time: Int64
    /// The refresh's exit status: 0 changed, 3 unchanged, 1 failed.
    public var exitStatus: Int
    /// changed, unchanged or failed.
    public var outcome: String
    public var message: String

    public init(time: Int64, exitStatus: Int, outcome: String, message: String) {
        self.time = time
        self.exitStatus = exitStatus
        self.outcome = outcome
        self.message = message
    }

    /// Written atomically; a failure to write is only a warning's worth (the
    /// refresh itself is done).
    public func write(to path: String) throws {
        let text = "time=\(time)\nexit=\(exitStatus)\noutcome=\(outcome)\nmessage=\(SafeText.field(message, limit: 400))\n"
        try AtomicFile.write(Array(text.utf8), to: path)
    }

    /// nil when there is no record (no refresh ran) or it cannot be read.
    public static func read(_ path: String) -> RefreshRecord? {
        guard let bytes = try? readWholeFile(path, limit: 1 << 16) else { return nil }
        var fields: [Substring: Substring] = [:]
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            fields[line[..<eq]] = line[line.index(after: eq)...]
        }
        guard let t = fields["time"].flatMap({ Int64($0) }), let e = fields["exit"].flatMap({ Int($0) }),
              let o = fields["outcome"] else { return nil }
        return RefreshRecord(time: t, exitStatus: e, outcome: String(o), message: String(fields["message"] ?? ""))
    }
}
