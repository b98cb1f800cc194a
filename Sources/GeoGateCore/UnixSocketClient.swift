#if canImport(Glibc)
import Glibc
#endif

/// The client side of the daemon's line protocol over its Unix socket, blocking:
/// a connection (`connect`), or one request line and its one answer line (`ask`).
/// `geogate check --socket`, refresh's RELOAD, the load generator and the tests
/// all talk to the daemon through it.
public enum UnixSocketClient {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
        /// The errno of a failed call, when one failed.
        public let code: Int32?
        init(_ what: String, errno code: Int32? = nil) {
            description = code.map { "\(what): \(String(cString: strerror($0)))" } ?? what
            self.code = code
        }

        /// Nobody listens there: no socket file, or one with no daemon behind it.
        public var daemonIsDown: Bool { code == ENOENT || code == ECONNREFUSED }
    }

    /// A connected stream socket (close it when done); `timeoutSeconds` bounds each read.
    public static func connect(_ path: String, timeoutSeconds: Int = 0) throws(Failure) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw Failure("\(path): socket path longer than \(MemoryLayout.size(ofValue: address.sun_path) - 1) bytes") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure("socket", errno: errno) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            let code = errno
            close(fd)
            throw Failure("cannot connect to \(path)", errno: code)
        }
        if timeoutSeconds > 0 {
            var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }
        return fd
    }

    /// Sends `request` (a newline is added) and returns the answer line without its newline.
    public static func ask(_ path: String, _ request: String, timeoutSeconds: Int = 5) throws(Failure) -> String {
        let fd = try connect(path, timeoutSeconds: timeoutSeconds)
        defer { close(fd) }
        let line = Array((request + "\n").utf8)
        var sent = 0
        while sent < line.count {
            let n = line.withUnsafeBytes { write(fd, $0.baseAddress! + sent, $0.count - sent) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw Failure("write", errno: errno) }
            sent += n
        }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 512)
        while !reply.contains(0x0A) {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN { throw Failure("no answer within \(timeoutSeconds) s") }
            guard n > 0 else { throw n == 0 ? Failure("connection closed without an answer") : Failure("read", errno: errno) }
            reply += buffer[0..<n]
        }
        return String(decoding: reply.prefix { $0 != 0x0A }, as: UTF8.self)
    }
}
