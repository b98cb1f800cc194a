import GeoGateCore
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// The daemon's socket files: one is taken only when nobody answers on it, and
/// removed at shutdown only while it is still the one this daemon bound.
enum SocketFile {
    /// A file's device, inode and change time: what tells our socket from one put
    /// there later (file systems reuse a freed inode number at once; the change
    /// time, in nanoseconds, differs).
    struct Identity: Equatable, Sendable {
        let device: UInt64
        let inode: UInt64
        let changed: Int
        let changedNanoseconds: Int
    }

    static func identity(_ path: String) -> Identity? {
        var s = stat()
        guard lstat(path, &s) == 0 else { return nil }
        return Identity(device: UInt64(s.st_dev), inode: UInt64(s.st_ino), changed: s.st_ctim.tv_sec, changedNanoseconds: s.st_ctim.tv_nsec)
    }

    /// Removes `path` when it is a socket nobody listens on (a daemon that died);
    /// refuses when it is not a socket, or when a daemon answers there.
    static func removeIfStale(_ path: String) throws {
        var s = stat()
        guard lstat(path, &s) == 0 else { return }
        guard (s.st_mode & S_IFMT) == S_IFSOCK else {
            throw ServiceError("\(path): exists and is not a socket; not replacing it")
        }
        do {
            close(try UnixSocketClient.connect(path))
        } catch where error.code == ECONNREFUSED {
            unlink(path)
            return
        } catch {
            throw ServiceError("\(path): cannot tell whether a daemon answers there (\(error)); not replacing it")
        }
        throw ServiceError("\(path): another daemon answers on this socket; not taking it over (stop that one first)")
    }

    /// Unlinks `path` if it is still the file `identity` names.
    static func remove(_ path: String, ifStill identity: Identity) {
        if SocketFile.identity(path) == identity { unlink(path) }
    }

    /// A listening socket at `path` with `mode` and `group`, made here rather than by
    /// NIO's bind: NIO unlinks the path of a socket it bound when it closes it,
    /// whoever's file is there by then, while a socket handed to NIO is left to us.
    static func listen(_ path: String, mode: mode_t, group: gid_t?, backlog: Int32) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ServiceError("\(path): socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() { raw[i] = b }
        }
        func fail(_ what: String) -> ServiceError {
            let code = errno
            close(fd)
            return ServiceError("\(path): \(what): \(String(cString: strerror(code))) (errno \(code))")
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else { throw fail("cannot listen") }
        guard chmod(path, mode) == 0, group.map({ chown(path, uid_t.max, $0) == 0 }) ?? true else {
            let error = fail("cannot set mode/group")
            unlink(path)
            throw error
        }
        guard Glibc.listen(fd, backlog) == 0 else {
            let error = fail("cannot listen")
            unlink(path)
            throw error
        }
        return fd
    }

    /// NIO's socket errors in words: the errno's text, not the Swift call's name.
    static func describe(_ error: Error) -> String {
        if let e = error as? IOError { return "\(String(cString: strerror(e.errnoCode))) (errno \(e.errnoCode))" }
        return "\(error)"
    }
}
