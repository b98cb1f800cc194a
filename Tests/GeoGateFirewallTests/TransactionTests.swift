import Foundation
import GeoGateCore
import GeoGateFirewall
import GeoGatePolicy
import GeoGateTrie
import Testing

/// The live firewall is all-or-nothing (issue 13): refresh as one transaction over
/// the trie, the kernel sets and the daemon; one writer at a time; only geogate's
/// own sets replaced. Each test in a network namespace of its own.
@Suite(.serialized, .enabled(if: namespacesAvailable, "needs root and ip netns"))
struct TransactionTests {
    /// The first data: IT is 198.51.100.0/24 and 2001:db8:1::/48.
    static let newData = """
        198.51.100.0,198.51.100.255,CN
        203.0.113.0,203.0.113.255,IT
        192.0.2.0,192.0.2.255,CN
        2001:db8:1::,2001:db8:1:ffff:ffff:ffff:ffff:ffff,CN
        2001:db8:3::,2001:db8:3:ffff:ffff:ffff:ffff:ffff,IT

        """

    func config(_ scratch: Scratch, database: String, reloadDaemon: Bool = true) -> String {
        refreshConfig(scratch, database: database, reloadDaemon: reloadDaemon)
    }

    /// Finding 1: a refresh whose trie cannot be written (its directory does not
    /// exist) must not have changed the kernel sets.
    @Test func aRefreshThatCannotWriteItsTrieLeavesTheSetsAlone() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let ns = Namespace(scratch, tag: "tx1")
        defer { ns.remove() }
        let good = config(scratch, database: scratch.path + "/live.trie", reloadDaemon: false)
        scratch.write("dbip.csv", testDataset)
        let first = ns.run("\"$GEOGATE\" refresh --config \(good)")
        try #require(first.status == 0, "\(first.stderr)")
        let before = ns.run("ipset save | sort").stdout
        #expect(before.contains("198.51.100.0/24"))

        let broken = config(scratch, database: scratch.path + "/missing/live.trie", reloadDaemon: false)
        scratch.write("dbip.csv", TransactionTests.newData)
        let r = ns.run("\"$GEOGATE\" refresh --config \(broken)")
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stderr.contains("missing/live.trie") && r.stderr.contains("nothing changed"), "\(r.stderr)")
        #expect(!r.stderr.contains("sets: swapped in"), "\(r.stderr)")
        #expect(ns.run("ipset save | sort").stdout == before, "the kernel sets are the old ones")
        #expect(ns.run("ipset list -n | sort | tr '\\n' ' '").stdout == fullProfileSetNames, "no temporary set is left")
    }

    /// A failure injected at every step of a refresh: the trie, the kernel sets and
    /// the daemon's answers are all the old data afterwards; then, with no failure,
    /// all the new.
    /// With the nft backend the same, the sets in table inet geogate (used by a
    /// chain of the admin's) put back by the script taken before the switch.
    @Test(arguments: ["ipset", "nft"])
    func aFailureAtEveryStepOfARefreshPutsEverythingBack(backend: String) throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let ns = Namespace(scratch, tag: "tx2")
        defer { ns.remove() }
        let live = scratch.path + "/live.trie"
        let configPath = config(scratch, database: live)
        if backend == "nft" {
            scratch.write("geogate.conf", "backend: nft\n" + (try String(contentsOfFile: configPath, encoding: .utf8)))
        }
        scratch.write("dbip.csv", testDataset)
        if backend == "nft" {
            // A first refresh that fails after loading: the sets it created are deleted again.
            let failed = ns.run("GEOGATE_FAULT=trie-rename \"$GEOGATE\" refresh --config \(configPath); echo status $?; nft list sets | grep -c geogate-full")
            #expect(failed.stdout == "status 1\n0\n", "\(failed.stdout) \(failed.stderr)")
            #expect(!FileManager.default.fileExists(atPath: live))
        }
        let first = ns.run("\"$GEOGATE\" refresh --config \(configPath)")
        try #require(first.status == 0, "\(first.stderr)")
        if backend == "nft" {
            // The admin's chain that uses the sets (Docs/examples/firewall-nft.sh).
            let chain = ns.run("""
                nft add chain inet geogate input '{ type filter hook input priority -10; policy accept; }'
                nft add rule inet geogate input ip saddr != @geogate-full-v4 drop
                nft add rule inet geogate input ip6 saddr != @geogate-full-v6 drop
                """)
            try #require(chain.status == 0, "\(chain.stderr)")
            #expect(ns.run("ipset list -n").stdout.isEmpty, "nothing in ipset")
        }
        // The daemon, in the namespace, serving the first data.
        let daemon = ns.run("""
            "$GEOGATE" serve --config \(configPath) > serve.log 2>&1 &
            for i in $(seq 100); do [ -S geogate.sock ] && exit 0; sleep 0.05; done; exit 1
            """)
        try #require(daemon.status == 0, "the daemon did not start")
        /// What the daemon, the trie and the kernel say of an address that moves.
        func state() -> String {
            ns.run("""
                "$GEOGATE" check --socket geogate.sock --profile full 198.51.100.7; \
                "$GEOGATE" check --socket geogate.sock --profile full 203.0.113.9; \
                "$GEOGATE" lookup --db \(live) 198.51.100.7 203.0.113.9 2001:db8:3::1; \
                ipset save | sort; ipset list -n | sort; nft list table inet geogate 2>/dev/null
                """).stdout
        }
        let old = state()
        #expect(old.contains("ALLOW IT") && old.contains("DENY CN") == false && old.contains("198.51.100.7 IT"), "\(old)")
        let trieBefore = try Data(contentsOf: URL(fileURLWithPath: live))

        scratch.write("dbip.csv", TransactionTests.newData)
        let faults = ["trie-write", "sets-fill", backend == "nft" ? "nft-load" : "sets-switch", "trie-rename", "daemon-reload"]
        for fault in faults {
            let r = ns.run("GEOGATE_FAULT=\(fault) \"$GEOGATE\" refresh --config \(configPath)")
            #expect(r.status == 1, "\(fault): \(r.stderr)")
            #expect(r.stderr.contains("injected failure at \(fault)"), "\(fault): \(r.stderr)")
            #expect(state() == old, "\(fault): the old data everywhere")
            #expect(try Data(contentsOf: URL(fileURLWithPath: live)) == trieBefore, "\(fault): the trie, byte for byte")
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: scratch.path).filter { $0.contains(".tmp.") || $0.hasSuffix(".undo") }
            #expect(leftovers.isEmpty, "\(fault): \(leftovers) \(r.stderr)")
        }
        let done = ns.run("\"$GEOGATE\" refresh --config \(configPath)")
        #expect(done.status == 0, "\(done.stderr)")
        let new = state()
        #expect(new.contains("DENY CN") && new.contains("ALLOW IT") && new.contains("198.51.100.7 CN")
                && new.contains("203.0.113.9 IT") && new.contains("203.0.113.0/24") && !new.contains("198.51.100.0/24"), "\(new)")
        if backend == "nft" { #expect(new.contains("ip saddr != @geogate-full-v4 drop"), "the admin's chain is still there: \(new)") }
        // The replaced trie is kept for rollback as <database>.1.
        #expect(FileManager.default.fileExists(atPath: live + ".1"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: live + ".1")) == trieBefore)
    }

    /// Finding 2: applies of two configs and a refresh at the same time, several
    /// rounds: the live set is always exactly one of the two plans.
    @Test func concurrentAppliesLeaveExactlyOnePlan() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let base = try String(contentsOfFile: repositoryRoot + "/Data/geogate.conf", encoding: .utf8)
        let (trie, configA) = prepare(scratch, dataset: nil, config: base)
        let configB = scratch.write("b.conf", scratch.runtimeConfig + base.replacingOccurrences(of: "allow-countries: [IT, CH, FR, DE]",
                                                                                                with: "allow-countries: [IT, CH, FR, DE, AT, BE]"))
        let file = try TrieFile(path: trie)
        let maps: [IPFamily: RangeMap] = [.v4: file.rangeMap(.v4), .v6: file.rangeMap(.v6)]
        let plans = try [configA, configB].map { path in
            try SetPlanner.plan(config: try GeoGateConfig.load(path: path), maps: maps, profile: nil, perCountry: false)
                .map { Set($0.cidrs) }
        }
        #expect(plans[0][0] != plans[1][0])
        // A refresh of profile A's data from the embedded files; their order flips
        // every round, so each refresh is a change and swaps the sets in again.
        let refreshConfig = scratch.write("r.conf", scratch.runtimeConfig + base.replacingOccurrences(
            of: "database: /var/lib/geogate/countries.trie", with: """
                database: \(scratch.path)/live.trie
                refresh:
                  state-dir: \(scratch.path)/state
                  reload-daemon: false
                  max-family-change: 100
                  max-country-change: 100
                  sources: [{file: SOURCE1}, {file: SOURCE2}]
                """))
        let ns = Namespace(scratch, tag: "tx3")
        defer { ns.remove() }
        for round in 0..<4 {
            let files = [repositoryRoot + "/Data/geoip.gz", repositoryRoot + "/Data/geoip6.gz"]
            let ordered = round % 2 == 0 ? files : files.reversed()
            let text = try String(contentsOfFile: refreshConfig, encoding: .utf8)
                .replacingOccurrences(of: "SOURCE1", with: ordered[0]).replacingOccurrences(of: "SOURCE2", with: ordered[1])
            let roundConfig = scratch.write("r\(round).conf", text)
            let r = ns.run("""
                "$GEOGATE" apply --config \(configA) --db \(trie) > a.out 2> a.err & a=$!
                "$GEOGATE" refresh --config \(roundConfig) 2> r.err & f=$!
                "$GEOGATE" apply --config \(configB) --db \(trie) > b.out 2> b.err & b=$!
                wait $a; echo "a $?"; wait $f; echo "r $?"; wait $b; echo "b $?"
                cat a.err r.err b.err >&2
                """)
            #expect(r.stdout == "a 0\nr 0\nb 0\n", "round \(round): \(r.stdout) \(r.stderr)")
            for (index, name) in ["geogate-full-v4", "geogate-full-v6"].enumerated() {
                let saved = Set(ns.run("ipset save \(name) | awk '$1 == \"add\" { print $3 }'").stdout
                    .split(separator: "\n").compactMap { CIDR($0) })
                #expect(saved == plans[0][index] || saved == plans[1][index],
                        "round \(round): \(name) holds \(saved.count) entries, neither plan (\(plans[0][index].count), \(plans[1][index].count))")
            }
            #expect(ns.run("ipset list -n | sort | tr '\\n' ' '").stdout == fullProfileSetNames, "round \(round)")
        }
        // Those that waited for another's lock said so.
        let waited = ns.run("cat a.err b.err").stdout
        #expect(waited.isEmpty || waited.contains("geogate.lock is held by pid"), "\(waited)")
    }

    /// Finding 3: a set of geogate's name that geogate did not create is never
    /// replaced unless adopted; one of another type not even then.
    @Test func aSetGeogateDidNotCreateIsLeftAlone() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let (trie, configPath) = prepare(scratch, dataset: testDataset, config: testConfig)
        let ns = Namespace(scratch, tag: "tx4")
        defer { ns.remove() }
        let r = ns.run("""
            ipset create geogate-full-v4 hash:net
            ipset add geogate-full-v4 100.64.7.0/24
            "$GEOGATE" apply --config \(configPath) --db \(trie); echo "status $?"
            ipset save geogate-full-v4 | awk '$1 == "add" { print "member " $3 }'
            ipset list -n | sort | tr '\\n' ' '; echo
            "$GEOGATE" apply --config \(configPath) --db \(trie) --adopt geogate-full-v4 > /dev/null; echo "adopted $?"
            ipset save geogate-full-v4 | awk '$1 == "add" { print "member " $3 }'
            "$GEOGATE" apply --config \(configPath) --db \(trie) > /dev/null; echo "again $?"
            # Another type under geogate's other name: refused even when adopted.
            ipset destroy geogate-full-v6
            ipset create geogate-full-v6 hash:ip family inet6
            "$GEOGATE" apply --config \(configPath) --db \(trie) --adopt geogate-full-v6; echo "other-type $?"
            ipset list -t geogate-full-v6 | grep Type
            """)
        #expect(r.stdout.hasPrefix("status 1\nmember 100.64.7.0/24\ngeogate-full-v4 \n"), "refused, untouched, nothing created: \(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("geogate-full-v4 exists but geogate did not create it") && r.stderr.contains("--adopt geogate-full-v4"), "\(r.stderr)")
        let afterAdoption = r.stdout.components(separatedBy: "adopted 0\n").last ?? ""
        #expect(afterAdoption.contains("member 198.51.100.0/24\n") && !afterAdoption.contains("100.64.7.0/24")
                && afterAdoption.contains("again 0\n"), "adopted, replaced, then recorded as geogate's: \(r.stdout) \(r.stderr)")
        #expect(r.stdout.hasSuffix("other-type 1\nType: hash:ip\n"), "\(r.stdout)")
        #expect(r.stderr.contains("geogate-full-v6 is a hash:ip set of inet6, not geogate's hash:net of inet6"), "\(r.stderr)")
    }

    /// The text path: two renderings never share a temporary set name.
    @Test func ipsetTextTemporaryNamesDiffer() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let (trie, configPath) = prepare(scratch, dataset: testDataset, config: testConfig)
        let r = bash("""
            for i in 1 2; do "$GEOGATE" sets --config \(configPath) --db \(trie) --format ipset | awk '$1 == "swap" { print $2 }' | head -1; done
            """, in: scratch)
        let names = r.stdout.split(separator: "\n")
        #expect(names.count == 2 && names[0] != names[1] && names.allSatisfy { $0.hasPrefix("gg-") }, "\(r.stdout)")
    }

    /// Finding 8: run as the refresh unit runs it (the daemon's user, CAP_NET_ADMIN
    /// its only capability, through setpriv as systemd would set it up), the refresh
    /// loads the sets and its RELOAD is accepted. As the unit used to run it (root
    /// with only CAP_NET_ADMIN), the daemon's 0660 socket refuses the connect: the
    /// refresh fails and puts everything back.
    @Test func theRefreshUnitsCredentialsReloadTheDaemon() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let ns = Namespace(scratch, tag: "unit")
        defer { ns.remove() }
        // The daemon's user (nobody here) owns the data, the state and the runtime directory.
        let data = scratch.path + "/lib"
        for dir in [data, scratch.path + "/state", scratch.path + "/run"] {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            chown(dir, 65534, 65534)
        }
        // The socket's directory too (as /run/geogate is).
        chown(scratch.path, 65534, 65534)
        let configPath = refreshConfig(scratch, database: data + "/live.trie", reloadDaemon: true)
        // The old unit's run: root's own directories, the same daemon.
        let oldConfig = scratch.write("old.conf", try String(contentsOfFile: configPath, encoding: .utf8)
            .replacingOccurrences(of: data + "/", with: scratch.path + "/rootlib/")
            .replacingOccurrences(of: "state-dir: \(scratch.path)/state", with: "state-dir: \(scratch.path)/rootstate")
            .replacingOccurrences(of: "runtime-dir: \(scratch.path)/run", with: "runtime-dir: \(scratch.path)/rootrun"))
        for dir in ["rootlib", "rootstate", "rootrun"] {
            try FileManager.default.createDirectory(atPath: scratch.path + "/" + dir, withIntermediateDirectories: true)
        }
        scratch.write("dbip.csv", testDataset)
        let unit = "setpriv --reuid 65534 --regid 65534 --clear-groups --inh-caps=-all,+net_admin --ambient-caps=-all,+net_admin --bounding-set=-all,+net_admin"
        let oldUnit = "setpriv --inh-caps=-all,+net_admin --ambient-caps=-all,+net_admin --bounding-set=-all,+net_admin"
        let first = ns.run("\(unit) \"$GEOGATE\" refresh --config \(configPath)")
        try #require(first.status == 0, "\(first.stderr)")
        // Root's copy of the same first data, so the old unit's run sees a change too.
        try #require(ns.run("cp \(data)/live.trie \(scratch.path)/rootlib/ && cp \(scratch.path)/run/sets \(scratch.path)/rootrun/").status == 0)
        let daemon = ns.run("""
            setpriv --reuid 65534 --regid 65534 --clear-groups "$GEOGATE" serve --config \(configPath) > serve.log 2>&1 &
            for i in $(seq 100); do [ -S geogate.sock ] && exit 0; sleep 0.05; done; exit 1
            """)
        try #require(daemon.status == 0, "the daemon did not start")
        #expect(ns.run("stat -c '%a %u' geogate.sock").stdout == "660 65534\n")

        scratch.write("dbip.csv", TransactionTests.newData)
        let before = ns.run("ipset save | sort").stdout
        let old = ns.run("\(oldUnit) \"$GEOGATE\" refresh --config \(oldConfig) --force")
        #expect(old.status == 1, "\(old.stderr)")
        #expect(old.stderr.contains("geogate.sock: Permission denied") && old.stderr.contains("everything was put back"), "\(old.stderr)")
        #expect(ns.run("ipset save | sort").stdout == before)

        let r = ns.run("\(unit) \"$GEOGATE\" refresh --config \(configPath)")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("daemon: OK reloaded"), "\(r.stderr)")
        #expect(ns.run("cat serve.log").stdout.contains("reloaded (RELOAD from uid 65534 (refresh))"))
        #expect(ns.run("\"$GEOGATE\" check --socket geogate.sock --profile full 203.0.113.9").stdout == "ALLOW IT country-allowed\n")
        #expect(ns.run("ipset -q test geogate-full-v4 203.0.113.9 && echo in").stdout == "in\n")
    }
}
