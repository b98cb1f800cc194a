import Foundation
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

/// The `geogate` executable built beside the test bundle.
public let geogateBinary: String = {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent("geogate").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        directory.deleteLastPathComponent()
    }
    return repositoryRoot + "/.build/release/geogate"
}()

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

/// posix_spawn with stdout/stderr to files; returns the pid.
public func spawn(_ program: String, _ args: [String], environment: [String: String]? = nil,
                  stdout: String = "/dev/null", stderr: String) -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    let argv = ([program] + args).map { strdup($0) } + [nil]
    defer { for p in argv { free(p) } }
    // A clean signal mask and default actions: the test runner's threads may block
    // signals, and a child that inherits a blocked SIGTERM (nginx) never stops.
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var none = sigset_t(), defaults = sigset_t()
    sigemptyset(&none)
    sigemptyset(&defaults)
    for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGQUIT] { sigaddset(&defaults, signal) }
    posix_spawnattr_setsigmask(&attributes, &none)
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var pid: pid_t = 0
    let env = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
    defer { for p in env ?? [] { free(p) } }
    let spawned = env.map { posix_spawn(&pid, program, &actions, &attributes, argv, $0) }
        ?? posix_spawn(&pid, program, &actions, &attributes, argv, environ)
    guard spawned == 0 else { return -1 }
    return pid
}

/// Runs to completion; the exit status.
public func run(_ program: String, _ args: [String], environment: [String: String]? = nil,
                stdout: String = "/dev/null", stderr: String) -> Int32 {
    let pid = spawn(program, args, environment: environment, stdout: stdout, stderr: stderr)
    guard pid > 0 else { return -1 }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
}

