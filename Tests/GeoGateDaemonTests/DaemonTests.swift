import Foundation
import GeoGateCore
import GeoGateTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A `geogate serve` process of the test's own, on a socket in a scratch folder.
final class Daemon {
    let directory: String
    let socket: String
    let configPath: String
    let triePath: String
    var pid: pid_t = 0

    /// With `journal`, the daemon's standard error (serve.log) is announced as the
    /// journal's stream ($JOURNAL_STREAM = its device:inode), as systemd does.
    let journal: Bool

    init(config extra: String = "", idleTimeout: Int = 30, maxConnections: Int = 2000, httpSocket: Bool = false,
         watchInterval: Int = 0, socketMode: String = "0666", socketGroup: String? = nil, daemon daemonExtra: String = "",
         journal: Bool = false) throws {
        self.journal = journal
        directory = NSTemporaryDirectory() + "geogate-daemon-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        chmod(directory, 0o755)
        socket = directory + "/geogate.sock"
        triePath = directory + "/countries.trie"
        configPath = directory + "/geogate.conf"
        try Daemon.compile(nil, to: triePath)
        // The run lock, the set record and the run-time entries stay in the test's directory.
        try """
            database: \(triePath)
            runtime-dir: \(directory)/run
            state-dir: \(directory)/state
            daemon:
              socket: \(socket)
              socket-mode: "\(socketMode)"
            \(socketGroup.map { "  socket-group: \($0)" } ?? "")
            \(daemonExtra)
              idle-timeout: \(idleTimeout)
              max-connections: \(maxConnections)
              watch-interval: \(watchInterval)
            \(httpSocket ? "  http-socket: \(directory)/http.sock" : "")
            profiles:
              full:
                scope: full-server
                allow-countries: [IT, CH]
              web:
                scope: web-only
                allow-countries: [GB]
            \(extra)
            """.write(toFile: configPath, atomically: true, encoding: .utf8)
        try start()
    }

    /// Compiles the embedded dataset, or a DB-IP CSV text, into `path` (atomically).
    static func compile(_ csv: String?, to path: String) throws {
        var args = ["compile", "-q", "-o", path, "--build-time", "1700000000"]
        if let csv {
            let input = path + ".csv"
            try csv.write(toFile: input, atomically: true, encoding: .utf8)
            args.insert(input, at: 1)
        }
        let status = run(geogateBinary, args, stderr: "/dev/null")
        guard status == 0 else { throw CocoaError(.fileWriteUnknown) }
        chmod(path, 0o644)
    }

    func start() throws {
        let log = directory + "/serve.log"
        var environment: [String: String]?
        if journal {
            FileManager.default.createFile(atPath: log, contents: nil)
            var s = stat()
            stat(log, &s)
            environment = ProcessInfo.processInfo.environment.merging(["JOURNAL_STREAM": "\(s.st_dev):\(s.st_ino)"]) { $1 }
        }
        pid = spawn(geogateBinary, ["serve", "--config", configPath], environment: environment, stderr: log)
        // Ready when a connection is accepted: the socket file exists from bind(),
        // a moment before listen() (a loaded machine showed "Connection refused" there).
        for _ in 0..<200 {
            if FileManager.default.fileExists(atPath: socket), let fd = try? UnixSocketClient.connect(socket, timeoutSeconds: 1) {
                close(fd)
                return
            }
            usleep(50_000)
        }
        throw CocoaError(.fileReadNoSuchFile)
    }

    var log: String { (try? String(contentsOfFile: directory + "/serve.log", encoding: .utf8)) ?? "" }

    /// Sends SIGTERM and waits; returns the exit status.
    func stop() -> Int32 {
        guard pid > 0 else { return -1 }
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        pid = 0
        return status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
    }

    deinit {
        if pid > 0 { kill(pid, SIGKILL); var s: Int32 = 0; waitpid(pid, &s, 0) }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// A raw client connection (blocking, with a receive timeout).
final class Client {
    let fd: Int32

    init(_ path: String, timeoutSeconds: Int = 5) throws {
        fd = try UnixSocketClient.connect(path, timeoutSeconds: timeoutSeconds)
    }

    deinit { close(fd) }

    func send(_ text: String) { send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 { return }
            offset += n
        }
    }

    /// Reads until `lines` newlines arrived, EOF or the timeout.
    func receive(lines: Int) -> [String] {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while data.filter({ $0 == 0x0A }).count < lines {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            data += buffer[0..<n]
        }
        // Without CRs: Swift takes CR LF (HTTP) as one Character, which is not "\n".
        return String(decoding: data.filter { $0 != 0x0D }, as: UTF8.self)
            .split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    /// True when the server closed the connection before the timeout: EOF, or a
    /// reset when it closed with our unread bytes still in its buffer.
    func closedByServer() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n == 0 { return true }
            if n < 0 { return errno == ECONNRESET }
        }
    }

    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }
}

@Suite(.serialized) struct DaemonTests {
    @Test func answersPipelinedRequestsInOrder() throws {
        let d = try Daemon()
        let c = try Client(d.socket)
        c.send("PING\nLOOKUP 81.2.69.160\nCHECK web 81.2.69.160\nCHECK full 81.2.69.160\r\nlookup 2a00:1450::1\n"
               + "LOOKUP ::ffff:81.2.69.160\nCHECK full 10.1.2.3\nINFO\nSTATS\n")
        let answers = c.receive(lines: 9)
        try #require(answers.count == 9, "\(answers)")
        #expect(Array(answers[0..<7]) == ["PONG", "OK 81.2.69.160 GB", "ALLOW GB country-allowed", "DENY GB country-not-allowed",
                                          "OK 2a00:1450::1 IE", "OK ::ffff:81.2.69.160 GB", "ALLOW -- trusted 10.0.0.0/8"])
        #expect(answers[7].hasPrefix("OK built=1700000000 age=") && answers[7].contains("ipv4-ranges=385372")
                && answers[7].contains("profiles=full,web") && answers[7].contains("sources=geoip.gz:"), "\(answers[7])")
        #expect(answers[8].hasPrefix("OK requests=9 errors=0 reloads=0 failed-reloads=0 full.allow=1 full.deny=1 web.allow=1 web.deny=0"),
                "\(answers[8])")
        // The shell client a script would use.
        let out = d.directory + "/socat.out"
        let script = d.directory + "/ask.sh"
        try "printf 'PING\\nLOOKUP 81.2.69.160\\n' | socat - UNIX-CONNECT:\(d.socket)\n".write(toFile: script, atomically: true, encoding: .utf8)
        #expect(run("/bin/bash", [script], stdout: out, stderr: "/dev/null") == 0)
        #expect(try String(contentsOfFile: out, encoding: .utf8) == "PONG\nOK 81.2.69.160 GB\n")
        #expect(d.stop() == 0, "SIGTERM is a clean exit")
        #expect(!FileManager.default.fileExists(atPath: d.socket), "the socket file is removed")
    }

    @Test func badRequestsAreErrorsAndTheConnectionStaysUsable() throws {
        let d = try Daemon()
        let c = try Client(d.socket)
        c.send("BOGUS\nLOOKUP\nLOOKUP 999.1.1.1\nCHECK nope 1.2.3.4\nCHECK web\n\n")
        c.send([0x00, 0xFF, 0x41, 0x0A])  // binary bytes
        c.send("PING\n")
        let answers = c.receive(lines: 8)
        #expect(answers == [
            "ERR unknown-command \"BOGUS\" (commands: LOOKUP CHECK INFO STATS PING RELOAD ALLOW BLOCK UNLIST ENTRIES)",
            "ERR syntax usage: LOOKUP <ip>",
            "ERR bad-address \"999.1.1.1\" is not an IP address",
            "ERR unknown-profile \"nope\" (profiles: full web)",
            "ERR syntax usage: CHECK <profile> <ip>",
            "ERR syntax empty request",
            "ERR not-text requests are printable ASCII lines",
            "PONG",
        ])
        // A line over 1 KiB: an error, then the connection is cut; the server goes on.
        let long = try Client(d.socket)
        long.send(String(repeating: "A", count: 5000))
        #expect(long.receive(lines: 1) == ["ERR too-long request line over 1024 bytes"])
        #expect(long.closedByServer())
        // Half-closed after a last request without its newline: still answered.
        let half = try Client(d.socket)
        half.send("PING")
        half.shutdownWrite()
        #expect(half.receive(lines: 1) == ["PONG"])
        #expect(half.closedByServer())
        let after = try Client(d.socket)
        after.send("PING\n")
        #expect(after.receive(lines: 1) == ["PONG"])
        #expect(d.log.contains("request line over 1024 bytes"), "the cut is logged")
    }

    /// The line limit is exact: a request of 1,024 bytes (with LF or CR LF) is
    /// answered, one of 1,025 is cut.
    @Test func theLineLimitIsExact() throws {
        let d = try Daemon()
        // CHECK with a long (unknown) profile name: answered, whatever the length.
        func request(_ length: Int) -> String {
            let head = "CHECK "
            let tail = " 81.2.69.160"
            return head + String(repeating: "p", count: length - head.count - tail.count) + tail
        }
        for (length, ending) in [(1024, "\n"), (1024, "\r\n")] {
            let c = try Client(d.socket)
            c.send(request(length) + ending)
            let answer = c.receive(lines: 1)
            #expect(answer.count == 1 && answer[0].hasPrefix("ERR ") && !answer[0].contains("too-long"), "\(length) bytes: \(answer)")
        }
        for ending in ["\n", "\r\n"] {
            let c = try Client(d.socket)
            c.send(request(1025) + ending)
            #expect(c.receive(lines: 1) == ["ERR too-long request line over 1024 bytes"])
            #expect(c.closedByServer())
        }
    }

    /// Finding 7: a client trickling a partial line, a byte every 300 ms, is closed
    /// after the 1 s idle timeout: the time counts from the last complete request.
    @Test func aTricklingClientIsClosedAtTheIdleTimeout() throws {
        let d = try Daemon(idleTimeout: 1)
        let c = try Client(d.socket, timeoutSeconds: 5)
        c.send("PING\n")
        #expect(c.receive(lines: 1) == ["PONG"])
        let start = Date()
        var closedAfter: Double?
        for byte in Array("LOOKUP 81.2.69.160".utf8) {
            _ = [byte].withUnsafeBytes { Glibc.send(c.fd, $0.baseAddress, 1, Int32(MSG_NOSIGNAL)) }
            usleep(300_000)
            // Closed yet? (a read that does not wait)
            var b: UInt8 = 0
            let n = recv(c.fd, &b, 1, Int32(MSG_DONTWAIT))
            if n == 0 || (n < 0 && errno == ECONNRESET) { closedAfter = Date().timeIntervalSince(start); break }
        }
        #expect(closedAfter != nil && closedAfter! < 2.5, "closed after \(closedAfter.map { "\($0) s" } ?? "never, while 18 bytes trickled for 5.4 s")")
    }

    @Test func idleConnectionsAreClosedAndNonReadersDoNotStallOthers() throws {
        let d = try Daemon(idleTimeout: 1)
        let idle = try Client(d.socket, timeoutSeconds: 5)
        let start = Date()
        #expect(idle.closedByServer())
        #expect(Date().timeIntervalSince(start) < 4, "closed after the 1 s idle timeout")
        // A client that sends 200,000 requests and never reads.
        let greedy = try Client(d.socket)
        fcntl(greedy.fd, F_SETFL, fcntl(greedy.fd, F_GETFL) | O_NONBLOCK)
        let burst = Array(String(repeating: "LOOKUP 81.2.69.160\n", count: 200_000).utf8)
        _ = burst.withUnsafeBytes { write(greedy.fd, $0.baseAddress, $0.count) }
        let other = try Client(d.socket)
        other.send("PING\n")
        #expect(other.receive(lines: 1) == ["PONG"], "another client is served while one never reads")
    }

    @Test func aThousandSimultaneousConnectionsAndTheCap() throws {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        limit.rlim_cur = min(limit.rlim_max, 8192)
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let d = try Daemon(maxConnections: 1000)
        var clients: [Client] = []
        for _ in 0..<1000 { clients.append(try Client(d.socket)) }
        for (i, c) in clients.enumerated() { c.send("LOOKUP 81.2.69.\(i % 256)\n") }
        var answered = 0
        for c in clients where c.receive(lines: 1).first?.hasPrefix("OK 81.2.69.") == true { answered += 1 }
        #expect(answered == 1000)
        // One more than the cap: told so and cut, with a log line.
        let extra = try Client(d.socket)
        #expect(extra.receive(lines: 1) == ["ERR busy too many connections"])
        #expect(d.log.contains("max-connections 1000"))
        clients.removeAll()
        usleep(200_000)
        let later = try Client(d.socket)
        later.send("PING\n")
        #expect(later.receive(lines: 1) == ["PONG"], "served again once connections closed")
    }

    @Test func reloadSwapsDataAndABadFileKeepsTheOldOne() throws {
        let d = try Daemon()
        let c = try Client(d.socket)
        c.send("LOOKUP 198.51.100.1\n")
        #expect(c.receive(lines: 1) == ["OK 198.51.100.1 --"])
        // New data, replaced atomically (compile writes a temp file, then renames).
        try Daemon.compile("198.51.100.0,198.51.100.255,IT\n", to: d.triePath)
        // In one read: the requests before RELOAD answer from the old data, those
        // after it from the new (the read's lookups are batched; RELOAD ends a batch).
        c.send("LOOKUP 198.51.100.1\nCHECK full 198.51.100.1\nRELOAD\nLOOKUP 198.51.100.1\nCHECK full 198.51.100.1\n")
        #expect(c.receive(lines: 5) == ["OK 198.51.100.1 --", "DENY -- no-country", "OK reloaded built=1700000000",
                                        "OK 198.51.100.1 IT", "ALLOW IT country-allowed"])
        // A corrupt file: refused, logged, the previous snapshot keeps answering.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: d.triePath))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: d.triePath + ".tmp"))
        rename(d.triePath + ".tmp", d.triePath)
        c.send("RELOAD\nLOOKUP 198.51.100.1\n")
        let answers = c.receive(lines: 2)
        #expect(answers.first?.hasPrefix("ERR reload-failed") == true && answers.first?.contains("still serving") == true, "\(answers)")
        #expect(answers.last == "OK 198.51.100.1 IT")
        // SIGHUP with the file still bad: logged, still serving.
        kill(d.pid, SIGHUP)
        usleep(300_000)
        #expect(d.log.contains("reload (SIGHUP) failed, still serving the previous data"))
        c.send("LOOKUP 198.51.100.1\n")
        #expect(c.receive(lines: 1) == ["OK 198.51.100.1 IT"])
    }

    @Test func aReplacedTrieFileIsPickedUpUnasked() throws {
        let d = try Daemon(watchInterval: 1)
        let c = try Client(d.socket)
        c.send("LOOKUP 198.51.100.1\n")
        #expect(c.receive(lines: 1) == ["OK 198.51.100.1 --"])
        try Daemon.compile("198.51.100.0,198.51.100.255,IT\n", to: d.triePath)
        var answer = ""
        for _ in 0..<50 where !answer.hasSuffix(" IT") {
            usleep(100_000)
            c.send("LOOKUP 198.51.100.1\n")
            answer = c.receive(lines: 1).first ?? ""
        }
        #expect(answer == "OK 198.51.100.1 IT", "a watch-interval of 1 s picks the new file up within 5 s")
        #expect(d.log.contains("reloaded (file replaced)"))
        // A corrupt replacement is refused once, not retried every second, and the
        // previous data keeps answering.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: d.triePath))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: d.triePath + ".tmp"))
        rename(d.triePath + ".tmp", d.triePath)
        usleep(3_500_000)
        c.send("LOOKUP 198.51.100.1\nSTATS\n")
        let answers = c.receive(lines: 2)
        #expect(answers.first == "OK 198.51.100.1 IT")
        #expect(answers.last?.contains(" reloads=1 failed-reloads=1 ") == true, "\(answers)")
        #expect(d.log.contains("reload (file replaced) failed, still serving the previous data"))
    }

    /// A provisioning system adds a company's profile as a drop-in: the watch picks
    /// it up (the directory did not even exist when the daemon started); a bad one
    /// is refused with the old profiles serving; removing it removes the profile.
    @Test func dropInProfilesArePickedUpUnasked() throws {
        let d = try Daemon(watchInterval: 1)
        let c = try Client(d.socket)
        func ask(_ request: String) -> String {
            c.send(request + "\n")
            return c.receive(lines: 1).first ?? ""
        }
        func waitFor(_ request: String, _ done: (String) -> Bool) -> String {
            var answer = ask(request)
            for _ in 0..<50 where !done(answer) {
                usleep(100_000)
                answer = ask(request)
            }
            return answer
        }
        #expect(ask("CHECK acme 198.51.100.7").hasPrefix("ERR unknown-profile"))
        mkdir(d.directory + "/profiles.d", 0o755)
        func put(_ text: String) {
            try? text.write(toFile: d.directory + "/profiles.d/.acme.tmp", atomically: false, encoding: .utf8)
            rename(d.directory + "/profiles.d/.acme.tmp", d.directory + "/profiles.d/acme.conf")
        }
        put("scope: web-only\nallow-countries: []\nallow-networks: [198.51.100.0/24]\n")
        #expect(waitFor("CHECK acme 198.51.100.7") { !$0.hasPrefix("ERR") } == "ALLOW -- allow-network 198.51.100.0/24")
        #expect(ask("CHECK acme 203.0.113.9").hasPrefix("DENY "))
        put("scope: web-only\nallow-countries: [XX]\n")
        usleep(2_500_000)
        #expect(ask("CHECK acme 198.51.100.7") == "ALLOW -- allow-network 198.51.100.0/24", "a bad drop-in is refused, the old profiles serve")
        #expect(d.log.contains("profiles.d/acme.conf:2: profiles.acme.allow-countries[0]: unknown country code"), "\(d.log)")
        unlink(d.directory + "/profiles.d/acme.conf")
        #expect(waitFor("CHECK acme 198.51.100.7") { $0.hasPrefix("ERR") }.hasPrefix("ERR unknown-profile"))
    }

    @Test func reloadIsForRootOrTheDaemonsUserOnly() throws {
        guard geteuid() == 0 else { return }  // needs another uid to test with
        let d = try Daemon()
        let out = d.directory + "/nobody.out"
        let script = d.directory + "/nobody.sh"
        try "printf 'RELOAD\\nPING\\n' | setpriv --reuid 65534 --regid 65534 --clear-groups socat - UNIX-CONNECT:\(d.socket)\n"
            .write(toFile: script, atomically: true, encoding: .utf8)
        #expect(run("/bin/bash", [script], stdout: out, stderr: "/dev/null") == 0)
        #expect(try String(contentsOfFile: out, encoding: .utf8) == "ERR forbidden RELOAD is for root or the daemon's own user\nPONG\n")
        // Every reload is logged with who asked and why; a refused one too.
        let c = try Client(d.socket)
        c.send("RELOAD nightly-data\n")
        #expect(c.receive(lines: 1).first?.hasPrefix("OK reloaded") == true)
        usleep(100_000)
        #expect(d.log.contains("RELOAD from uid 65534 refused"), "\(d.log)")
        #expect(d.log.contains("reloaded (RELOAD from uid 0 (nightly-data)): trie built 1700000000"), "\(d.log)")
    }

    /// Finding 7: a second daemon on the same socket path refuses to start and
    /// leaves the first one reachable; a stale socket file (a killed daemon) is
    /// replaced; a daemon never removes a socket file that is not its own; socket
    /// errors name the path and the errno in words.
    @Test func aSocketIsNeverTakenOverOrRemovedByAnotherDaemon() throws {
        let d = try Daemon()
        let second = d.directory + "/second.log"
        let status = run(geogateBinary, ["serve", "--config", d.configPath], stderr: second)
        let secondLog = (try? String(contentsOfFile: second, encoding: .utf8)) ?? ""
        #expect(status == 1, "\(secondLog)")
        #expect(secondLog.contains("\(d.socket): another daemon answers on this socket; not taking it over"), "\(secondLog)")
        #expect((try? UnixSocketClient.ask(d.socket, "PING")) == "PONG", "the first daemon is still reachable: \(d.log)")

        // A daemon killed without its shutdown leaves its socket file: the next one replaces it.
        kill(d.pid, SIGKILL)
        var st: Int32 = 0
        waitpid(d.pid, &st, 0)
        d.pid = 0
        #expect(FileManager.default.fileExists(atPath: d.socket))
        try d.start()
        // (The stale file exists at once: wait for the answer, not for the file.)
        var answered = false
        for _ in 0..<100 where !answered {
            answered = (try? UnixSocketClient.ask(d.socket, "PING")) == "PONG"
            if !answered { usleep(50_000) }
        }
        #expect(answered, "the stale socket was replaced: \(d.log)")

        // Its socket file replaced by another daemon's (here: removed, then a second
        // daemon started): stopping the first leaves the second's socket alone.
        unlink(d.socket)
        let other = spawn(geogateBinary, ["serve", "--config", d.configPath], stderr: d.directory + "/other.log")
        defer { kill(other, SIGKILL); var s: Int32 = 0; waitpid(other, &s, 0) }
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: d.socket) { usleep(50_000) }
        #expect(d.stop() == 0)
        let otherLog = (try? String(contentsOfFile: d.directory + "/other.log", encoding: .utf8)) ?? ""
        #expect((try? UnixSocketClient.ask(d.socket, "PING")) == "PONG", "the other daemon's socket is still there: \(otherLog) \(d.log)")

        // Errors name the path and say the errno in words.
        for (path, expected) in [(d.directory + "/no/such/dir/g.sock", "/no/such/dir/g.sock: cannot listen: No such file or directory (errno 2)"),
                                 (d.directory + "/" + String(repeating: "s", count: 120) + ".sock", "a Unix socket path is at most 107 bytes")] {
            let log = d.directory + "/bad.log"
            let r = run(geogateBinary, ["serve", "--config", d.configPath, "--socket", path], stderr: log)
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            #expect(r == 1 && text.contains(expected), "\(text)")
        }
    }

    @Test func checkOverTheSocketExitCodes() throws {
        let d = try Daemon()
        func check(_ args: [String]) -> (Int32, String) {
            let out = d.directory + "/check.out", err = d.directory + "/check.err"
            let status = run(geogateBinary, ["check"] + args, stdout: out, stderr: err)
            return (status, ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "") + ((try? String(contentsOfFile: err, encoding: .utf8)) ?? ""))
        }
        #expect(check(["--socket", d.socket, "--profile", "web", "81.2.69.160"]) == (0, "ALLOW GB country-allowed\n"))
        #expect(check(["--socket", d.socket, "--profile", "full", "81.2.69.160"]) == (1, "DENY GB country-not-allowed\n"))
        #expect(check(["--socket", d.socket, "--profile", "nope", "81.2.69.160"]).0 == 2)
        _ = d.stop()
        let down = check(["--socket", d.socket, "--profile", "web", "81.2.69.160"])
        #expect(down.0 == 2 && down.1.contains("is `geogate serve` running?"), "\(down)")
    }
}

/// systemd's side, played by the test: a NOTIFY_SOCKET to read the daemon's
/// state lines from, and a listening socket handed over as fd 3 (LISTEN_FDS).
@Suite(.serialized) struct SystemdTests {
    /// A bound Unix socket of `type` at `path`.
    func unixSocket(_ path: String, type: Int32) -> Int32 {
        let fd = socket(AF_UNIX, type, 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() { raw[i] = b }
        }
        let r = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        precondition(r == 0, "bind \(path): \(errno)")
        return fd
    }

    /// Starts `geogate serve` through bash (so LISTEN_PID can be its own pid), with
    /// extra environment and optionally `fd3` as its descriptor 3.
    func serve(_ d: Daemon, environment: [String], fd3: Int32? = nil) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 2, d.directory + "/serve2.log", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if let fd3 { posix_spawn_file_actions_adddup2(&actions, fd3, 3) }
        let command = (fd3 != nil ? "export LISTEN_PID=$$ LISTEN_FDS=1; " : "")
            + "exec \(geogateBinary) serve --config \(d.configPath) --socket \(d.directory)/other.sock"
        let arguments: [String] = ["/bin/bash", "-c", command]
        let argv = arguments.map { strdup($0) } + [nil]
        let variables: [String] = environment + ["PATH=/usr/bin:/bin"]
        let env = variables.map { strdup($0) } + [nil]
        defer { for p in argv + env { free(p) } }
        var pid: pid_t = 0
        precondition(posix_spawn(&pid, "/bin/bash", &actions, nil, argv, env) == 0)
        return pid
    }

    func receive(_ fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : "(nothing: \(errno))"
    }

    @Test func notifiesReadyReloadingAndStopping() throws {
        let d = try Daemon()
        _ = d.stop()
        let notifyPath = d.directory + "/notify.sock"
        let fd = unixSocket(notifyPath, type: Int32(SOCK_DGRAM.rawValue))
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let pid = serve(d, environment: ["NOTIFY_SOCKET=\(notifyPath)"])
        #expect(receive(fd) == "READY=1")
        kill(pid, SIGHUP)
        let reloading = receive(fd)
        #expect(reloading.hasPrefix("RELOADING=1\nMONOTONIC_USEC="), "\(reloading)")
        #expect(receive(fd) == "READY=1")
        kill(pid, SIGTERM)
        #expect(receive(fd) == "STOPPING=1")
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        #expect(status == 0)
    }

    @Test func servesOnTheSocketSystemdPasses() throws {
        let d = try Daemon()
        _ = d.stop()
        let activated = d.directory + "/activated.sock"
        let fd = unixSocket(activated, type: Int32(SOCK_STREAM.rawValue))
        #expect(listen(fd, 16) == 0)
        let pid = serve(d, environment: [], fd3: fd)
        close(fd)
        defer { kill(pid, SIGTERM); var s: Int32 = 0; waitpid(pid, &s, 0) }
        var answer: [String] = []
        for _ in 0..<50 where answer.isEmpty {
            if let c = try? Client(activated) {
                c.send("PING\n")
                answer = c.receive(lines: 1)
            } else { usleep(100_000) }
        }
        #expect(answer == ["PONG"])
        #expect(!FileManager.default.fileExists(atPath: d.directory + "/other.sock"), "the configured path is not bound")
        // The log names the socket it really listens on, and says that it is not the
        // configured one. (The passed socket answers as soon as the event loop runs,
        // which can be before the start-up task writes those lines: wait for them.)
        var log = ""
        for _ in 0..<100 where !log.contains("not daemon.socket") {
            log = (try? String(contentsOfFile: d.directory + "/serve2.log", encoding: .utf8)) ?? ""
            if !log.contains("not daemon.socket") { usleep(50_000) }
        }
        #expect(log.contains("listening on \(activated)") && !log.contains("listening on \(d.directory)/other.sock"), "\(log)")
        #expect(log.contains("not daemon.socket \(d.directory)/other.sock"), "\(log)")
    }
}

/// The callers of the daemon, as real clients: PHP's `geogate_allowed`.
@Suite(.serialized) struct ClientTests {
    /// Runs PHP code with Docs/clients/geogate.php loaded; its output.
    func php(_ code: String, in d: Daemon) -> String {
        let file = d.directory + "/t.php"
        try? "<?php\nrequire '\(repositoryRoot)/Docs/clients/geogate.php';\n\(code)\n".write(toFile: file, atomically: true, encoding: .utf8)
        let out = d.directory + "/php.out"
        _ = run("/usr/bin/php", ["-d", "error_log=\(d.directory)/php-errors.log", file], stdout: out, stderr: "/dev/null")
        return (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
    }

    @Test func phpClientAllowsDeniesAndFailsAsTold() throws {
        let d = try Daemon()
        let s = "'\(d.socket)'"
        let answers = php("""
            foreach ([['web', '81.2.69.160', false], ['full', '81.2.69.160', false], ['web', '10.0.0.1', false],
                      ['web', 'not-an-ip', true], ['nope', '81.2.69.160', false], ['nope', '81.2.69.160', true],
                      ['web', '::ffff:81.2.69.160', false]] as [$p, $ip, $open]) {
                echo var_export(geogate_allowed($p, $ip, $open, \(s)), true), "\\n";
            }
            """, in: d)
        #expect(answers == "true\nfalse\ntrue\nfalse\nfalse\ntrue\ntrue\n", "\(answers)")
        _ = d.stop()
        let down = php("echo var_export(geogate_allowed('web', '81.2.69.160', false, \(s)), true), ' ', var_export(geogate_allowed('web', '81.2.69.160', true, \(s)), true);", in: d)
        #expect(down == "false true", "fail-closed and fail-open when the daemon is down")
        let errors = (try? String(contentsOfFile: d.directory + "/php-errors.log", encoding: .utf8)) ?? ""
        #expect(errors.contains("geogate: cannot connect to") && errors.contains("ERR unknown-profile"), "\(errors)")
    }
}

extension ClientTests {
    /// geogate_trust() after a login: the address is allowed at once, for the
    /// time given, then refused again; bad arguments and refusals are false.
    @Test func phpTrustAllowsAnAddressForItsTime() throws {
        let d = try Daemon()
        defer { _ = d.stop() }
        let s = "'\(d.socket)'"
        let answers = php("""
            $a = fn() => var_export(geogate_allowed('web', '2.16.0.1', false, \(s)), true);
            echo $a(), ' ', var_export(geogate_trust('web', '2.16.0.1', 2, "login alice\\n\\x1b[31m", \(s)), true), ' ', $a(), ' ';
            echo var_export(geogate_trust('web', 'not-an-ip', 2, '', \(s)), true), ' ';
            echo var_export(geogate_trust('nope', '2.16.0.1', 2, '', \(s)), true), ' ';
            echo var_export(geogate_trust('web', '2.16.0.1', 0, '', \(s)), true), ' ';
            sleep(3);
            echo $a();
            """, in: d)
        #expect(answers == "false true true false false false false", "\(answers)")
        let stored = (try? String(contentsOfFile: d.directory + "/state/entries", encoding: .utf8)) ?? ""
        #expect(stored.contains("allow web 2.16.0.1/32 ") && stored.hasSuffix(" login alice??[31m\n"), "one printable line: \(stored)")
        let errors = (try? String(contentsOfFile: d.directory + "/php-errors.log", encoding: .utf8)) ?? ""
        #expect(errors.contains("ERR bad-request no profile \"nope\""), "\(errors)")
    }
}

/// Asterisk's security events through `geogate ami-trust`, against a recorded AMI
/// session replayed by a test server (Tests/GeoGateDaemonTests/ami: Asterisk is
/// not packaged for Debian 12): each phone that authenticated with a password
/// is trusted in the daemon; failed passwords, AMI's own logins, password-less
/// authentications and bad addresses are not; a refused login says so.
@Suite(.serialized) struct AMITrustTests {
    func session(_ d: Daemon, secret: String) -> (CommandResult, login: String) {
        let ami = repositoryRoot + "/Tests/GeoGateDaemonTests/ami"
        let portFile = d.directory + "/ami.port", loginFile = d.directory + "/ami.login"
        unlink(portFile)
        let server = spawn("/usr/bin/python3", [ami + "/replay.py", ami + "/session.txt", loginFile, portFile], stderr: d.directory + "/replay.log")
        defer { kill(server, SIGKILL); var s: Int32 = 0; waitpid(server, &s, 0) }
        for _ in 0..<100 where access(portFile, F_OK) != 0 { usleep(50_000) }
        let port = (try? String(contentsOfFile: portFile, encoding: .utf8)) ?? "0"
        try? "\(secret)\n".write(toFile: d.directory + "/ami.secret", atomically: true, encoding: .utf8)
        let out = d.directory + "/ami.out", err = d.directory + "/ami.err"
        let status = run(geogateBinary, ["ami-trust", "--config", d.configPath, "--profile", "full", "--for", "10m",
                                         "--ami", "127.0.0.1:\(port)", "--username", "geogate", "--secret-file", d.directory + "/ami.secret", "--once"],
                         stdout: out, stderr: err)
        return (CommandResult(status: status, stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
                              stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""),
                (try? String(contentsOfFile: loginFile, encoding: .utf8)) ?? "")
    }

    @Test func phonesThatAuthenticatedAreTrusted() throws {
        let d = try Daemon()
        defer { _ = d.stop() }
        let (r, login) = session(d, secret: "s3cret")
        #expect(r.status == 0 && r.stdout == "events: 9, trusted: 2\n", "\(r.stdout) \(r.stderr)")
        #expect(login == "Action: Login\r\nUsername: geogate\r\nSecret: s3cret\r\nEvents: security\r\n\r\n")
        let ask = { (ip: String) in (try? UnixSocketClient.ask(d.socket, "CHECK full \(ip)")) ?? "" }
        #expect(ask("198.51.100.44").hasPrefix("ALLOW ") && ask("198.51.100.44").hasSuffix("runtime-allow 198.51.100.44/32"), "\(ask("198.51.100.44"))")
        #expect(ask("2001:db8:2::77").hasSuffix("runtime-allow 2001:db8:2::77/128"))
        for ip in ["192.0.2.66", "192.0.2.200", "127.0.0.1"] { #expect(!ask(ip).contains("runtime-allow"), "\(ip): \(ask(ip))") }
        #expect((try? UnixSocketClient.ask(d.socket, "ENTRIES full")) == "OK entries=2 max=1000")
        for line in ["trusted 198.51.100.44 for 600 s (PJSIP account 201 authenticated)", "trusted 2001:db8:2::77 for 600 s (PJSIP account 305",
                     "service AMI is not one of IAX2,PJSIP,SIP", "account 204 authenticated without a password",
                     "RemoteAddress IPV4/UDP/not-an-address/5060 is not an address", "the AMI closed the connection"] {
            #expect(r.stderr.contains(line), "\(line): \(r.stderr)")
        }
        #expect(!r.stderr.contains("192.0.2.66"), "a failed password is not trusted: \(r.stderr)")
        let stored = (try? String(contentsOfFile: d.directory + "/state/entries", encoding: .utf8)) ?? ""
        #expect(stored.contains("allow full 198.51.100.44/32 ") && stored.contains(" ami PJSIP 201\n"), "\(stored)")
    }

    /// FreeSWITCH's event socket (`--pbx freeswitch`), against a recorded ESL
    /// session replayed the same way: each sofia::register (percent-encoded
    /// values, Content-Length bodies) trusts its network-ip; register_failure,
    /// other events and a bad address do not.
    @Test func freeswitchRegistrationsAreTrusted() throws {
        let d = try Daemon()
        defer { _ = d.stop() }
        let esl = repositoryRoot + "/Tests/GeoGateDaemonTests/esl"
        let portFile = d.directory + "/esl.port", commandsFile = d.directory + "/esl.commands"
        let server = spawn("/usr/bin/python3", [esl + "/replay.py", esl + "/events.txt", commandsFile, portFile], stderr: d.directory + "/esl.log")
        defer { kill(server, SIGKILL); var s: Int32 = 0; waitpid(server, &s, 0) }
        for _ in 0..<100 where access(portFile, F_OK) != 0 { usleep(50_000) }
        let port = (try? String(contentsOfFile: portFile, encoding: .utf8)) ?? "0"
        try "s3cret\n".write(toFile: d.directory + "/esl.secret", atomically: true, encoding: .utf8)
        let out = d.directory + "/esl.out", err = d.directory + "/esl.err"
        let status = run(geogateBinary, ["ami-trust", "--pbx", "freeswitch", "--config", d.configPath, "--profile", "full", "--for", "10m",
                                         "--ami", "127.0.0.1:\(port)", "--secret-file", d.directory + "/esl.secret", "--once"],
                         stdout: out, stderr: err)
        let stdout = (try? String(contentsOfFile: out, encoding: .utf8)) ?? "", stderr = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        #expect(status == 0 && stdout == "events: 5, trusted: 2\n", "\(stdout) \(stderr)")
        #expect((try? String(contentsOfFile: commandsFile, encoding: .utf8)) == "auth s3cret\nevent plain CUSTOM sofia::register\n")
        let ask = { (ip: String) in (try? UnixSocketClient.ask(d.socket, "CHECK full \(ip)")) ?? "" }
        #expect(ask("198.51.100.45").hasSuffix("runtime-allow 198.51.100.45/32"), "\(ask("198.51.100.45"))")
        #expect(ask("2001:db8:2::78").hasSuffix("runtime-allow 2001:db8:2::78/128"))
        #expect(!ask("192.0.2.66").contains("runtime-allow"), "a failed registration is not trusted")
        for line in ["FreeSWITCH: trusted 198.51.100.45 for 600 s (sofia account 1000 authenticated)", "network-ip bogus\\nline is not an address",
                     "the event socket closed the connection"] {
            #expect(stderr.contains(line), "\(line): \(stderr)")
        }
    }

    /// A run-time entries file that cannot be read (edited by hand): a reload is
    /// refused with the old entries serving; a daemon starting with it serves
    /// without entries and says so, rather than stopping every web login.
    @Test func aBrokenEntriesFileNeverStopsTheDaemon() throws {
        let d = try Daemon()
        defer { _ = d.stop() }
        #expect((try? UnixSocketClient.ask(d.socket, "ALLOW web 2.16.0.1 0 test")) == "OK allow web 2.16.0.1/32 expires=never")
        try "v1\nallow web not-a-network - 1 0\n".write(toFile: d.directory + "/state/entries", atomically: true, encoding: .utf8)
        let reload = (try? UnixSocketClient.ask(d.socket, "RELOAD")) ?? ""
        #expect(reload.hasPrefix("ERR reload-failed") && reload.contains("entries:2: not a network"), "\(reload)")
        #expect((try? UnixSocketClient.ask(d.socket, "CHECK web 2.16.0.1")) == "ALLOW EU runtime-allow 2.16.0.1/32", "the old entries serve")
        _ = d.stop()
        try d.start()
        #expect((try? UnixSocketClient.ask(d.socket, "CHECK web 2.16.0.1")) == "DENY EU country-not-allowed", "up, without entries")
        #expect(d.log.contains("run-time entries: ") && d.log.contains("entries:2: not a network") && d.log.contains("serving without them"), "\(d.log)")
        #expect((try? UnixSocketClient.ask(d.socket, "ALLOW web 2.16.0.1 0 test"))?.hasPrefix("ERR entry-failed") == true, "no change on top of a broken file")
    }

    @Test func aRefusedLoginSaysSo() throws {
        let d = try Daemon()
        defer { _ = d.stop() }
        let (r, _) = session(d, secret: "wrong")
        #expect(r.stdout == "events: 0, trusted: 0\n" && r.stderr.contains("login as geogate refused: Authentication failed"), "\(r.stderr)")
        let bad = run(geogateBinary, ["ami-trust", "--config", d.configPath, "--profile", "full", "--username", "x\r\nAction: Originate",
                                      "--secret-file", d.directory + "/ami.secret", "--once"], stderr: "/dev/null")
        #expect(bad == 2, "a user name with a line break is refused before anything is sent")
    }
}

/// nginx guarding a login location with auth_request against geogate's HTTP socket.
@Suite(.serialized) struct NginxTests {
    @Test func authRequestAllowsAndDeniesThroughARealNginx() throws {
        let d = try Daemon(httpSocket: true)
        let port = 20_000 + Int(getpid() % 20_000)
        let conf = d.directory + "/nginx.conf"
        try FileManager.default.createDirectory(atPath: d.directory + "/tmp", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: d.directory + "/www", withIntermediateDirectories: true)
        try "login page\n".write(toFile: d.directory + "/www/login", atomically: true, encoding: .utf8)
        try """
            user root;
            daemon off;
            master_process off;
            error_log \(d.directory)/nginx-error.log;
            pid \(d.directory)/nginx.pid;
            events {}
            http {
                access_log off;
                client_body_temp_path \(d.directory)/tmp; proxy_temp_path \(d.directory)/tmp;
                fastcgi_temp_path \(d.directory)/tmp; uwsgi_temp_path \(d.directory)/tmp; scgi_temp_path \(d.directory)/tmp;
                server {
                    listen 127.0.0.1:\(port);
                    # The test client plays several countries through X-Forwarded-For.
                    set_real_ip_from 127.0.0.1;
                    real_ip_header X-Forwarded-For;
                    # (auth_request runs in the access phase: the content must come
                    # after it, from a file, not from a rewrite-phase `return`.)
                    location = /login {
                        auth_request /geogate-check;
                        root \(d.directory)/www;
                    }
                    location = /geogate-check {
                        internal;
                        proxy_pass http://unix:\(d.directory)/http.sock:/check?profile=web;
                        proxy_pass_request_body off;
                        proxy_set_header Content-Length "";
                        proxy_set_header X-Real-IP $remote_addr;
                    }
                }
            }
            """.write(toFile: conf, atomically: true, encoding: .utf8)
        let nginx = spawn("/usr/sbin/nginx", ["-p", d.directory, "-c", conf], stderr: d.directory + "/nginx.stderr")
        try #require(nginx > 0, "cannot start /usr/sbin/nginx (Scripts/install-deps.sh installs nginx-light)")
        defer { kill(nginx, SIGTERM); var s: Int32 = 0; waitpid(nginx, &s, 0) }
        func status(_ address: String) -> String {
            let out = d.directory + "/curl.out"
            _ = run("/usr/bin/curl", ["-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", "-H", "X-Forwarded-For: \(address)",
                                      "http://127.0.0.1:\(port)/login"], stdout: out, stderr: "/dev/null")
            return (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        }
        var first = ""
        for _ in 0..<50 where first != "200" {
            first = status("81.2.69.160")
            if first != "200" { usleep(100_000) }
        }
        #expect(first == "200", "GB is allowed for web: \(first) \((try? String(contentsOfFile: d.directory + "/nginx-error.log", encoding: .utf8)) ?? "")")
        #expect(status("8.8.8.8") == "403", "US is not")
        #expect(status("2a00:1450::1") == "403", "IE (IPv6) is not")
        // The endpoint itself, without nginx: the decision travels in X-Geogate.
        let raw = try Client(d.directory + "/http.sock")
        raw.send("GET /check?profile=web HTTP/1.1\r\nHost: x\r\nX-Real-IP: 81.2.69.160\r\n\r\nGET /check?profile=nope HTTP/1.1\r\nHost: x\r\nX-Real-IP: 1.2.3.4\r\n\r\n")
        let lines = raw.receive(lines: 7).joined(separator: "\n")
        #expect(lines.contains("HTTP/1.1 204 No Content") && lines.contains("X-Geogate: ALLOW GB country-allowed"), "\(lines)")
        #expect(lines.contains("HTTP/1.1 400 Bad Request") && lines.contains("X-Geogate: ERR unknown-profile"), "\(lines)")
        // Daemon down: nginx fails the guarded location closed (500), never open.
        _ = d.stop()
        #expect(status("81.2.69.160") == "500")
    }
}

/// The shipped nginx snippet (Docs/examples/nginx-geogate.conf) as an admin uses
/// it: nginx's workers run as www-data, so the daemon's HTTP socket must carry
/// that group (daemon.socket-group); denied visitors get the shipped page.
@Suite(.serialized) struct NginxSnippetTests {
    /// nginx (workers as www-data) with the snippet, its socket and page paths
    /// pointed at the test's; the status and body of /login for `address`.
    func withNginx(_ d: Daemon, _ body: ((String) -> (String, String)) throws -> Void) throws {
        let port = 20_000 + Int((getpid() + 7) % 20_000)
        let conf = d.directory + "/nginx.conf"
        for sub in ["tmp", "www", "page"] {
            try FileManager.default.createDirectory(atPath: d.directory + "/" + sub, withIntermediateDirectories: true)
        }
        try "login page\n".write(toFile: d.directory + "/www/login", atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: repositoryRoot + "/Docs/web/denied.html", toPath: d.directory + "/page/denied.html")
        let snippet = try String(contentsOfFile: repositoryRoot + "/Docs/examples/nginx-geogate.conf", encoding: .utf8)
            .replacingOccurrences(of: "/run/geogate/http.sock", with: d.directory + "/http.sock")
            .replacingOccurrences(of: "root /usr/share/geogate;", with: "root \(d.directory)/page;")
        try snippet.write(toFile: d.directory + "/geogate-snippet.conf", atomically: true, encoding: .utf8)
        try """
            user www-data;
            daemon off;
            worker_processes 1;
            error_log \(d.directory)/nginx-error.log;
            pid \(d.directory)/nginx.pid;
            events {}
            http {
                access_log off;
                client_body_temp_path \(d.directory)/tmp; proxy_temp_path \(d.directory)/tmp;
                fastcgi_temp_path \(d.directory)/tmp; uwsgi_temp_path \(d.directory)/tmp; scgi_temp_path \(d.directory)/tmp;
                server {
                    listen 127.0.0.1:\(port);
                    root \(d.directory)/www;
                    set_real_ip_from 127.0.0.1;
                    real_ip_header X-Forwarded-For;
                    include \(d.directory)/geogate-snippet.conf;
                }
            }
            """.write(toFile: conf, atomically: true, encoding: .utf8)
        let nginx = spawn("/usr/sbin/nginx", ["-p", d.directory, "-c", conf], stderr: d.directory + "/nginx.stderr")
        try #require(nginx > 0, "cannot start /usr/sbin/nginx (Scripts/install-deps.sh installs nginx-light)")
        defer { kill(nginx, SIGTERM); var s: Int32 = 0; waitpid(nginx, &s, 0) }
        func get(_ address: String) -> (String, String) {
            let out = d.directory + "/curl.out", page = d.directory + "/curl.body"
            _ = run("/usr/bin/curl", ["-s", "-m", "5", "-o", page, "-w", "%{http_code}", "-H", "X-Forwarded-For: \(address)",
                                      "http://127.0.0.1:\(port)/login"], stdout: out, stderr: "/dev/null")
            return ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "", (try? String(contentsOfFile: page, encoding: .utf8)) ?? "")
        }
        for _ in 0..<50 where get("81.2.69.160").0 == "000" { usleep(100_000) }
        try body(get)
    }

    @Test func theSnippetWorksForWorkersOfTheSocketGroupAndShowsTheDeniedPage() throws {
        let d = try Daemon(httpSocket: true, socketMode: "0660", socketGroup: "www-data")
        try withNginx(d) { get in
            let allowed = get("81.2.69.160")
            #expect(allowed.0 == "200" && allowed.1 == "login page\n",
                    "GB is allowed for web: \(allowed) \((try? String(contentsOfFile: d.directory + "/nginx-error.log", encoding: .utf8)) ?? "")")
            let denied = get("8.8.8.8")
            #expect(denied.0 == "403" && denied.1.contains("You are not allowed to connect"), "\(denied)")
        }
    }

    @Test func withoutTheSocketGroupTheWorkersAreRefusedAndEveryoneGets500() throws {
        let d = try Daemon(httpSocket: true, socketMode: "0660")
        try withNginx(d) { get in
            #expect(get("81.2.69.160").0 == "500", "fails closed")
            let log = (try? String(contentsOfFile: d.directory + "/nginx-error.log", encoding: .utf8)) ?? ""
            #expect(log.contains("Permission denied"), "\(log)")
        }
    }
}

/// PHP's geogate_deny(): the shipped page with status 403, through PHP's own web server.
@Suite(.serialized) struct PHPDenyPageTests {
    @Test func aDeniedLoginGetsTheShippedPageWith403() throws {
        let d = try Daemon()
        let port = 20_000 + Int((getpid() + 11) % 20_000)
        try FileManager.default.createDirectory(atPath: d.directory + "/site", withIntermediateDirectories: true)
        try """
            <?php
            require '\(repositoryRoot)/Docs/clients/geogate.php';
            $ip = $_SERVER['HTTP_X_FORWARDED_FOR'] ?? $_SERVER['REMOTE_ADDR'];
            if (!geogate_allowed('web', $ip, false, '\(d.socket)')) {
                geogate_deny('\(repositoryRoot)/Docs/web/denied.html');
            }
            echo "welcome\\n";
            """.write(toFile: d.directory + "/site/login.php", atomically: true, encoding: .utf8)
        let php = spawn("/usr/bin/php", ["-S", "127.0.0.1:\(port)", "-t", d.directory + "/site"], stderr: d.directory + "/php-server.log")
        defer { kill(php, SIGTERM); var s: Int32 = 0; waitpid(php, &s, 0) }
        func get(_ address: String) -> (String, String) {
            let out = d.directory + "/curl.out", page = d.directory + "/curl.body"
            _ = run("/usr/bin/curl", ["-s", "-m", "5", "-o", page, "-w", "%{http_code}", "-H", "X-Forwarded-For: \(address)",
                                      "http://127.0.0.1:\(port)/login.php"], stdout: out, stderr: "/dev/null")
            return ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "", (try? String(contentsOfFile: page, encoding: .utf8)) ?? "")
        }
        for _ in 0..<50 where get("81.2.69.160").0 == "000" { usleep(100_000) }
        #expect(get("81.2.69.160") == ("200", "welcome\n"))
        let denied = get("8.8.8.8")
        #expect(denied.0 == "403" && denied.1.contains("<h1>You are not allowed to connect</h1>"), "\(denied)")
    }
}


/// What the daemon tells the admin's tools: the decision log read by fail2ban's
/// own fail2ban-regex with the shipped filter, journal priorities, and /metrics
/// parsed by Prometheus' own parser.
@Suite(.serialized) struct ObservabilityTests {
    @Test func fail2banMatchesTheDecisionLogWithTheShippedFilter() throws {
        let d = try Daemon(daemon: "  log-decisions: deny")
        let c = try Client(d.socket)
        // Denied: 8.8.8.8 (US) three times, an IPv6 address (IE); allowed: GB, a trusted
        // address; a malformed request and an unknown profile log nothing.
        c.send("CHECK web 8.8.8.8\nCHECK web 81.2.69.160\nCHECK web 8.8.8.8\nCHECK web 2a00:1450::1\nCHECK web 10.1.2.3\n"
               + "CHECK web 8.8.8.8\nCHECK nope 8.8.4.4\nCHECK web not-an-ip\n")
        #expect(c.receive(lines: 8).count == 8)
        _ = d.stop()
        let lines = d.log.split(separator: "\n").filter { $0.contains(": DENY ") || $0.contains(": ALLOW ") }
        #expect(lines.count == 4, "\(d.log)")
        #expect(lines.first?.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ geogate\[\d+\]: DENY 8\.8\.8\.8 US profile=web reason=country-not-allowed$"#,
                                   options: .regularExpression) != nil, "\(lines)")
        #expect(lines.contains { $0.hasSuffix("DENY 2a00:1450::1 IE profile=web reason=country-not-allowed") })
        let out = d.directory + "/f2b.out"
        let status = run("/usr/bin/fail2ban-regex", ["--print-all-matched", d.directory + "/serve.log",
                                                    repositoryRoot + "/Docs/fail2ban/geogate.conf"], stdout: out, stderr: d.directory + "/f2b.err")
        let report = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        #expect(status == 0, "\(report)")
        #expect(report.contains("4 matched"), "\(report)")
        #expect(report.components(separatedBy: "8.8.8.8").count - 1 >= 3 && report.contains("2a00:1450::1"), "\(report)")
        // The same filter on a syslog or journal line (host and identifier before the
        // message), and never on an ALLOW.
        for (line, matched) in [("Nov 29 17:30:00 web1 geogate[123]: DENY 203.0.113.9 CN profile=web reason=country-not-allowed", 1),
                                ("Nov 29 17:30:00 web1 geogate[123]: ALLOW 203.0.113.9 CN profile=web reason=country-allowed", 0)] {
            _ = run("/usr/bin/fail2ban-regex", [line, repositoryRoot + "/Docs/fail2ban/geogate.conf"], stdout: out, stderr: "/dev/null")
            #expect(((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").contains("\(matched) matched"), "\(line)")
        }
    }

    @Test func allDecisionsAndJournalPriorities() throws {
        let d = try Daemon(daemon: "  log-decisions: all", journal: true)
        let c = try Client(d.socket)
        c.send("CHECK web 8.8.8.8\nCHECK web 81.2.69.160\nCHECK full 10.0.0.1\n")
        #expect(c.receive(lines: 3).count == 3)
        // A reload that fails logs an error.
        try Data("not a trie".utf8).write(to: URL(fileURLWithPath: d.triePath))
        let r = try Client(d.socket)
        r.send("RELOAD test\n")
        #expect(r.receive(lines: 1).first?.hasPrefix("ERR") == true)
        _ = d.stop()
        let log = d.log
        // Whole lines, in any order: the decision log's lines may come before the
        // "listening on" line (seen under AddressSanitizer, where start-up is slow).
        let lines = log.split(separator: "\n")
        #expect(lines.contains("<5>DENY 8.8.8.8 US profile=web reason=country-not-allowed"), "\(log)")
        #expect(lines.contains("<6>ALLOW 81.2.69.160 GB profile=web reason=country-allowed"), "\(log)")
        #expect(lines.contains("<6>ALLOW 10.0.0.1 -- profile=full reason=trusted network=10.0.0.0/8"), "\(log)")
        #expect(log.split(separator: "\n").contains { $0.hasPrefix("<6>listening on ") }, "\(log)")
        #expect(log.split(separator: "\n").contains { $0.hasPrefix("<3>reload (RELOAD from uid") && $0.contains("failed") }, "\(log)")
        #expect(log.split(separator: "\n").allSatisfy { $0.isEmpty || $0.range(of: #"^<[2-7]>"#, options: .regularExpression) != nil },
                "every line carries a priority: \(log)")
    }

    @Test func metricsParseWithPrometheusOwnParser() throws {
        let d = try Daemon(httpSocket: true)
        let c = try Client(d.socket)
        c.send("CHECK web 8.8.8.8\nCHECK web 8.8.8.8\nCHECK web 81.2.69.160\nLOOKUP 1.1.1.1\nBOGUS\n")
        #expect(c.receive(lines: 5).count == 5)
        let out = d.directory + "/metrics.txt"
        let got = run("/usr/bin/curl", ["-s", "-m", "5", "--unix-socket", d.directory + "/http.sock", "-o", out, "-w", "%{http_code} %{content_type}",
                                        "http://localhost/metrics"], stdout: d.directory + "/curl.meta", stderr: "/dev/null")
        let meta = (try? String(contentsOfFile: d.directory + "/curl.meta", encoding: .utf8)) ?? ""
        #expect(got == 0 && meta.hasPrefix("200 text/plain; version=0.0.4"), "\(meta)")
        let script = d.directory + "/parse.py"
        try """
            import sys
            from prometheus_client.parser import text_string_to_metric_families
            values = {}
            for family in text_string_to_metric_families(open(sys.argv[1]).read()):
                for s in family.samples:
                    values[s.name + str(sorted(s.labels.items()))] = s.value
            def get(name, **labels):
                return values.get(name + str(sorted(labels.items())))
            print(get("geogate_requests_total"), get("geogate_errors_total"),
                  get("geogate_decisions_total", profile="web", verdict="deny", country="US"),
                  get("geogate_decisions_total", profile="web", verdict="allow", country="GB"),
                  get("geogate_reloads_total", outcome="ok"), get("geogate_connections"),
                  get("geogate_answer_duration_seconds_count") >= 1, get("geogate_trie_build_time_seconds"))
            """.write(toFile: script, atomically: true, encoding: .utf8)
        let parsed = d.directory + "/parsed.txt"
        let status = run("/usr/bin/python3", [script, out], stdout: parsed, stderr: d.directory + "/parse.err")
        let values = (try? String(contentsOfFile: parsed, encoding: .utf8)) ?? ""
        #expect(status == 0, "\((try? String(contentsOfFile: d.directory + "/parse.err", encoding: .utf8)) ?? "")")
        #expect(values == "5.0 1.0 2.0 1.0 0.0 1.0 True 1700000000.0\n", "\(values)")
    }
}
