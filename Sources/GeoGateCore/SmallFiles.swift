#if canImport(Glibc)
import Glibc
#endif

/// Reads a small file whole (a config, /proc/net/tcp), refusing one over `limit`
/// bytes. Large inputs go through GeoGateImport's SourceFile instead.
public func readWholeFile(_ path: String, limit: Int = 16 << 20) throws(SystemError) -> [UInt8] {
    guard let f = fopen(path, "r") else { throw SystemError("open", path: path, errno: errno) }
    defer { fclose(f) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&buffer, 1, buffer.count, f)
        if n > 0 { bytes += buffer[0..<n] }
        if bytes.count > limit { throw SystemError("read", path: path, errno: EFBIG) }
        if n < buffer.count {
            if ferror(f) != 0 { throw SystemError("read", path: path, errno: errno) }
            return bytes
        }
    }
}

/// Lower-case hex of bytes (SHA-256 digests in `info`, the daemon's INFO).
public func hexString(_ bytes: some Sequence<UInt8>) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 15)])
    }
    return String(decoding: out, as: UTF8.self)
}

/// mkdir -p: creates `path` and the directories above it that are missing.
public func createDirectories(_ path: String, mode: mode_t = 0o755) throws(SystemError) {
    var prefix = path.hasPrefix("/") ? "" : "."
    for part in path.split(separator: "/") {
        prefix += "/" + part
        if mkdir(prefix, mode) != 0 && errno != EEXIST { throw SystemError("mkdir", path: prefix, errno: errno) }
    }
}
