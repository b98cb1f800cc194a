import Foundation
import GeoGateCore
import GeoGateTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// allow-lists and block-lists feeds through `geogate refresh`, against a real
/// HTTP server on loopback serving the three shapes real feeds have (Spamhaus
/// DROP, a FireHOL netset, a plain list): taken, decided by `check` and the
/// daemon, asked for conditionally, an empty feed refused, a doubled one refused
/// unless --force, a feed-only change switching the feeds with the trie untouched.
@Suite(.serialized) struct FeedTests {
    static let drop = """
        ; Spamhaus DROP List 2026/11/30 - (c) 2026 The Spamhaus Project SLU
        ; Last-Modified: Mon, 30 Nov 2026 00:00:00 GMT
        ; Expires: Mon, 30 Nov 2026 01:00:00 GMT
        1.0.5.0/24 ; SBL123456
        1.0.6.0/23 ; SBL123457

        """
    static let netset = """
        #
        # firehol_level1
        # ipv4 hash:net ipset
        #
        1.1.0.0/20
        2001:db8:bad::/48

        """
    static let partners = "# our partners\n1.2.3.0/24\n1.2.4.9\n"

    func scratch() throws -> RefreshScratch {
        let s = try RefreshScratch()
        var text = try String(contentsOfFile: s.configPath, encoding: .utf8)
        text = text.replacingOccurrences(of: "    allow-countries: [IT, CH]\n", with: """
                allow-countries: [IT, CH]
                block-lists:
                  - name: drop
                    url: \(s.server.url("/drop.txt"))
                  - name: level1
                    url: \(s.server.url("/firehol_level1.netset"))
                    max-entries: 100
                allow-lists:
                  - name: partners
                    url: \(s.server.url("/partners.txt"))

            """)
        text = "state-dir: \(s.directory)/lstate\n" + text
        try text.write(toFile: s.configPath, atomically: true, encoding: .utf8)
        s.server.plan("/dbip.csv", [.init(body: RefreshScratch.csv(), etag: "\"c1\"")])
        s.server.plan("/drop.txt", [.init(body: Array(Self.drop.utf8), etag: "\"d1\"")])
        s.server.plan("/firehol_level1.netset", [.init(body: Array(Self.netset.utf8), etag: "\"f1\"")])
        s.server.plan("/partners.txt", [.init(body: Array(Self.partners.utf8), etag: "\"p1\"")])
        return s
    }

    func check(_ s: RefreshScratch, _ ip: String) -> String {
        let out = s.directory + "/check.out"
        _ = run(geogateBinary, ["check", "--config", s.configPath, "--profile", "web", ip], stdout: out, stderr: out + ".err")
        return ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").trimmingCharacters(in: .newlines)
    }

    @Test func feedsAreTakenGuardedAndSwitchedOnTheirOwn() throws {
        let s = try scratch()
        let (first, log) = s.refresh()
        #expect(first == 0, "\(log)")
        #expect(log.contains("feed web/drop: 2 networks (was none)") && log.contains("feed web/partners: 2 networks (was none)"), "\(log)")
        #expect(check(s, "1.0.5.9") == "DENY IT block-list 1.0.5.0/24", "Spamhaus DROP, with its ; comments")
        #expect(check(s, "1.1.3.4") == "DENY CH block-list 1.1.0.0/20", "a FireHOL netset")
        #expect(check(s, "1.2.3.4") == "ALLOW GB allow-list 1.2.3.0/24", "a plain list")
        #expect(check(s, "1.2.4.9") == "ALLOW GB allow-list 1.2.4.9/32", "an address is a host network")
        #expect(check(s, "1.0.8.1") == "ALLOW IT country-allowed")
        let kept = try String(contentsOfFile: s.directory + "/lstate/feeds/web.block.drop", encoding: .utf8)
        #expect(kept.hasSuffix("1.0.5.0/24\n1.0.6.0/23\n"), "\(kept)")
        let status = run(geogateBinary, ["status", "--config", s.configPath], stdout: s.directory + "/status.out", stderr: "/dev/null")
        let text = (try? String(contentsOfFile: s.directory + "/status.out", encoding: .utf8)) ?? ""
        #expect(status != 2 && text.contains("feed web/drop (block-lists): 2 networks, taken ") && text.contains("feed web/partners (allow-lists): 2 networks"), "\(text)")

        // Nothing new: every request conditional, exit 3.
        let (second, log2) = s.refresh()
        #expect(second == 3, "\(log2)")
        #expect(s.server.requests("/drop.txt").last?.answered == 304)

        // The daemon follows a feed-only change; the trie is not touched.
        let daemon = s.serve()
        defer { kill(daemon, SIGTERM); var w: Int32 = 0; waitpid(daemon, &w, 0) }
        let trie = s.liveBytes
        s.server.plan("/drop.txt", [.init(body: Array((Self.drop + "1.0.9.0/24 ; SBL1\n").utf8), etag: "\"d2\"")])
        let (third, log3) = s.refresh()
        #expect(third == 0 && log3.contains("country data unchanged") && log3.contains("changed: feed web/drop: 3 networks (was 2)"), "\(log3)")
        #expect(s.liveBytes == trie, "a feed-only change leaves the trie alone")
        #expect((try? UnixSocketClient.ask(s.socket, "CHECK web 1.0.9.1")) == "DENY IT block-list 1.0.9.0/24", "the daemon reloaded: \(s.serveLog)")

        // A feed that turns empty is refused even with --force; the old networks stay.
        s.server.plan("/drop.txt", [.init(body: Array("; Spamhaus DROP List, nothing listed\n".utf8), etag: "\"d3\"")])
        for args in [[], ["--force"]] {
            let (status, log4) = s.refresh(args)
            #expect(status == 1 && log4.contains("feed web/drop is empty"), "\(args): \(log4)")
        }
        #expect(check(s, "1.0.9.1") == "DENY IT block-list 1.0.9.0/24")

        // One that more than doubles: refused, then taken with --force.
        let many = (0..<8).map { "1.0.\(20 + $0).0/24 ; SBL\($0)\n" }.joined()
        s.server.plan("/drop.txt", [.init(body: Array((Self.drop + many).utf8), etag: "\"d4\"")])
        let (refused, log5) = s.refresh()
        #expect(refused == 1 && log5.contains("refused by the sanity guard") && log5.contains("feed web/drop went from 3 to 10 networks"), "\(log5)")
        #expect(check(s, "1.0.20.1") == "ALLOW IT country-allowed")
        let (forced, log6) = s.refresh(["--force"])
        #expect(forced == 0, "\(log6)")
        #expect(check(s, "1.0.20.1") == "DENY IT block-list 1.0.20.0/24")

        // A bad line, or more than max-entries: refused, naming the feed and the line.
        s.server.plan("/firehol_level1.netset", [.init(body: Array("1.1.0.0/20\n1.1.0.0/8\n".utf8), etag: "\"f2\"")])
        let (bad, log7) = s.refresh()
        #expect(bad == 1 && log7.contains("feed web/level1") && log7.contains(":2: host bits set after the prefix length"), "\(log7)")
        let lots = (0..<101).map { "1.1.\($0).0/24\n" }.joined()
        s.server.plan("/firehol_level1.netset", [.init(body: Array(lots.utf8), etag: "\"f3\"")])
        let (capped, log8) = s.refresh(["--force"])
        #expect(capped == 1 && log8.contains("more than 100 networks (max-entries)"), "\(log8)")
        #expect(check(s, "1.1.3.4") == "DENY CH block-list 1.1.0.0/20", "the kept feed still decides")
    }

    /// A failure while keeping the new networks, or at the daemon's reload, puts
    /// everything back: the kept feeds, the trie, the daemon's answers.
    @Test func aFailedFeedSwitchChangesNothing() throws {
        let s = try scratch()
        #expect(s.refresh().0 == 0)
        let daemon = s.serve()
        defer { kill(daemon, SIGTERM); var w: Int32 = 0; waitpid(daemon, &w, 0) }
        let kept = try String(contentsOfFile: s.directory + "/lstate/feeds/web.block.drop", encoding: .utf8)
        let trie = s.liveBytes
        s.server.plan("/drop.txt", [.init(body: Array((Self.drop + "1.0.9.0/24 ; SBL1\n").utf8), etag: "\"d2\"")])
        // With the country data changed too (the whole transaction), then alone.
        s.server.plan("/dbip.csv", [.init(body: RefreshScratch.csv(swapGB: true), etag: "\"c2\"")])
        for point in ["feeds-write", "daemon-reload"] {
            let (status, log) = s.refresh(["--force"], environment: ["GEOGATE_FAULT": point])
            #expect(status == 1 && log.contains("injected failure at \(point)"), "\(point): \(log)")
            #expect((try? String(contentsOfFile: s.directory + "/lstate/feeds/web.block.drop", encoding: .utf8)) == kept, "\(point)")
            #expect(s.liveBytes == trie, "\(point): the old trie")
            #expect((try? UnixSocketClient.ask(s.socket, "CHECK web 1.0.9.1")) == "ALLOW IT country-allowed", "\(point)")
        }
        s.server.plan("/dbip.csv", [.init(body: RefreshScratch.csv(), etag: "\"c1\"")])
        let (alone, log) = s.refresh(environment: ["GEOGATE_FAULT": "feeds-write"])
        #expect(alone == 1 && log.contains("injected failure at feeds-write"), "\(log)")
        #expect((try? String(contentsOfFile: s.directory + "/lstate/feeds/web.block.drop", encoding: .utf8)) == kept)
        let (clean, log2) = s.refresh()
        #expect(clean == 0, "\(log2)")
        #expect((try? UnixSocketClient.ask(s.socket, "CHECK web 1.0.9.1")) == "DENY IT block-list 1.0.9.0/24")
    }
}
