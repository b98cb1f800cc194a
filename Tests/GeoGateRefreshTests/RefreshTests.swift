import Foundation
import GeoGateCore
import GeoGateTestSupport
import NIOHTTP1
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `geogate refresh` end to end: the real binary against a real HTTP server on
/// loopback, with a scratch config, state directory and live trie.
final class RefreshScratch {
    let directory: String
    let server: TestServer
    var live: String { directory + "/live.trie" }
    var configPath: String { directory + "/geogate.conf" }
    var socket: String { directory + "/geogate.sock" }

    /// `sources`, if given, is the YAML of refresh.sources' items, indented by four.
    init(source: String = "/dbip.csv", sources: String? = nil, minRanges: Int = 10, extra: String = "", daemon: String = "",
         timeout: Int = 5) throws {
        directory = NSTemporaryDirectory() + "geogate-refresh-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        server = try TestServer()
        try """
            database: \(directory)/live.trie
            runtime-dir: \(directory)/run
            lock-wait: 30
            daemon:
              socket: \(directory)/geogate.sock
              watch-interval: 0
            \(daemon)
            profiles:
              web:
                scope: web-only
                allow-countries: [IT, CH]
            refresh:
              state-dir: \(directory)/state
              timeout: \(timeout)
              retries: 2
              retry-delay-ms: 50
              max-size-mb: 1
              min-ranges: \(minRanges)
              apply-sets: false
              sources:
            \(sources ?? "    - url: \(server.url(source))")
            \(extra)
            """.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    deinit {
        server.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A DB-IP CSV: `count` /16 ranges, 1.0.0.0/16 upward, countries cycling IT CH GB FR;
    /// `renumber` gives range i the country of range i+1 for the first `renumber` ranges.
    static func csv(count: Int = 200, swapGB: Bool = false) -> [UInt8] {
        let countries = ["IT", "CH", "GB", "FR"]
        var text = ""
        for i in 0..<count {
            var cc = countries[i % 4]
            if swapGB && cc == "GB" { cc = "FR" }
            text += "\(i / 256 + 1).\(i % 256).0.0,\(i / 256 + 1).\(i % 256).255.255,\(cc)\n"
        }
        text += "2001:db8::,2001:db8::ffff,IT\n"
        return Array(text.utf8)
    }

    /// Runs `geogate refresh`; the exit status and what it logged.
    /// With `watchdog`, the run is killed (exit 124) after that many seconds.
    func refresh(_ args: [String] = [], environment: [String: String]? = nil, watchdog: Int? = nil) -> (Int32, String) {
        let log = directory + "/refresh-\(UUID().uuidString).log"
        let command = watchdog.map { ["/usr/bin/timeout", "\($0)", geogateBinary] } ?? [geogateBinary]
        let status = run(command[0], Array(command.dropFirst()) + ["refresh", "--config", configPath] + args,
                         environment: environment.map { ProcessInfo.processInfo.environment.merging($0) { $1 } }, stderr: log)
        return (status, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }

    /// Starts `geogate serve` and waits for its socket; its log is serve.log.
    func serve() -> pid_t {
        let pid = spawn(geogateBinary, ["serve", "--config", configPath], stderr: directory + "/serve.log")
        for _ in 0..<100 where access(socket, F_OK) != 0 { usleep(50_000) }
        return pid
    }

    var serveLog: String { (try? String(contentsOfFile: directory + "/serve.log", encoding: .utf8)) ?? "" }

    func lookup(_ address: String) -> String {
        let out = directory + "/lookup.out"
        _ = run(geogateBinary, ["lookup", "--db", live, address], stdout: out, stderr: "/dev/null")
        return ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    var liveBytes: Data? { try? Data(contentsOf: URL(fileURLWithPath: live)) }
}

@Suite(.serialized) struct RefreshTests {
    @Test func downloadsThenAsksConditionallyAndGetsUnchanged() throws {
        let s = try RefreshScratch()
        s.server.plan("/dbip.csv", [.init(body: RefreshScratch.csv(), etag: "\"v1\"")])
        let (first, log) = s.refresh()
        #expect(first == 0, "\(log)")
        #expect(log.contains("downloaded") && log.contains("changed:"), "\(log)")
        #expect(s.lookup("1.0.0.1") == "1.0.0.1 IT")
        #expect(s.lookup("1.2.0.1") == "1.2.0.1 GB")
        let (second, log2) = s.refresh()
        #expect(second == 3, "\(log2)")
        let seen = s.server.requests("/dbip.csv")
        #expect(seen.count == 2)
        #expect(seen.last?.ifNoneMatch == "\"v1\"" && seen.last?.answered == 304, "the second request is conditional and gets no body")
        #expect(log2.contains("not modified"), "\(log2)")
    }

    @Test func aServerErrorIsRetriedThenTheDataChanges() throws {
        let s = try RefreshScratch()
        s.server.plan("/dbip.csv", [.init(status: .internalServerError), .init(status: .tooManyRequests),
                                    .init(body: RefreshScratch.csv(), etag: "\"v1\"")])
        let (status, log) = s.refresh()
        #expect(status == 0, "\(log)")
        #expect(s.server.requests("/dbip.csv").map(\.answered) == [500, 429, 200])
        #expect(log.contains("retrying"), "\(log)")
    }

    @Test func aNotFoundIsNotRetriedAndChangesNothing() throws {
        let s = try RefreshScratch()
        s.server.plan("/dbip.csv", [.init(body: RefreshScratch.csv(), etag: "\"v1\"")])
        #expect(s.refresh().0 == 0)
        let before = s.liveBytes
        s.server.plan("/dbip.csv", [.init(status: .notFound)])
        // A new state directory: the refresh must download, not answer from its cache.
        try FileManager.default.removeItem(atPath: s.directory + "/state")
        let (status, log) = s.refresh()
        #expect(status == 1, "\(log)")
        #expect(log.contains("HTTP 404") && log.contains("nothing changed"), "\(log)")
        #expect(s.server.requests("/dbip.csv").count == 2, "no retry on 404")
        #expect(s.liveBytes == before)
    }

    /// Each bad download is refused, the live trie stays byte for byte, and the
    /// refused download is not cached (a later good one is fetched in full).
    @Test(arguments: ["truncated-gzip", "checksum", "oversize", "slow", "halved", "bomb"])
    func aBadDownloadIsRefusedWithTheOldDataLive(kind: String) throws {
        let path = kind == "truncated-gzip" ? "/dbip.csv.gz" : "/dbip.csv"
        let pin = kind == "checksum" ? "\n      sha256: \(String(repeating: "ab", count: 32))" : ""
        let s = try RefreshScratch(source: path, timeout: kind == "slow" ? 1 : 5)
        if !pin.isEmpty {
            var text = try String(contentsOfFile: s.configPath, encoding: .utf8)
            text = text.replacingOccurrences(of: "    - url: \(s.server.url(path))", with: "    - url: \(s.server.url(path))" + pin)
            try text.write(toFile: s.configPath, atomically: true, encoding: .utf8)
        }
        let good = kind == "truncated-gzip" ? try gzip(RefreshScratch.csv(), in: s.directory) : RefreshScratch.csv()
        // A first good refresh (the pin is off for it).
        if pin.isEmpty {
            s.server.plan(path, [.init(body: good, etag: "\"v1\"")])
            #expect(s.refresh().0 == 0)
        }
        let before = s.liveBytes
        var bad = TestServer.Answer(etag: "\"v2\"")
        switch kind {
        case "truncated-gzip": bad.body = Array(good.prefix(good.count / 2))
        case "checksum": bad.body = good
        case "oversize": bad.body = Array(repeating: UInt8(ascii: "#"), count: 1_200_000)
        case "slow": bad.body = good; bad.delay = 3
        case "bomb":  // 100 MiB of zeros in 100 KB of gzip
            _ = run("/bin/bash", ["-c", "head -c 100M /dev/zero | gzip -9 > \(s.directory)/bomb.gz"], stderr: "/dev/null")
            bad.body = Array(try Data(contentsOf: URL(fileURLWithPath: s.directory + "/bomb.gz")))
        default: bad.body = RefreshScratch.csv(count: 100)
        }
        s.server.plan(path, [bad])
        let (status, log) = s.refresh()
        #expect(status == 1, "\(kind): \(log)")
        #expect(log.contains("nothing changed"), "\(log)")
        let reason = ["truncated-gzip": "dbip.csv.gz", "checksum": "checksum mismatch", "oversize": "MB limit",
                      "slow": "within 1 s", "halved": "sanity guard",
                      "bomb": "gzip data expands to over 64 MiB, the input limit"][kind]!
        #expect(log.contains(reason), "\(kind): \(log)")
        #expect(s.liveBytes == before, "the live trie is unchanged")
        if kind == "halved" {
            #expect(log.contains("IPv4 coverage would change by -50.0%"), "\(log)")
            let (forced, forcedLog) = s.refresh(["--force"])
            #expect(forced == 0, "\(forcedLog)")
            #expect(s.lookup("1.150.0.1") == "1.150.0.1 --")
        }
    }

    /// A server that sends one byte every half second never trips the idle
    /// timeout; the transfer's deadline (refresh.timeout) cuts it off.
    @Test func aDrippingServerIsCutOffByTheTransferDeadline() throws {
        let s = try RefreshScratch(timeout: 2)
        s.server.plan("/dbip.csv", [.init(body: RefreshScratch.csv(), etag: "\"v1\"")])
        #expect(s.refresh().0 == 0)
        let before = s.liveBytes
        s.server.plan("/dbip.csv", [.init(body: RefreshScratch.csv(swapGB: true), etag: "\"v2\"", drip: 0.5)])
        let started = Date()
        // A watchdog of our own: before the deadline existed, this run never ended.
        let (status, log) = s.refresh(watchdog: 40)
        let took = Date().timeIntervalSince(started)
        #expect(status == 1, "\(log)")
        #expect(log.contains("the transfer did not complete within 2 s (refresh.timeout)"), "\(log)")
        #expect(took < 10, "refused after \(took) s")
        #expect(s.server.requests("/dbip.csv").count == 2, "a transfer too slow for its deadline is not retried")
        #expect(s.liveBytes == before)
    }

    /// The whole run has a deadline too (refresh.deadline): two sources that each
    /// take 2 s, within their own timeout, run past a deadline of 3 s.
    @Test func theWholeRunHasADeadline() throws {
        let s = try RefreshScratch(sources: "    - url: URL_A\n    - url: URL_B", timeout: 10)
        var text = try String(contentsOfFile: s.configPath, encoding: .utf8)
        text = text.replacingOccurrences(of: "URL_A", with: s.server.url("/a.csv")).replacingOccurrences(of: "URL_B", with: s.server.url("/b.csv"))
            .replacingOccurrences(of: "  timeout: 10\n", with: "  timeout: 10\n  deadline: 3\n")
        try text.write(toFile: s.configPath, atomically: true, encoding: .utf8)
        s.server.plan("/a.csv", [.init(body: RefreshScratch.csv(), delay: 2)])
        s.server.plan("/b.csv", [.init(body: RefreshScratch.csv(), delay: 2)])
        let started = Date()
        let (status, log) = s.refresh(watchdog: 40)
        #expect(status == 1, "\(log)")
        #expect(log.contains("refresh.deadline"), "\(log)")
        #expect(Date().timeIntervalSince(started) < 8)
        #expect(s.liveBytes == nil, "no trie was written")
    }

    /// A killed run's work directory is removed by the next run; a lock held for
    /// longer than lock-wait makes the next run give up with a clear message
    /// instead of waiting for ever.
    @Test func aKilledRunLeavesNothingAndALockWaitIsBounded() throws {
        let s = try RefreshScratch()
        s.server.plan("/dbip.csv", [.init(body: RefreshScratch.csv(), etag: "\"v1\"")])
        let stale = s.directory + "/state/work/run-killed"
        try FileManager.default.createDirectory(atPath: stale + "/0-url", withIntermediateDirectories: true)
        try Data(repeating: 7, count: 1000).write(to: URL(fileURLWithPath: stale + "/0-url/download"))
        let (first, log) = s.refresh()
        #expect(first == 0, "\(log)")
        #expect(!FileManager.default.fileExists(atPath: stale), "\(log)")
        #expect(log.contains("removing \(stale), left by a refresh that did not finish"), "\(log)")
        #expect((try FileManager.default.contentsOfDirectory(atPath: s.directory + "/state/work")).isEmpty)

        // Another holder of the lock (a stuck run): wait 1 s, then give up.
        var text = try String(contentsOfFile: s.configPath, encoding: .utf8)
        text = text.replacingOccurrences(of: "lock-wait: 30", with: "lock-wait: 1")
        try text.write(toFile: s.configPath, atomically: true, encoding: .utf8)
        let holder = spawn("/usr/bin/flock", ["-x", s.directory + "/run/geogate.lock", "sleep", "20"], stderr: "/dev/null")
        defer { kill(holder, SIGTERM); var st: Int32 = 0; waitpid(holder, &st, 0) }
        usleep(300_000)
        let started = Date()
        let (second, secondLog) = s.refresh(["--force"], watchdog: 40)
        #expect(second == 1, "\(secondLog)")
        #expect(secondLog.contains("geogate.lock: still held by another geogate run after 1 s (lock-wait); nothing was changed"), "\(secondLog)")
        #expect(Date().timeIntervalSince(started) < 5)
    }

    @Test func twoRefreshesAtOnceOneWaitsForTheOther() throws {
        let s = try RefreshScratch()
        s.server.plan("/dbip.csv", [.init(body: RefreshScratch.csv(), etag: "\"v1\"", delay: 1)])
        let logs = [s.directory + "/a.log", s.directory + "/b.log"]
        let pids = logs.map { spawn(geogateBinary, ["refresh", "--config", s.configPath], stderr: $0) }
        var statuses: [Int32] = []
        for pid in pids {
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            statuses.append((status >> 8) & 0xFF)
        }
        let text = logs.map { (try? String(contentsOfFile: $0, encoding: .utf8)) ?? "" }.joined(separator: "\n---\n")
        #expect(statuses.sorted() == [0, 3], "\(text)")
        #expect(text.contains("geogate.lock is held by pid") && text.contains(": geogate refresh; waiting up to 30 s"), "\(text)")
    }

    @Test func theDaemonReloadsAndAnswersEveryQueryWhileTheTrieIsSwapped() throws {
        let s = try RefreshScratch()
        s.server.plan("/dbip.csv", [.init(body: RefreshScratch.csv(), etag: "\"v1\"")])
        #expect(s.refresh().0 == 0)
        let daemon = s.serve()
        defer { kill(daemon, SIGTERM); var st: Int32 = 0; waitpid(daemon, &st, 0) }
        // A client asking all the time: 200 pipelined requests, then their answers, again and again.
        let tally = Tally()
        let socketPath = s.socket
        let client = Thread {
            guard let fd = try? UnixSocketClient.connect(socketPath) else { tally.bad.add(1, ordering: .relaxed); return }
            defer { close(fd) }
            let batch = Array(String(repeating: "LOOKUP 1.2.0.1\n", count: 200).utf8)
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while !tally.stop.load(ordering: .relaxed) {
                guard write(fd, batch, batch.count) == batch.count else { tally.bad.add(1, ordering: .relaxed); return }
                var lines = 0, pending: [UInt8] = []
                while lines < 200 {
                    let n = read(fd, &buffer, buffer.count)
                    guard n > 0 else { tally.bad.add(1, ordering: .relaxed); return }
                    pending += buffer[0..<n]
                    while let nl = pending.firstIndex(of: 0x0A) {
                        let line = String(decoding: pending[..<nl], as: UTF8.self)
                        if line != "OK 1.2.0.1 GB" && line != "OK 1.2.0.1 FR" { tally.bad.add(1, ordering: .relaxed) }
                        pending.removeSubrange(...nl)
                        lines += 1
                    }
                }
                tally.answered.add(200, ordering: .relaxed)
            }
        }
        client.start()
        usleep(300_000)
        s.server.plan("/dbip.csv", [.init(body: RefreshScratch.csv(swapGB: true), etag: "\"v2\"")])
        let (status, log) = s.refresh()
        usleep(300_000)
        tally.stop.store(true, ordering: .relaxed)
        usleep(200_000)
        #expect(status == 0, "\(log)")
        #expect(log.contains("daemon: OK reloaded"), "\(log)")
        #expect(tally.bad.load(ordering: .relaxed) == 0)
        #expect(tally.answered.load(ordering: .relaxed) > 1000)
        let c = try UnixSocketClient.connect(s.socket)
        defer { close(c) }
        let ask = Array("LOOKUP 1.2.0.1\n".utf8)
        _ = write(c, ask, ask.count)
        var reply = [UInt8](repeating: 0, count: 64)
        let n = read(c, &reply, 64)
        #expect(String(decoding: reply[0..<max(n, 0)], as: UTF8.self) == "OK 1.2.0.1 FR\n")
        // And rollback puts the previous data back.
        #expect(run(geogateBinary, ["rollback", "--config", s.configPath], stderr: s.directory + "/rollback.log") == 0)
        #expect(s.lookup("1.2.0.1") == "1.2.0.1 GB")
    }

    /// daemon.refresh-interval: the daemon runs the refresh itself, counting from
    /// the last run (the stamp the manual refresh left), picks up the change, logs
    /// a failed run and keeps serving.
    @Test func theDaemonRefreshesOnItsOwnInterval() throws {
        let s = try RefreshScratch(daemon: "  refresh-interval: 2s\n  refresh-jitter: 0")
        s.server.plan("/dbip.csv", [.init(body: RefreshScratch.csv(), etag: "\"v1\"")])
        #expect(s.refresh().0 == 0)
        s.server.plan("/dbip.csv", [.init(body: RefreshScratch.csv(swapGB: true), etag: "\"v2\""), .init(status: .notFound)])
        let daemon = s.serve()
        defer { kill(daemon, SIGTERM); var st: Int32 = 0; waitpid(daemon, &st, 0) }
        #expect(try UnixSocketClient.ask(s.socket, "LOOKUP 1.2.0.1") == "OK 1.2.0.1 GB", "\(s.serveLog)")
        var answer = ""
        for _ in 0..<100 {
            answer = (try? UnixSocketClient.ask(s.socket, "LOOKUP 1.2.0.1")) ?? "no answer"
            if answer != "OK 1.2.0.1 GB" && s.serveLog.contains("scheduled refresh: failed") { break }
            usleep(100_000)
        }
        let log = s.serveLog
        #expect(answer == "OK 1.2.0.1 FR", "\(log)")
        #expect(log.contains("scheduled refresh: the data changed") && log.contains("daemon: OK reloaded"), "\(log)")
        #expect(log.contains("HTTP 404") && log.contains("scheduled refresh: failed (exit status 1)"), "\(log)")
        #expect(s.server.requests("/dbip.csv").count >= 3)
    }
}

import Synchronization

final class Tally: Sendable {
    let stop = Atomic(false), answered = Atomic(0), bad = Atomic(0)
}

func gzip(_ bytes: [UInt8], in directory: String) throws -> [UInt8] {
    let path = directory + "/data.csv"
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    _ = run("/bin/gzip", ["-kf9n", path], stderr: "/dev/null")
    return Array(try Data(contentsOf: URL(fileURLWithPath: path + ".gz")))
}

/// A real HTTP proxy (tinyproxy) on a free loopback port, in the foreground,
/// stopped with the test. It adds `Via: 1.1 geogate-test-proxy` to what it forwards.
final class TinyProxy {
    let port: Int
    let pid: pid_t

    init(directory: String) throws {
        // A free port: bound and released (tinyproxy takes it a moment later).
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = bind(fd, $0, length); _ = getsockname(fd, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        close(fd)
        let conf = directory + "/tinyproxy.conf"
        try """
            Port \(port)
            Listen 127.0.0.1
            Timeout 30
            LogLevel Info
            MaxClients 20
            Allow 127.0.0.1
            ViaProxyName "geogate-test-proxy"
            """.write(toFile: conf, atomically: true, encoding: .utf8)
        logPath = directory + "/tinyproxy.log"
        // (In the foreground, tinyproxy logs to standard output.)
        pid = spawn("/usr/bin/tinyproxy", ["-d", "-c", conf], stdout: logPath, stderr: directory + "/tinyproxy.stderr")
        guard pid > 0 else { throw CocoaError(.executableNotLoadable) }
        for _ in 0..<100 {
            let probe = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var target = sockaddr_in()
            target.sin_family = sa_family_t(AF_INET)
            target.sin_addr.s_addr = inet_addr("127.0.0.1")
            target.sin_port = in_port_t(UInt16(port).bigEndian)
            let ok = withUnsafePointer(to: &target) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(probe, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
            }
            close(probe)
            if ok { return }
            usleep(50_000)
        }
    }

    func stop() { kill(pid, SIGTERM); var s: Int32 = 0; waitpid(pid, &s, 0) }
    var url: String { "http://127.0.0.1:\(port)" }
    let logPath: String

    /// The tunnels tinyproxy opened to `port` (AsyncHTTPClient sends plain HTTP
    /// through a CONNECT tunnel too).
    func tunnels(to port: Int) -> Int {
        ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").components(separatedBy: "CONNECT 127.0.0.1:\(port) ").count - 1
    }
}

@Suite(.serialized) struct ProxyTests {
    @Test func downloadsGoThroughTheProxyOfTheEnvironmentOrTheConfigButNotForNoProxyHosts() throws {
        let s = try RefreshScratch()
        s.server.plan("/dbip.csv", [.init(body: RefreshScratch.csv(), etag: "\"v1\"")])
        let proxy = try TinyProxy(directory: s.directory)
        defer { proxy.stop() }
        // http_proxy, as curl reads it.
        let (first, log) = s.refresh(environment: ["http_proxy": proxy.url])
        #expect(first == 0, "\(log)")
        #expect(proxy.tunnels(to: s.server.port) == 1, "through tinyproxy")
        #expect(log.contains("through the proxy 127.0.0.1:\(proxy.port)"), "\(log)")
        // no_proxy names the server (as a CIDR): straight there.
        let (second, log2) = s.refresh(environment: ["http_proxy": proxy.url, "no_proxy": "localhost, 127.0.0.0/8"])
        #expect(second == 3, "\(log2)")
        #expect(s.server.requests("/dbip.csv").count == 2 && proxy.tunnels(to: s.server.port) == 1, "direct")
        // HTTP_PROXY in upper case is not read (a CGI client can set it), as by curl.
        let (third, log4) = s.refresh(environment: ["HTTP_PROXY": "http://127.0.0.1:1"])
        #expect(third == 3, "\(log4)")
        // A proxy that is down: the refresh fails, names it, and changes nothing.
        let before = s.liveBytes
        let (down, log3) = s.refresh(["--force"], environment: ["http_proxy": "http://127.0.0.1:1"])
        #expect(down == 1 && log3.contains("through the proxy 127.0.0.1:1"), "\(log3)")
        #expect(s.liveBytes == before)
    }

    @Test func refreshProxyInTheConfigWinsOverTheEnvironment() throws {
        let s = try RefreshScratch(extra: "  proxy: PROXY\n  no-proxy: example.org")
        let proxy = try TinyProxy(directory: s.directory)
        defer { proxy.stop() }
        let text = try String(contentsOfFile: s.configPath, encoding: .utf8).replacingOccurrences(of: "PROXY", with: proxy.url)
        try text.write(toFile: s.configPath, atomically: true, encoding: .utf8)
        s.server.plan("/dbip.csv", [.init(body: RefreshScratch.csv())])
        let (status, log) = s.refresh(environment: ["http_proxy": "http://127.0.0.1:1", "no_proxy": "127.0.0.1"])
        #expect(status == 0, "\(log)")
        #expect(proxy.tunnels(to: s.server.port) == 1, "through tinyproxy")
        // Only HTTP proxies: a SOCKS one is a config error (exit 2), not ignored.
        try text.replacingOccurrences(of: proxy.url, with: "socks5://127.0.0.1:1080").write(toFile: s.configPath, atomically: true, encoding: .utf8)
        let (bad, log2) = s.refresh()
        #expect(bad == 2 && log2.contains("refresh.proxy") && log2.contains("only http://"), "\(log2)")
    }
}
