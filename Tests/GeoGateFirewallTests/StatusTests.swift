import Foundation
import Testing

/// `geogate status` in a network namespace of the test's own, walked through the
/// states an admin meets: sets no rule uses (broken), enforced (ok), a drifted
/// set, a missing set, the filter switched open, stale data, a failed refresh,
/// the daemon down and up; with the exit statuses a monitoring check reads.
@Suite(.serialized, .enabled(if: namespacesAvailable, "needs root and ip netns"))
struct StatusTests {
    @Test func eachStateAndItsExitStatus() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        func config(staleAfter: String = "30d", web: Bool = false) -> String {
            scratch.write("geogate.conf", scratch.runtimeConfig + """
                state-dir: \(scratch.path)/state
                database: \(scratch.path)/live.trie
                daemon:
                  socket: \(scratch.path)/geogate.sock
                  watch-interval: 0
                profiles:
                  full:
                    scope: full-server
                    allow-countries: [IT]
                    no-country: deny
                \(web ? "  web:\n    scope: web-only\n    allow-countries: [IT]\n" : "")
                refresh:
                  state-dir: \(scratch.path)/rstate
                  min-ranges: 2
                  max-family-change: 100
                  max-country-change: 100
                  stale-after: \(staleAfter)
                  sources:
                    - file: \(scratch.path)/dbip.csv

                """)
        }
        let configPath = config()
        scratch.write("dbip.csv", testDataset)
        let ns = Namespace(scratch, tag: "stat")
        defer { ns.remove() }
        func geogate(_ args: String) -> CommandResult { ns.run("\"$GEOGATE\" \(args) --config \(configPath)") }
        func status() -> CommandResult { geogate("status") }

        #expect(geogate("refresh").status == 0)
        // 1. Sets loaded, but no rule uses them: nothing is filtered.
        var s = status()
        #expect(s.status == 2 && s.stdout.hasPrefix("geogate status: BROKEN") && s.stdout.contains("used by no rule")
                && s.stdout.contains("no iptables, ip6tables or nft rule uses the sets"), "\(s.stdout)")
        // 2. Only IPv4 enforced: IPv6 passes unfiltered, degraded. Then both.
        ns.run("iptables -A INPUT -m set ! --match-set geogate-full-v4 src -j DROP")
        s = status()
        #expect(s.status == 1 && s.stdout.contains("no rule uses set geogate-full-v6: IPv6 traffic is not filtered"), "\(s.stdout)")
        ns.run("ip6tables -A INPUT -m set ! --match-set geogate-full-v6 src -j DROP")
        s = status()
        #expect(s.status == 0 && s.stdout.hasPrefix("geogate status: OK"), "\(s.stdout)")
        #expect(s.stdout.contains("set geogate-full-v4: present, 7 entries, as planned; used by 1 rule (iptables)"), "\(s.stdout)")
        #expect(s.stdout.contains("refresh: last ") && s.stdout.contains(": changed (exit 0): 2 IPv4 ranges (was 0), 2 IPv6 ranges (was 0)"), "\(s.stdout)")
        #expect(s.stdout.contains("daemon: not answering"), "no web-only profile: the daemon is not needed: \(s.stdout)")
        let json = geogate("status --json")
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect(json.status == 0 && object?["state"] as? String == "ok" && (object?["sets"] as? [Any])?.count == 2, "\(json.stdout)")
        // 3. A set changed by hand: drift, degraded; apply mends it.
        ns.run("ipset add geogate-full-v4 8.8.8.0/24")
        s = status()
        #expect(s.status == 1 && s.stdout.contains("DRIFTED: 0 missing, 1 extra") && s.stdout.hasPrefix("geogate status: DEGRADED"), "\(s.stdout)")
        #expect(geogate("apply").status == 0 && status().status == 0)
        // 4. A set missing from the kernel: broken.
        ns.run("ip6tables -F INPUT; ipset destroy geogate-full-v6")
        s = status()
        #expect(s.status == 2 && s.stdout.contains("set geogate-full-v6: MISSING"), "\(s.stdout)")
        #expect(geogate("apply").status == 0)
        ns.run("ip6tables -A INPUT -m set ! --match-set geogate-full-v6 src -j DROP")
        #expect(status().status == 0)
        // 5. Switched open: degraded, and said so.
        #expect(geogate("apply --open").status == 0)
        s = status()
        #expect(s.status == 1 && s.stdout.contains("filter: SWITCHED OPEN") && s.stdout.contains("present, 2 entries, as planned"), "\(s.stdout)")
        #expect(geogate("apply").status == 0 && status().status == 0)
        // 6. Stale data.
        _ = config(staleAfter: "1s")
        sleep(2)
        s = status()
        #expect(s.status == 1 && s.stdout.contains("more than refresh.stale-after"), "\(s.stdout)")
        _ = config()
        // 7. The last refresh failed (the old data stays live).
        scratch.write("dbip.csv", "not,a,range\n")
        #expect(geogate("refresh").status == 1)
        s = status()
        #expect(s.status == 1 && s.stdout.contains("failed (exit 1)") && s.stdout.contains("the last refresh failed"), "\(s.stdout)")
        scratch.write("dbip.csv", testDataset + "203.0.113.0,203.0.113.255,IT\n")
        #expect(geogate("refresh").status == 0 && status().status == 0)
        // 8. A web-only profile needs the daemon: down is degraded, up is well.
        _ = config(web: true)
        s = status()
        #expect(s.status == 1 && s.stdout.contains("the daemon does not answer"), "\(s.stdout)")
        let daemon = spawn(geogateBinary, ["serve", "--config", configPath], stderr: scratch.path + "/serve.log")
        defer { kill(daemon, SIGTERM); var w: Int32 = 0; waitpid(daemon, &w, 0) }
        for _ in 0..<100 where access(scratch.path + "/geogate.sock", F_OK) != 0 { usleep(50_000) }
        _ = bash("printf 'CHECK web 198.51.100.7\\nCHECK web 192.0.2.1\\n' | socat - UNIX-CONNECT:\(scratch.path)/geogate.sock", in: scratch)
        s = status()
        #expect(s.status == 0 && s.stdout.contains("daemon: up on \(scratch.path)/geogate.sock") && s.stdout.contains("web.allow=1 web.deny=1"),
                "\(s.stdout)")
        #expect(s.stdout.contains("next refresh: not scheduled"), "\(s.stdout)")
    }
}

/// The same reading with the nft backend: table inet geogate's interval sets,
/// compared range by range, and the nft rules that use them.
@Suite(.serialized, .enabled(if: namespacesAvailable, "needs root and ip netns"))
struct StatusNFTTests {
    @Test func nftSetsAreComparedWithThePlan() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let (_, configPath) = prepare(scratch, dataset: testDataset,
                                      config: "database: \(scratch.path)/countries.trie\nstate-dir: \(scratch.path)/state\nbackend: nft\n"
                                          + "daemon:\n  socket: \(scratch.path)/geogate.sock\n" + testConfig)
        // Built now, not at time 0 as prepare() builds it: fresh data, not stale.
        #expect(bash("\"$GEOGATE\" compile -q data.csv -o countries.trie", in: scratch).status == 0)
        let ns = Namespace(scratch, tag: "stnf")
        defer { ns.remove() }
        func geogate(_ args: String) -> CommandResult { ns.run("\"$GEOGATE\" \(args) --config \(configPath)") }
        #expect(geogate("apply").status == 0)
        var s = geogate("status")
        #expect(s.status == 2 && s.stdout.contains("set geogate-full-v4: present, 7 entries, as planned; used by no rule"), "\(s.stdout)")
        ns.run("""
            nft add chain inet geogate input '{ type filter hook input priority -10; policy accept; }'
            nft add rule inet geogate input ip saddr != @geogate-full-v4 drop
            nft add rule inet geogate input ip6 saddr != @geogate-full-v6 drop
            """)
        s = geogate("status")
        #expect(s.status == 0 && s.stdout.contains("set geogate-full-v6: present, 4 entries, as planned; used by 1 rule (nft)"), "\(s.stdout)")
        // An element added by hand, then a planned one removed: drift both ways.
        ns.run("nft add element inet geogate geogate-full-v4 '{ 8.8.8.0/24 }'; nft delete element inet geogate geogate-full-v4 '{ 198.51.100.0/24 }'")
        s = geogate("status")
        #expect(s.status == 1 && s.stdout.contains("DRIFTED: 1 missing, 1 extra"), "\(s.stdout)")
        #expect(geogate("apply").status == 0 && geogate("status").status == 0)
    }
}
