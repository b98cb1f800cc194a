import Foundation
import GeoGateCore
#if canImport(Glibc)
import Glibc
#endif

/// Shared by the test targets: where the repository and the built `geogate` are.

/// The repository root (tests read Data/ and Scripts/).
public let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// The `geogate` executable built beside the test bundle ($GEOGATE_TEST_BINARY
/// instead, to run the tests against another build, e.g. an earlier release).
public let geogateBinary: String = {
    if let other = ProcessInfo.processInfo.environment["GEOGATE_TEST_BINARY"] { return other }
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent("geogate").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        directory.deleteLastPathComponent()
    }
    return repositoryRoot + "/.build/release/geogate"
}()

/// True when Scripts/asan-test.sh runs the suite with geogate built under
/// AddressSanitizer, whose shadow memory and quarantine add 100-200 MB to a process.
public let runningUnderAddressSanitizer = ProcessInfo.processInfo.environment["GEOGATE_TEST_ASAN"] == "1"

/// compile and refresh stay under 300 MB on any input (peak RSS in KiB); not
/// measurable under AddressSanitizer, where this always holds.
public func withinMemoryBound(_ kib: Int) -> Bool {
    runningUnderAddressSanitizer || kib < 300 * 1024
}

/// What a command printed and how it ended.
public struct CommandResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String

    public init(status: Int32, stdout: String, stderr: String) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }
}

/// Starts `program` (clean signal mask, default signal actions: the test
/// runner's threads may block signals, and a child that inherits a blocked
/// SIGTERM, nginx, never stops) with stdout/stderr to files; the pid, or -1.
public func spawn(_ program: String, _ args: [String], environment: [String: String]? = nil,
                  stdout: String = "/dev/null", stderr: String) -> pid_t {
    ChildProcess.spawn(program, args, environment: environment.map { $0.map { "\($0.key)=\($0.value)" } },
                       stdout: stdout, stderr: stderr) ?? -1
}

/// Runs to completion; the exit status.
public func run(_ program: String, _ args: [String], environment: [String: String]? = nil,
                stdout: String = "/dev/null", stderr: String) -> Int32 {
    let pid = spawn(program, args, environment: environment, stdout: stdout, stderr: stderr)
    return pid > 0 ? ChildProcess.wait(pid) : -1
}

