import GeoGateCore
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Where `serve`, `refresh` and `rollback` log: standard error, as lines a person
/// reads (swift-log's stream format), or, under systemd, as the journal's lines
/// with a priority prefix (`<3>` for errors), so `journalctl -p err -u geogate`
/// shows geogate's errors and nothing less.
func bootstrapLogging() {
    if Journal.isStandardError {
        LoggingSystem.bootstrap { JournalLogHandler(label: $0) }
    } else {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
    }
}

/// `<N>message [metadata]`: the journal adds the time, the unit and the pid.
struct JournalLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String,
             file: String, function: String, line: UInt) {
        let priority: Journal.Priority = switch level {
        case .trace, .debug: .debug
        case .info: .info
        case .notice: .notice
        case .warning: .warning
        case .error: .error
        case .critical: .critical
        }
        let all = metadata.merging(explicit ?? [:]) { $1 }
        var text = "<\(priority.rawValue)>\(message)"
        if !all.isEmpty { text += " " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
        // One journal entry per line: a message's own newlines would split it.
        text = text.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: " ") + "\n"
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBytes { Journal.writeLine(UnsafeRawBufferPointer($0)) }
    }
}
