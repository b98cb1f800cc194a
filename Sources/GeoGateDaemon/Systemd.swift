#if canImport(Glibc)
import Glibc
#endif

/// The two systemd protocols a `Type=notify` service with socket activation
/// speaks, written from their documented wire formats (sd_notify(3),
/// sd_listen_fds(3)) so geogate needs no libsystemd.
public enum Systemd {
    /// Sends a state line ("READY=1", "RELOADING=1", "STOPPING=1") to $NOTIFY_SOCKET,
    /// a datagram socket; "@name" is in the abstract namespace. No-op without it.
    public static func notify(_ state: String) {
        guard let env = getenv("NOTIFY_SOCKET") else { return }
        var path = Array(String(cString: env).utf8)
        guard !path.isEmpty, path.count < MemoryLayout<sockaddr_un>.size - 2 else { return }
        if path[0] == UInt8(ascii: "@") { path[0] = 0 }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in path.enumerated() { raw[i] = b }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count)
        let message = Array(state.utf8)
        _ = withUnsafePointer(to: &address) { a in
            a.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                message.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), sa, length) }
            }
        }
    }

    /// "RELOADING=1" with the monotonic time systemd asks for.
    public static func notifyReloading() {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        notify("RELOADING=1\nMONOTONIC_USEC=\(Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000)")
    }

    /// The listening socket systemd passed (fd 3) when $LISTEN_PID is us and
    /// $LISTEN_FDS is at least 1; the variables are then unset, as sd_listen_fds
    /// does, so children do not take the socket for theirs.
    public static func listenDescriptor() -> Int32? {
        guard let pidText = getenv("LISTEN_PID"), let fdsText = getenv("LISTEN_FDS"),
              let pid = Int32(String(cString: pidText)), pid == getpid(),
              let count = Int(String(cString: fdsText)), count >= 1 else { return nil }
        unsetenv("LISTEN_PID")
        unsetenv("LISTEN_FDS")
        unsetenv("LISTEN_FDNAMES")
        let fd: Int32 = 3
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        return fd
    }
}
