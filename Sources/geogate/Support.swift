import ArgumentParser
import GeoGateTrie
#if canImport(Glibc)
import Glibc
#endif

/// Writes a line to standard error.
func printError(_ message: String) {
    let line = Array((message + "\n").utf8)
    line.withUnsafeBytes { _ = Glibc.write(2, $0.baseAddress, $0.count) }
}

/// Opens a trie file; a bad file is a clear message and exit status 2.
func openTrie(_ path: String) throws -> TrieFile {
    do {
        return try TrieFile(path: path)
    } catch {
        printError("geogate: \(error)")
        throw ExitCode(2)
    }
}

/// Buffered standard output for commands that print many lines.
struct OutputBuffer {
    var bytes: [UInt8] = []

    init() { bytes.reserveCapacity(1 << 16) }

    mutating func write(_ text: String) {
        bytes.append(contentsOf: text.utf8)
        if bytes.count >= 1 << 16 { flush() }
    }

    mutating func flush() {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(1, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 {
                if n < 0 && errno == EINTR { continue }
                break
            }
            offset += n
        }
        bytes.removeAll(keepingCapacity: true)
    }
}

/// This process's program file (/proc/self/exe): where the embedded data is
/// looked for, and what the daemon runs for its own `refresh`.
func executablePath() -> String? {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard n > 0 else { return nil }
    return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Where the embedded dataset lives: $GEOGATE_DATA, ./Data, beside the source tree
/// the binary was built in (.build/<config>/geogate → Data/), or /usr/share/geogate.
func embeddedDataDirectory() -> String? {
    var candidates: [String] = []
    if let env = getenv("GEOGATE_DATA") { candidates.append(String(cString: env)) }
    candidates.append("Data")
    if let exe = executablePath() {
        var parts = exe.split(separator: "/", omittingEmptySubsequences: false).dropLast()
        for _ in 0..<4 {
            candidates.append(parts.joined(separator: "/") + "/Data")
            guard !parts.isEmpty else { break }
            parts = parts.dropLast()
        }
    }
    candidates.append("/usr/share/geogate")
    for directory in candidates where access(directory + "/geoip.gz", R_OK) == 0 {
        return directory
    }
    return nil
}
