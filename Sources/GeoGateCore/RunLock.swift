#if canImport(Glibc)
import Glibc
#endif

/// The one lock every command that changes live state takes (`apply`, `refresh`,
/// `rollback`): an exclusive flock(2) on `<runtime-dir>/geogate.lock`. The kernel
/// drops a flock when its holder dies, so a killed run never leaves a stale lock;
/// the file only says who holds it (pid and command), for the waiter's message.
public final class RunLock {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
        public init(description: String) { self.description = description }
    }

    private var fd: Int32

    /// Takes the lock, waiting at most `waitSeconds` for another holder (polled
    /// every 50 ms, so the wait is bounded); `waiting` is told once who holds it.
    public init(path: String, waitSeconds: Int, command: String, waiting: (String) -> Void) throws(Failure) {
        // flock needs no write access: a lock file another user created (root's
        // apply before the service user's refresh) is locked read-only, without the note.
        var fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 && errno == EACCES { fd = open(path, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else {
            throw Failure(description: "\(path): cannot open the lock file: \(String(cString: strerror(errno)))")
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            // The holder writes its note just after it takes the lock.
            if RunLock.holder(fd) == nil { usleep(100_000) }
            let holder = RunLock.holder(fd) ?? "another geogate run"
            waiting("\(path) is held by \(holder); waiting up to \(waitSeconds) s for it")
            let deadline = monotonicSeconds() + Double(waitSeconds)
            while flock(fd, LOCK_EX | LOCK_NB) != 0 {
                guard errno == EWOULDBLOCK || errno == EINTR, monotonicSeconds() < deadline else {
                    let reason = errno == EWOULDBLOCK ? "still held by \(RunLock.holder(fd) ?? "another geogate run") after \(waitSeconds) s (lock-wait)"
                                                      : "cannot lock: \(String(cString: strerror(errno)))"
                    close(fd)
                    throw Failure(description: "\(path): \(reason); nothing was changed")
                }
                usleep(50_000)
            }
        }
        self.fd = fd
        let note = Array("pid \(getpid()): \(command)\n".utf8)
        _ = ftruncate(fd, 0)
        _ = note.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    }

    /// "pid 123: geogate refresh", from the lock file (cut, control bytes escaped).
    static func holder(_ fd: Int32) -> String? {
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return nil }
        let text = String(decoding: buffer[0..<n], as: UTF8.self)
        let line = text.split(separator: "\n").first.map(String.init) ?? ""
        return line.isEmpty ? nil : SafeText.field(line, limit: 200)
    }

    /// Gives the lock up (also on deinit); a second call does nothing.
    public func release() {
        guard fd >= 0 else { return }
        _ = ftruncate(fd, 0)
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { release() }
}

/// CLOCK_MONOTONIC in seconds: deadlines that a clock change cannot move.
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
