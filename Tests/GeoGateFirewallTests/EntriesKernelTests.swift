import Foundation
import Testing
@testable import GeoGateCore
@testable import GeoGateFirewall
@testable import GeoGatePolicy

/// Run-time entries (`geogate allow|block|unlist`, the daemon's ALLOW, BLOCK,
/// UNLIST) in a real kernel, inside namespaces the tests create: packets through
/// the rules of Docs/examples/firewall-*.sh, the daemon's answers, expiry by the
/// kernel's clock, persistence, the cap, who may change entries, and failures at
/// every step of a change leaving everything as it was.
@Suite(.serialized, .enabled(if: namespacesAvailable, "skipped: needs root with CAP_NET_ADMIN (network namespaces, ipset, iptables)"))
struct EntriesKernelTests {
    func entriesConfig(_ scratch: Scratch, backend: String = "ipset") -> String {
        """
        database: \(scratch.path)/countries.trie
        state-dir: \(scratch.path)/state
        backend: \(backend)
        daemon:
          socket: \(scratch.path)/geogate.sock
          socket-mode: "0666"
          watch-interval: 0
        entries:
          max-per-profile: 4
          group: nogroup
        profiles:
          full:
            scope: full-server
            allow-countries: [IT]
            no-country: deny

        """
    }

    /// One request line to the daemon as `user` (root, or `uid:gid` with no other groups).
    func ask(_ scratch: Scratch, _ request: String, as user: String? = nil) -> String {
        let prefix = user.map { "setpriv --reuid=\($0.split(separator: ":")[0]) --regid=\($0.split(separator: ":")[1]) --clear-groups " } ?? ""
        return bash("echo '\(request)' | \(prefix)socat -t 5 - UNIX-CONNECT:\(scratch.path)/geogate.sock", in: scratch).stdout
            .trimmingCharacters(in: .newlines)
    }

    func startDaemon(_ server: Namespace, _ config: String, log: String) -> pid_t {
        let pid = spawn("/usr/sbin/ip", ["netns", "exec", server.name, geogateBinary, "serve", "--config", config], stderr: log)
        let socket = server.scratch.path + "/geogate.sock"
        for _ in 0..<100 {
            if access(socket, F_OK) == 0, (try? UnixSocketClient.ask(socket, "PING", timeoutSeconds: 1)) == "PONG" { break }
            usleep(50_000)
        }
        return pid
    }

    func stop(_ pid: pid_t) {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }

    @Test func entriesReachTheKernelAndTheDaemonAtOnceExpireAndPersist() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let (_, config) = prepare(scratch, dataset: testDataset, config: entriesConfig(scratch))
        let server = Namespace(scratch, tag: "esrv"), client = Namespace(scratch, tag: "ecli")
        defer { client.remove(); server.remove() }
        let setup = connect(server, client, link: "ge", serverAddresses: ["203.0.113.1", "2001:db8:ff::1"],
                            clientAddresses: ["198.51.100.10", "198.51.100.11", "192.0.2.10", "2001:db8:1::10", "2001:db8:2::10"],
                            scratch: scratch)
        try #require(setup.status == 0, "\(setup.stderr)")
        // The firewall exactly as the example the package ships sets it up.
        let rules = server.run("""
            PATH=$(dirname "$GEOGATE"):$PATH GEOGATE_CONFIG=\(config) sh \(repositoryRoot)/Docs/examples/firewall-iptables.sh > /dev/null
            """)
        try #require(rules.status == 0, "\(rules.stderr)")
        func ping(_ from: String) -> String {
            let to = from.contains(":") ? "2001:db8:ff::1" : "203.0.113.1"
            return client.run("ping \(from.contains(":") ? "-6 " : "")-q -c 1 -W 1 -I \(from) \(to) > /dev/null 2>&1 && echo pass || echo drop")
                .stdout.trimmingCharacters(in: .newlines)
        }
        #expect(ping("198.51.100.10") == "pass" && ping("192.0.2.10") == "drop" && ping("2001:db8:1::10") == "pass", "the country rule alone")

        let log = scratch.path + "/serve.log"
        var daemon = startDaemon(server, config, log: log)
        defer { stop(daemon) }

        // A block of an address its country allows: the answer comes after the
        // kernel changed, so the very next packet is dropped, and CHECK says so.
        #expect(ask(scratch, "BLOCK full 198.51.100.10 60 SIP scanner").hasPrefix("OK block full 198.51.100.10/32 expires="))
        #expect(ping("198.51.100.10") == "drop", "dropped by the rule on geogate-full-rt-block-v4")
        #expect(ping("198.51.100.11") == "pass", "its neighbour is not")
        #expect(ask(scratch, "CHECK full 198.51.100.10") == "DENY IT runtime-block 198.51.100.10/32")
        #expect(ask(scratch, "BLOCK full 2001:db8:1::10 0 until unlisted").hasPrefix("OK block full 2001:db8:1::10/128 expires=never"))
        #expect(ping("2001:db8:1::10") == "drop")

        // A phone trusted from a denied country, for 3 s: passes, then expires in
        // the kernel and in the daemon with nobody polling.
        #expect(ask(scratch, "ALLOW full 192.0.2.10 3 phone 201 registered").hasPrefix("OK allow full 192.0.2.10/32"))
        #expect(ping("192.0.2.10") == "pass")
        #expect(ask(scratch, "CHECK full 192.0.2.10") == "ALLOW CN runtime-allow 192.0.2.10/32")
        usleep(3_600_000)
        #expect(ping("192.0.2.10") == "drop", "expired in the kernel")
        #expect(ask(scratch, "CHECK full 192.0.2.10") == "DENY CN country-not-allowed", "expired in the daemon")
        #expect(server.run("ipset save geogate-full-rt-allow-v4 | grep -c '^add'").stdout.hasPrefix("0"), "the kernel forgot it")

        // A restart of the daemon and a re-apply keep the entries, with their time.
        stop(daemon)
        let firstLog = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(firstLog.contains("entry: block full 198.51.100.10/32 for 60 s (uid 0: SIP scanner) by uid 0"), "\(firstLog)")
        daemon = startDaemon(server, config, log: log)
        #expect(ask(scratch, "ENTRIES full") == "OK entries=2 max=4")
        #expect(ask(scratch, "CHECK full 198.51.100.10") == "DENY IT runtime-block 198.51.100.10/32")
        let apply = server.run("\"$GEOGATE\" apply --config \(config)")
        #expect(apply.status == 0, "\(apply.stderr)")
        let timeout = Int(server.run("ipset save geogate-full-rt-block-v4 | awk '$3 == \"198.51.100.10\" { print $5 }'").stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        #expect(timeout > 0 && timeout <= 60, "re-applied with its remaining time: \(timeout)")
        #expect(ping("198.51.100.10") == "drop")

        // The command line while the daemon runs: the daemon answers with it at once.
        let cli = server.run("\"$GEOGATE\" block --config \(config) --profile full 198.51.100.11 --for 1m --reason 'from the console'")
        #expect(cli.status == 0 && cli.stdout.hasPrefix("block full 198.51.100.11/32 for 60 s (uid 0: from the console)"), "\(cli.stdout) \(cli.stderr)")
        #expect(ask(scratch, "CHECK full 198.51.100.11") == "DENY IT runtime-block 198.51.100.11/32")
        #expect(ping("198.51.100.11") == "drop")

        // The cap: the fourth entry is taken, the fifth refused; nothing changes.
        #expect(ask(scratch, "ALLOW full 192.0.2.11 0").hasPrefix("OK allow"))
        #expect(ask(scratch, "ALLOW full 192.0.2.12 0").hasPrefix("ERR full profile full holds its cap of 4 run-time entries"))
        #expect(server.run("\"$GEOGATE\" allow --config \(config) 192.0.2.12").status == 1)
        #expect(ask(scratch, "CHECK full 192.0.2.12") == "DENY CN country-not-allowed")

        // Who may change entries: a uid outside entries.group is refused (and
        // logged); nobody (group nogroup) may.
        #expect(ask(scratch, "UNLIST full 198.51.100.10", as: "1:1").hasPrefix("ERR forbidden"))
        #expect(ask(scratch, "CHECK full 198.51.100.10", as: "1:1") == "DENY IT runtime-block 198.51.100.10/32", "asking is for everyone")
        #expect(ask(scratch, "UNLIST full 198.51.100.10", as: "65534:65534") == "OK unlisted full 198.51.100.10/32")
        #expect(ping("198.51.100.10") == "pass")
        let logged = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(logged.contains("run-time entry change from uid 1 refused") && logged.contains("entry: unlisted block full 198.51.100.10/32 by uid 65534"),
                "\(logged)")

        // status: the count and the cap, the sets used by the rules.
        let status = server.run("\"$GEOGATE\" status --config \(config)")
        #expect(status.stdout.contains("entries: profile full: 3 of 4 (1 allow, 2 block)"), "\(status.stdout)")
        #expect(status.stdout.contains("set geogate-full-rt-block-v4: present, 1 entries, as planned; used by 1 rule (iptables)"), "\(status.stdout)")
        let list = server.run("\"$GEOGATE\" entries --config \(config) --json")
        let object = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [String: Any]
        #expect((object?["entries"] as? [Any])?.count == 3 && object?["cap"] as? Int == 4, "\(list.stdout)")
    }

    /// A change stopped at each step (its first kernel operation, a later one,
    /// writing the file, telling the daemon) leaves the kernel sets and the entries
    /// file as they were, and no temporary set.
    @Test func anEntryChangeThatFailsAtAnyStepChangesNothing() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let (_, config) = prepare(scratch, dataset: testDataset, config: entriesConfig(scratch))
        let ns = Namespace(scratch, tag: "efault")
        defer { ns.remove() }
        let setup = ns.run("""
            "$GEOGATE" apply --config \(config) > /dev/null && "$GEOGATE" block --config \(config) 198.51.100.5 --for 1h > /dev/null \
            && "$GEOGATE" allow --config \(config) 192.0.2.0/28 > /dev/null
            """)
        try #require(setup.status == 0, "\(setup.stderr)")
        // The kernel's elements without their timeouts, which count down.
        let kernel = "ipset save | sed -E 's/ timeout [0-9]+//' | sort"
        let before = ns.run(kernel).stdout
        let file = try String(contentsOfFile: scratch.path + "/state/entries", encoding: .utf8)
        #expect(before.contains("add geogate-full-rt-block-v4 198.51.100.5") && before.contains("add geogate-full-rt-allow-v4 192.0.2.0/28"))
        // A block replacing the allow of the same network is two kernel operations
        // (out of the allow set, into the block set): "sets-switch" stops it between them.
        let all = ["block --for 1h 198.51.100.99", "unlist 198.51.100.5", "allow 192.0.2.64/26", "block 192.0.2.0/28"]
        for point in ["sets-fill", "sets-switch", "entries-save", "daemon-reload"] {
            for command in point == "sets-switch" ? ["block 192.0.2.0/28"] : all {
                let r = ns.run("GEOGATE_FAULT=\(point) \"$GEOGATE\" \(command) --config \(config)")
                #expect(r.status == 1 && r.stderr.contains("injected failure at \(point)"), "\(point) \(command): \(r.stderr)")
                #expect(ns.run(kernel).stdout == before, "\(point) \(command): the kernel sets are the old ones")
                #expect((try? String(contentsOfFile: scratch.path + "/state/entries", encoding: .utf8)) == file, "\(point) \(command): the file is the old one")
            }
        }
        #expect(!ns.run("ipset list -n").stdout.contains("gg-"), "no temporary set is left")
        // Without a fault the same change goes through.
        #expect(ns.run("\"$GEOGATE\" unlist 198.51.100.5 --config \(config)").status == 0)
        #expect(!ns.run(kernel).stdout.contains("198.51.100.5"))
    }

    /// A reboot (the kernel's sets gone, /run emptied) and `apply --boot`: the
    /// entries come back with the time they have left. `apply --open` (the
    /// emergency off) lets a blocked address in too, a block made while open waits
    /// in the file, and the next `apply` enforces both again.
    @Test func entriesSurviveARebootAndTheOpenSwitchLetsEveryoneIn() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let (_, config) = prepare(scratch, dataset: testDataset, config: entriesConfig(scratch))
        let ns = Namespace(scratch, tag: "eboot")
        defer { ns.remove() }
        func geogate(_ args: String) -> CommandResult { ns.run("\"$GEOGATE\" \(args) --config \(config)") }
        func member(_ set: String, _ ip: String) -> Bool { ns.run("ipset -q test \(set) \(ip)").status == 0 }
        #expect(geogate("apply").status == 0)
        #expect(geogate("block 198.51.100.5 --for 1h").status == 0 && geogate("allow 192.0.2.9").status == 0)
        // The reboot: no sets, no record of them.
        ns.run("ipset destroy; rm -rf \(scratch.path)/run")
        #expect(!member("geogate-full-rt-block-v4", "198.51.100.5"))
        let boot = geogate("apply --boot")
        #expect(boot.status == 0, "\(boot.stderr)")
        #expect(member("geogate-full-rt-block-v4", "198.51.100.5") && member("geogate-full-rt-allow-v4", "192.0.2.9"))
        let left = Int(ns.run("ipset save geogate-full-rt-block-v4 | awk '$3 == \"198.51.100.5\" { print $5 }'").stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        #expect(left > 3500 && left <= 3600, "put back with the time it has left: \(left)")
        // The emergency off: the block set is emptied with the rest.
        #expect(geogate("apply --open").status == 0)
        #expect(!member("geogate-full-rt-block-v4", "198.51.100.5") && member("geogate-full-v4", "192.0.2.1"))
        #expect(geogate("block 198.51.100.6 --for 1h").status == 0)
        #expect(!member("geogate-full-rt-block-v4", "198.51.100.6"), "while open, a block waits in the file")
        #expect(geogate("apply").status == 0)
        #expect(member("geogate-full-rt-block-v4", "198.51.100.5") && member("geogate-full-rt-block-v4", "198.51.100.6"))
        #expect(!member("geogate-full-v4", "192.0.2.1"), "closed again")
        // An entries file broken by hand: apply refuses, naming it; the boot unit
        // loads the filter anyway, with empty run-time sets.
        try "v1\nblock full 198.51.100.5/32 soon 1 0\n".write(toFile: scratch.path + "/state/entries", atomically: true, encoding: .utf8)
        let refused = geogate("apply")
        #expect(refused.status == 2 && refused.stderr.contains("/state/entries:2: the expiry is not a time"), "\(refused.stderr)")
        #expect(member("geogate-full-rt-block-v4", "198.51.100.5"), "the live sets stay")
        ns.run("ipset destroy; rm -rf \(scratch.path)/run")
        let booted = geogate("apply --boot")
        #expect(booted.status == 0 && booted.stderr.contains("loading the sets without run-time entries"), "\(booted.stderr)")
        #expect(member("geogate-full-v4", "198.51.100.7") && !member("geogate-full-rt-block-v4", "198.51.100.5"))
    }

    /// A block-lists feed (a file source) through a refresh reaches the kernel's
    /// profile set: the feed's networks are cut out of it, the rest of the country
    /// stays; a feed-only change swaps the set again, the trie untouched.
    @Test func aBlockListFeedReachesTheKernelSets() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let text = try String(contentsOfFile: refreshConfig(scratch, database: scratch.path + "/live.trie", reloadDaemon: false), encoding: .utf8)
        try text.replacingOccurrences(of: "    no-country: deny\n", with: """
                no-country: deny
                block-lists:
                  - name: drop
                    file: \(scratch.path)/drop.txt

            """).replacingOccurrences(of: "  max-country-change: 100\n", with: "  max-country-change: 100\n  max-feed-change: 100\n")
            .appending("state-dir: \(scratch.path)/lstate\n").write(toFile: scratch.path + "/geogate.conf", atomically: true, encoding: .utf8)
        scratch.write("dbip.csv", testDataset)
        scratch.write("drop.txt", "; Spamhaus DROP\n198.51.100.128/25 ; SBL1\n")
        let ns = Namespace(scratch, tag: "efeed")
        defer { ns.remove() }
        func refresh() -> CommandResult { ns.run("\"$GEOGATE\" refresh --config \(scratch.path)/geogate.conf") }
        func member(_ ip: String) -> Bool { ns.run("ipset -q test geogate-full-v4 \(ip)").status == 0 }
        let first = refresh()
        #expect(first.status == 0, "\(first.stderr)")
        #expect(member("198.51.100.7") && !member("198.51.100.200"), "IT, less the feed's /25")
        let trie = try Data(contentsOf: URL(fileURLWithPath: scratch.path + "/live.trie"))
        scratch.write("drop.txt", "; Spamhaus DROP\n198.51.100.128/25 ; SBL1\n198.51.100.0/26 ; SBL2\n")
        let second = refresh()
        #expect(second.status == 0 && second.stderr.contains("feed full/drop: 2 networks (was 1)"), "\(second.stderr)")
        #expect(!member("198.51.100.7") && member("198.51.100.70") && !member("198.51.100.200"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: scratch.path + "/live.trie")) == trie, "a feed-only change leaves the trie alone")
    }

    /// With the nft backend: interval sets with element timeouts, and packets
    /// through the rules of Docs/examples/firewall-nft.sh.
    @Test func entriesWithTheNFTBackend() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let (_, config) = prepare(scratch, dataset: testDataset, config: entriesConfig(scratch, backend: "nft"))
        let server = Namespace(scratch, tag: "nsrv"), client = Namespace(scratch, tag: "ncli")
        defer { client.remove(); server.remove() }
        try #require(connect(server, client, link: "gn", serverAddresses: ["203.0.113.1"], clientAddresses: ["198.51.100.10", "192.0.2.10"],
                             scratch: scratch).status == 0)
        let rules = server.run("PATH=$(dirname \"$GEOGATE\"):$PATH GEOGATE_CONFIG=\(config) sh \(repositoryRoot)/Docs/examples/firewall-nft.sh > /dev/null")
        try #require(rules.status == 0, "\(rules.stderr)")
        func ping(_ from: String) -> String {
            client.run("ping -q -c 1 -W 1 -I \(from) 203.0.113.1 > /dev/null 2>&1 && echo pass || echo drop").stdout.trimmingCharacters(in: .newlines)
        }
        #expect(ping("198.51.100.10") == "pass" && ping("192.0.2.10") == "drop")
        #expect(server.run("\"$GEOGATE\" block --config \(config) 198.51.100.10 --for 1m").status == 0)
        #expect(server.run("\"$GEOGATE\" allow --config \(config) 192.0.2.10 --for 2s").status == 0)
        #expect(ping("198.51.100.10") == "drop" && ping("192.0.2.10") == "pass")
        let listed = server.run("nft list set inet geogate geogate-full-rt-block-v4").stdout
        #expect(listed.contains("flags interval,timeout") && listed.contains("198.51.100.10 timeout 1m"), "\(listed)")
        usleep(2_600_000)
        #expect(ping("192.0.2.10") == "drop", "the allow expired in nft")
        #expect(server.run("\"$GEOGATE\" unlist --config \(config) 198.51.100.10").status == 0)
        #expect(ping("198.51.100.10") == "pass")
    }
}
