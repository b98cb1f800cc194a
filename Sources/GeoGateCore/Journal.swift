#if canImport(Glibc)
import Glibc
#endif

/// systemd's journal as the reader of standard error: under a unit, systemd sets
/// $JOURNAL_STREAM to the device and inode of the stream it connected to fd 2, and
/// a line that starts with `<N>` (sd-daemon's prefix) is stored with priority N,
/// so `journalctl -p err` finds it. Lines written elsewhere (a terminal, a file)
/// carry no such prefix.
public enum Journal {
    /// True when standard error is the journal's stream (checked once).
    public static let isStandardError: Bool = {
        guard let value = getenv("JOURNAL_STREAM") else { return false }
        let parts = String(cString: value).split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var s = stat()
        guard fstat(2, &s) == 0 else { return false }
        return UInt64(s.st_dev) == device && UInt64(s.st_ino) == inode
    }()

    /// sd-daemon priorities (syslog's levels).
    public enum Priority: Int, Sendable {
        case critical = 2, error = 3, warning = 4, notice = 5, info = 6, debug = 7
    }

    /// Writes one line (a newline is added) to standard error in a single write(2),
    /// so lines of different threads never interleave.
    public static func writeLine(_ bytes: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < bytes.count {
            let n = write(2, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            offset += n
        }
    }
}
