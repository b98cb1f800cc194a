import GeoGateCore
import Logging

/// The sources a trie was built from, in merge order: their SHA-256s, as one line.
struct SourceFingerprint: Equatable {
    let text: String

    init(_ hashes: [[UInt8]]) {
        text = hashes.map { hexString($0) }.joined(separator: ",")
    }

    init(line: Substring) { text = String(line) }
}

/// `<refresh.state-dir>/rolled-back`: the sources of data the admin rolled back
/// from, one fingerprint a line (the newest ten), so that a refresh does not put
/// that data straight back.
struct RolledBackList {
    let path: String
    private(set) var entries: [SourceFingerprint] = []

    init(path: String) {
        self.path = path
        if let bytes = try? readWholeFile(path, limit: 1 << 20) {
            entries = String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(SourceFingerprint.init(line:))
        }
    }

    func contains(_ f: SourceFingerprint) -> Bool { entries.contains(f) }
    mutating func add(_ f: SourceFingerprint) { entries.removeAll { $0 == f }; entries.append(f); entries = Array(entries.suffix(10)) }
    mutating func remove(_ f: SourceFingerprint) { entries.removeAll { $0 == f } }

    func save(logger: Logger) {
        do { try AtomicFile.write(Array(entries.map { $0.text + "\n" }.joined().utf8), to: path) } catch {
            logger.warning("\(path): \(error)")
        }
    }
}
