import Foundation
import GeoGateCore
import Testing

/// What a child started through ChildProcess gets: no descriptor of ours beyond
/// 0-2, default signal actions even where we ignore a signal, and its exit status.
struct ChildProcessTests {
    @Test func theChildGetsOnlyItsStandardDescriptorsAndDefaultSignals() throws {
        let out = NSTemporaryDirectory() + "geogate-child-\(UUID().uuidString)"
        defer { unlink(out) }
        let inherited = open("/dev/null", O_RDONLY)  // no O_CLOEXEC: would be inherited by plain posix_spawn
        defer { close(inherited) }
        try #require(inherited > 2)
        let previous = signal(SIGHUP, SIG_IGN)
        defer { signal(SIGHUP, previous) }
        let script = "[ -e /proc/self/fd/\(inherited) ] && echo fd-open || echo fd-closed; grep -E '^SigIgn' /proc/self/status; exit 7"
        let pid = try #require(ChildProcess.spawn("/bin/sh", ["-c", script], stdout: out, stderr: "/dev/null"))
        #expect(ChildProcess.wait(pid) == 7)
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
        #expect(lines.first == "fd-closed")
        // SIGHUP is signal 1: bit 0 of the ignored mask must be clear.
        let ignored = UInt64(lines.last?.split(separator: "\t").last ?? "", radix: 16) ?? .max
        #expect(ignored & 1 == 0, "SIGHUP is not ignored in the child: \(lines)")
    }
}
