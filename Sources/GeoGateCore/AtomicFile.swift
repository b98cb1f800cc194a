#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A system call that failed, with the call's name and errno.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let path: String
    public let errno: Int32

    public init(_ call: String, path: String, errno: Int32) {
        self.call = call
        self.path = path
        self.errno = errno
    }

    public var description: String { "\(path): \(call) failed: \(String(cString: strerror(errno)))" }
}

/// Replaces a file so that readers see either the old bytes or the new bytes, never
/// a partial file: write to a temporary file in the same directory, fsync it, rename
/// it over the target, fsync the directory. On any error the temporary file is
/// removed and the target is untouched.
public enum AtomicFile {
    /// A new file written and fsynced beside its target, not yet in place: a
    /// transaction stages its file first, changes the rest, then commits (rename)
    /// or discards it.
    public struct Staged: Sendable {
        public let target: String
        public let temporary: String

        /// Renames the staged file over the target and fsyncs the directory.
        public func commit() throws(SystemError) {
            if rename(temporary, target) != 0 {
                let e = errno
                unlink(temporary)
                throw SystemError("rename", path: target, errno: e)
            }
            AtomicFile.syncDirectory(of: target)
        }

        public func discard() { unlink(temporary) }
    }

    /// Writes and fsyncs `bytes` to `<path>.tmp.<pid>`; nothing is in place yet.
    public static func stage(_ bytes: UnsafeRawBufferPointer, for path: String, mode: mode_t = 0o644) throws(SystemError) -> Staged {
        let temporary = "\(path).tmp.\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw SystemError("open", path: temporary, errno: errno) }
        func fail(_ call: String, _ e: Int32) -> SystemError {
            close(fd)
            unlink(temporary)
            return SystemError(call, path: temporary, errno: e)
        }
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw fail("write", errno)
            }
            offset += n
        }
        if fsync(fd) != 0 { throw fail("fsync", errno) }
        if close(fd) != 0 {
            let e = errno
            unlink(temporary)
            throw SystemError("close", path: temporary, errno: e)
        }
        return Staged(target: path, temporary: temporary)
    }

    public static func stage(_ bytes: [UInt8], for path: String, mode: mode_t = 0o644) throws(SystemError) -> Staged {
        var result: Result<Staged, SystemError> = .failure(SystemError("write", path: path, errno: EINVAL))
        bytes.withUnsafeBytes { buffer in
            do throws(SystemError) { result = .success(try stage(buffer, for: path, mode: mode)) } catch { result = .failure(error) }
        }
        return try result.get()
    }

    public static func write(_ bytes: UnsafeRawBufferPointer, to path: String, mode: mode_t = 0o644) throws(SystemError) {
        try stage(bytes, for: path, mode: mode).commit()
    }

    public static func write(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644) throws(SystemError) {
        try stage(bytes, for: path, mode: mode).commit()
    }

    /// fsync of the directory holding `path`, so a rename in it is durable.
    public static func syncDirectory(of path: String) {
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let dfd = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }
}
