import Foundation
import Testing
@testable import GeoGateCore
@testable import GeoGateFirewall
@testable import GeoGatePolicy
@testable import GeoGateTrie

/// The sets in a real kernel, each test inside network namespaces it creates and
/// removes: libipset loading, atomic swaps, packets through iptables and nft rules,
/// the lockout guard, and failures that must leave the live sets alone.
@Suite(.serialized, .enabled(if: namespacesAvailable, "skipped: needs root with CAP_NET_ADMIN (network namespaces, ipset, iptables)"))
struct KernelTests {
    /// Every set loaded through libipset answers `ipset test` exactly as the
    /// decision (`geogate check`) does, on thousands of addresses of the real data.
    @Test func loadedSetsAgreeWithCheck() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let configText = try String(contentsOfFile: repositoryRoot + "/Data/geogate.conf", encoding: .utf8)
        let (triePath, configPath) = prepare(scratch, dataset: nil, config: configText)
        let ns = Namespace(scratch, tag: "agree")
        defer { ns.remove() }
        let applied = ns.run("\"$GEOGATE\" apply --config \(configPath) --db \(triePath)")
        #expect(applied.status == 0, "\(applied.stderr)")
        #expect(applied.stdout.contains("geogate-full-v4: created"), "\(applied.stdout)")

        let trie = try TrieFile(path: triePath)
        let config = try GeoGateConfig.load(path: configPath)
        let policy = config.policy(config.profile(named: "full")!)
        var rng = SplitMix64(seed: 5)
        var samples: [IPAddress] = ["203.0.113.66", "203.0.113.65", "10.9.8.7", "198.51.100.7", "2001:db8:42::1", "fe80::1"].map { IPAddress($0)! }
        for family in IPFamily.allCases {
            let ranges = trie.rangeMap(family).ranges
            for i in 0..<1_500 {
                let r = ranges[Int(rng.next() % UInt64(ranges.count))]
                let value: UInt128
                switch i % 3 {
                case 0: value = r.start
                case 1: value = r.end
                default: value = r.start + (UInt128(rng.next()) << 64 | UInt128(rng.next())) % (r.end - r.start + 1)
                }
                samples.append(IPAddress(family: family, value: value))
            }
        }
        var script = ""
        for a in samples {
            let set = a.family == .v4 ? "geogate-full-v4" : "geogate-full-v6"
            script += "ipset -q test \(set) \(a) && echo 1 || echo 0\n"
        }
        let answers = ns.run(script).stdout.split(separator: "\n")
        try #require(answers.count == samples.count)
        var disagreements = 0
        for (a, answer) in zip(samples, answers) {
            let decision = policy.decide(a, country: trie.country(of: a))
            if (answer == "1") != (decision.verdict == .allow) {
                disagreements += 1
                if disagreements <= 5 { Issue.record("\(a): ipset says \(answer), check says \(decision)") }
            }
        }
        #expect(disagreements == 0)
        // The CLI's check gives the same verdicts (exit 0 allow, 1 deny).
        for a in samples.prefix(40) {
            let r = bash("\"$GEOGATE\" check --config \(configPath) --db \(triePath) --profile full \(a)", in: scratch)
            let allowed = policy.decide(a, country: trie.country(of: a)).verdict == .allow
            #expect(r.status == (allowed ? 0 : 1), "\(a): \(r.stdout)")
        }
        // And the kernel's copy is exactly the planned CIDR list.
        let plan = try SetPlanner.plan(config: config, maps: [.v4: trie.rangeMap(.v4), .v6: trie.rangeMap(.v6)],
                                       profile: nil, perCountry: false)
        // (ipset prints a /32 as a bare address: parse both sides.)
        let saved = ns.run("ipset save geogate-full-v4 | awk '$1 == \"add\" { print $3 }'").stdout
            .split(separator: "\n").compactMap { CIDR($0) }
        #expect(Set(saved) == Set(plan[0].cidrs) && saved.count == plan[0].cidrs.count, "the kernel holds the planned list")
    }

    /// `ipset restore` of the text and nft -f of the nft text load the same members.
    @Test func textFormatsLoadTheSameSets() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let (trie, config) = prepare(scratch, dataset: nil, config: try String(contentsOfFile: repositoryRoot + "/Data/geogate.conf", encoding: .utf8))
        let ns = Namespace(scratch, tag: "text")
        defer { ns.remove() }
        let r = ns.run("""
            set -e
            "$GEOGATE" sets --config \(config) --db \(trie) --format ipset > full.ipset
            ipset restore < full.ipset
            ipset restore < full.ipset   # a second time: swaps over the live sets
            ipset list -n | sort | tr '\\n' ' '; echo
            ipset save geogate-full-v6 | awk '$1 == "add" { print $3 }' | sort > restored
            # Sets loaded by ipset restore are not recorded as geogate's: apply takes them over only when told.
            "$GEOGATE" apply --config \(config) --db \(trie) > /dev/null 2>&1 && echo "took them unasked"
            adopt=$(for s in \(fullProfileSetNames); do printf -- '--adopt %s ' $s; done)
            "$GEOGATE" apply --config \(config) --db \(trie) $adopt > /dev/null
            ipset save geogate-full-v6 | awk '$1 == "add" { print $3 }' | sort > applied
            cmp restored applied && echo same
            "$GEOGATE" sets --config \(config) --db \(trie) --format nft > full.nft
            nft -f full.nft
            nft -f full.nft
            nft get element inet geogate geogate-full-v4 '{ 203.0.113.65 }' > /dev/null && echo member
            nft get element inet geogate geogate-full-v4 '{ 203.0.113.66 }' > /dev/null 2>&1 || echo not-member
            """)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == fullProfileSetNames + "\nsame\nmember\nnot-member\n", "\(r.stderr)")
    }

    /// A prober tests known members in a loop while the sets are swapped again and
    /// again (and referenced by an iptables rule): it never sees a miss.
    @Test func swapsNeverShowAMissingMember() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let base = try String(contentsOfFile: repositoryRoot + "/Data/geogate.conf", encoding: .utf8)
        let (trie, configA) = prepare(scratch, dataset: nil, config: base)
        // B differs (one more country), so every apply really changes the sets.
        let configB = scratch.write("b.conf", scratch.runtimeConfig + base.replacingOccurrences(of: "allow-countries: [IT, CH, FR, DE]",
                                                                        with: "allow-countries: [IT, CH, FR, DE, AT]"))
        let ns = Namespace(scratch, tag: "swap")
        defer { ns.remove() }
        let r = ns.run("""
            "$GEOGATE" apply --config \(configA) --db \(trie) > /dev/null || exit 10
            iptables -A INPUT -m set ! --match-set geogate-full-v4 src -j DROP || exit 11
            ip6tables -A INPUT -m set ! --match-set geogate-full-v6 src -j DROP || exit 12
            # Members of both configs: trusted and allow-network addresses, and the
            # first address of a few country networks of the live set.
            members="203.0.113.65 198.51.100.7 10.1.2.3 $(ipset save geogate-full-v4 | awk '$1 == "add" && NR % 9000 == 0 { split($3, a, "/"); print a[1] }')"
            members6="2001:db8:42::1 fe80::1 $(ipset save geogate-full-v6 | awk '$1 == "add" && NR % 9000 == 0 { split($3, a, "/"); print a[1] }')"
            echo members $members $members6
            (
              n=0
              while [ ! -e stop ]; do
                for m in $members; do ipset -q test geogate-full-v4 $m || echo "miss $m" >> misses; done
                for m in $members6; do ipset -q test geogate-full-v6 $m || echo "miss $m" >> misses; done
                n=$((n + 1)); echo $n > probes
              done
            ) &
            prober=$!
            for i in 1 2 3 4 5 6 7 8 9 10; do
              if [ $((i % 2)) = 1 ]; then c=\(configB); else c=\(configA); fi
              "$GEOGATE" apply --config $c --db \(trie) > /dev/null || exit 13
            done
            touch stop; wait $prober
            echo "probes $(cat probes)"
            cat misses 2>/dev/null
            ipset list -n | sort | tr '\\n' ' '
            """)
        #expect(r.status == 0, "status \(r.status): \(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        #expect(!r.stdout.contains("miss"), "\(r.stdout.prefix(2000))")
        #expect((lines.first?.split(separator: " ").count ?? 0) >= 12, "enough probe members: \(lines.first ?? "")")
        let probes = Int(lines.dropFirst().first?.split(separator: " ").last ?? "0") ?? 0
        #expect(probes >= 10, "the prober ran \(probes) rounds")
        #expect(lines.last.map(String.init) == fullProfileSetNames, "no temporary set is left: \(r.stdout)")
    }

    /// Two hosts on a veth pair: packets from an allowed country reach the server,
    /// others are dropped, with iptables + ipset and then with nft.
    @Test func packetsFromAllowedCountriesPassOthersAreDropped() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let (trie, config) = prepare(scratch, dataset: testDataset, config: testConfig)
        let server = Namespace(scratch, tag: "srv"), client = Namespace(scratch, tag: "cli")
        defer { client.remove(); server.remove() }
        let setup = connect(server, client, link: "gg", serverAddresses: ["203.0.113.1", "2001:db8:ff::1"],
                            clientAddresses: ["198.51.100.10", "192.0.2.10", "2001:db8:1::10", "2001:db8:2::10"],
                            scratch: scratch)
        try #require(setup.status == 0, "\(setup.stderr)")
        func pings() -> String {
            client.run("""
                for s in 198.51.100.10 192.0.2.10; do ping -q -c 1 -W 1 -I $s 203.0.113.1 > /dev/null 2>&1 && echo "$s pass" || echo "$s drop"; done
                for s in 2001:db8:1::10 2001:db8:2::10; do ping -6 -q -c 1 -W 1 -I $s 2001:db8:ff::1 > /dev/null 2>&1 && echo "$s pass" || echo "$s drop"; done
                """).stdout
        }
        #expect(pings() == "198.51.100.10 pass\n192.0.2.10 pass\n2001:db8:1::10 pass\n2001:db8:2::10 pass\n", "no rule yet")
        let ipt = server.run("""
            set -e
            "$GEOGATE" apply --config \(config) --db \(trie)
            iptables -A INPUT -m set ! --match-set geogate-full-v4 src -j DROP
            ip6tables -A INPUT -m set ! --match-set geogate-full-v6 src -j DROP
            """)
        try #require(ipt.status == 0, "\(ipt.stderr)")
        #expect(pings() == "198.51.100.10 pass\n192.0.2.10 drop\n2001:db8:1::10 pass\n2001:db8:2::10 drop\n", "iptables + ipset")
        let nft = server.run("""
            set -e
            iptables -F INPUT; ip6tables -F INPUT
            "$GEOGATE" sets --config \(config) --db \(trie) --format nft | nft -f -
            nft add chain inet geogate input '{ type filter hook input priority 0; }'
            nft add rule inet geogate input ip saddr != @geogate-full-v4 drop
            nft add rule inet geogate input ip6 saddr != @geogate-full-v6 drop
            "$GEOGATE" sets --config \(config) --db \(trie) --format nft | nft -f -   # reload under the rules
            """)
        try #require(nft.status == 0, "\(nft.stderr)")
        #expect(pings() == "198.51.100.10 pass\n192.0.2.10 drop\n2001:db8:1::10 pass\n2001:db8:2::10 drop\n", "nft")
    }

    /// An established SSH-like connection from a denied country: apply refuses and
    /// names it, changes nothing; --dry-run only reports; --force applies.
    @Test func lockoutIsRefusedUnlessForced() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let (trie, config) = prepare(scratch, dataset: testDataset, config: testConfig)
        let server = Namespace(scratch, tag: "lsrv"), client = Namespace(scratch, tag: "lcli")
        defer { client.remove(); server.remove() }
        let link = connect(server, client, link: "gl", serverAddresses: ["203.0.113.1"],
                           clientAddresses: ["192.0.2.10"], scratch: scratch)
        try #require(link.status == 0, "\(link.stderr)")
        let setup = bash("""
            ip netns exec \(server.name) socat TCP-LISTEN:2222,reuseaddr,fork EXEC:'sleep 60' > /dev/null 2>&1 &
            sleep 0.3
            ip netns exec \(client.name) bash -c 'sleep 60 | socat - TCP:203.0.113.1:2222,bind=192.0.2.10' > /dev/null 2>&1 &
            for i in $(seq 50); do
              ip netns exec \(server.name) grep -q ' 01 ' /proc/net/tcp && exit 0
              sleep 0.1
            done
            echo "no connection" >&2; exit 1
            """, in: scratch)
        try #require(setup.status == 0, "\(setup.stderr)")
        let dry = server.run("\"$GEOGATE\" apply --config \(config) --db \(trie) --dry-run; echo status $?; ipset list -n")
        #expect(dry.stdout.contains("would change geogate-full-v4: new set"))
        #expect(dry.stderr.contains("192.0.2.10:") && dry.stderr.contains("local tcp port 2222") && dry.stderr.contains("geogate-full-v4"), "\(dry.stderr)")
        let refused = server.run("\"$GEOGATE\" apply --config \(config) --db \(trie); echo status $?; ipset list -n")
        #expect(refused.stdout.hasSuffix("status 1\n"), "refused, and no set was created: \(refused.stdout)")
        #expect(refused.stderr.contains("refusing to apply"))
        let forced = server.run("\"$GEOGATE\" apply --config \(config) --db \(trie) --force; echo status $?; ipset list -n | sort | tr '\\n' ' '")
        #expect(forced.stdout.hasSuffix("status 0\n" + fullProfileSetNames), "\(forced.stdout) \(forced.stderr)")
    }

    /// Finding 9: a SIP phone in a to-be-blocked country, registered over UDP 5060
    /// (a flow the kernel's connection tracking has seen answered): apply refuses,
    /// with ipset and with the nft backend, and names the flow; --force applies.
    /// The nft backend loads through libnftables in one transaction: a script the
    /// kernel refuses (a set of another type in the way) changes nothing.
    @Test func aUDPPeerFromABlockedCountryStopsApplyOnBothBackends() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let (trie, config) = prepare(scratch, dataset: testDataset, config: testConfig)
        let server = Namespace(scratch, tag: "usrv"), client = Namespace(scratch, tag: "ucli")
        defer { client.remove(); server.remove() }
        let link = connect(server, client, link: "gu", serverAddresses: ["203.0.113.1"], clientAddresses: ["192.0.2.10"], scratch: scratch)
        try #require(link.status == 0, "\(link.stderr)")
        // A stateful rule, as any real firewall has: it makes the kernel track flows.
        try #require(server.run("iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT").status == 0)
        let phone = bash("""
            ip netns exec \(server.name) timeout 60 socat UDP-RECVFROM:5060,fork EXEC:cat > /dev/null 2>&1 &
            sleep 0.3
            ip netns exec \(client.name) timeout 60 bash -c 'while sleep 0.2; do echo REGISTER; done | socat - UDP:203.0.113.1:5060,bind=192.0.2.10,sourceport=5062' > /dev/null 2>&1 &
            exit 0
            """, in: scratch)
        try #require(phone.status == 0)
        // UDP flows count as answered once they have lasted a couple of seconds both ways.
        var dry = CommandResult(status: 0, stdout: "", stderr: "")
        for _ in 0..<40 {
            dry = server.run("\"$GEOGATE\" apply --config \(config) --db \(trie) --dry-run")
            if dry.stderr.contains("udp") { break }
            usleep(250_000)
        }
        #expect(dry.stderr.contains("192.0.2.10:5062 -> local udp port 5060 not in geogate-full-v4"), "\(dry.stderr)")
        let ipset = server.run("\"$GEOGATE\" apply --config \(config) --db \(trie); echo status $?; ipset list -n")
        #expect(ipset.stdout.hasSuffix("status 1\n") && ipset.stderr.contains("refusing to apply"), "\(ipset.stdout) \(ipset.stderr)")
        let nft = server.run("\"$GEOGATE\" apply --config \(config) --db \(trie) --backend nft; echo status $?; nft list tables | grep -c geogate")
        #expect(nft.stdout.hasSuffix("status 1\n0\n") && nft.stderr.contains("local udp port 5060"), "\(nft.stdout) \(nft.stderr)")

        // A set of another type in geogate's table: nft refuses the whole script.
        let conflict = server.run("""
            nft add table inet geogate
            nft add set inet geogate geogate-full-v6 '{ type ipv4_addr; }'
            nft list table inet geogate > before
            "$GEOGATE" apply --config \(config) --db \(trie) --backend nft --force > /dev/null; echo status $?
            nft list table inet geogate > after
            cmp -s before after && echo unchanged
            nft delete table inet geogate
            """)
        #expect(conflict.stdout == "status 1\nunchanged\n", "\(conflict.stdout) \(conflict.stderr)")
        #expect(conflict.stderr.contains("nft refused the sets (table inet geogate)"), "\(conflict.stderr)")

        let forced = server.run("""
            "$GEOGATE" apply --config \(config) --db \(trie) --backend nft --force; echo status $?
            nft get element inet geogate geogate-full-v4 '{ 198.51.100.7 }' > /dev/null && echo member
            nft get element inet geogate geogate-full-v4 '{ 192.0.2.10 }' > /dev/null 2>&1 || echo not-member
            """)
        #expect(forced.stdout.hasSuffix("status 0\nmember\nnot-member\n"), "\(forced.stdout) \(forced.stderr)")
    }

    /// A failure half-way (the second set's swap fails after the first was
    /// swapped) and a caller without CAP_NET_ADMIN: clear errors, exit 1, every live
    /// set as it was, no temporary set left.
    @Test func failuresLeaveTheLiveSetsUntouched() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let (trie, config) = prepare(scratch, dataset: testDataset, config: testConfig)
        let other = scratch.write("other.conf", scratch.runtimeConfig + testConfig.replacingOccurrences(of: "[IT]", with: "[IT, CN]"))
        let ns = Namespace(scratch, tag: "fail")
        defer { ns.remove() }
        let r = ns.run("""
            "$GEOGATE" apply --config \(config) --db \(trie) > /dev/null || exit 10
            iptables -A INPUT -m set ! --match-set geogate-full-v4 src -j DROP
            ipset save | sort > before
            for fault in sets-fill sets-switch; do
              GEOGATE_FAULT=$fault "$GEOGATE" apply --config \(other) --db \(trie) > /dev/null 2> err-$fault; echo "$fault status $?"
              ipset save | sort > after
              cmp -s before after && echo unchanged
              cat err-$fault >&2
            done
            setpriv --reuid 65534 --regid 65534 --clear-groups --inh-caps -all --bounding-set -all \\
                "$GEOGATE" apply --config \(other) --db \(trie) > /dev/null 2> err2; echo "status $?"
            ipset save | sort > after2
            cmp -s before after2 && echo unchanged
            cat err2 >&2
            """)
        #expect(r.stdout == "sets-fill status 1\nunchanged\nsets-switch status 1\nunchanged\nstatus 1\nunchanged\n", "\(r.stdout)\n\(r.stderr)")
        #expect(r.stderr.contains("swapping geogate-full-v6: injected failure at sets-switch"), "the failing set is named: \(r.stderr)")
        #expect(r.stderr.contains("Operation not permitted") || r.stderr.contains("ermission"), "\(r.stderr)")
        #expect(r.stderr.contains("the live sets were not changed"))
    }
}

/// Planning and text, without a kernel.
struct SetTextTests {
    @Test func namesSizesAndTextShape() throws {
        let config = try GeoGateConfig.parse(testConfig, path: "t.conf")
        let it = CountryCode("IT")!
        let map4 = RangeMap(family: .v4, normalized: [AddressRange(start: IPAddress("198.51.100.0")!.value, end: IPAddress("198.51.100.255")!.value, country: it)])
        let sets = try SetPlanner.plan(config: config, maps: [.v4: map4, .v6: RangeMap(family: .v6)], profile: nil, perCountry: true)
        #expect(sets.map(\.name) == ["geogate-full-v4", "geogate-full-v6", "geogate-full-rt-block-v4", "geogate-full-rt-block-v6",
                                     "geogate-full-rt-allow-v4", "geogate-full-rt-allow-v6", "geogate-cc-it-v4"])
        #expect(sets[0].hashSize == 1024 && sets[0].maxElements == 65536)
        var text = ""
        IPSetText.render([sets[6]], into: &text, tag: "5eed")
        #expect(text == """
            create geogate-cc-it-v4 hash:net family inet hashsize 1024 maxelem 65536 -exist
            create gg-5eed-0 hash:net family inet hashsize 1024 maxelem 65536 -exist
            flush gg-5eed-0
            add gg-5eed-0 198.51.100.0/24
            swap gg-5eed-0 geogate-cc-it-v4
            destroy gg-5eed-0

            """)
        var nft = ""
        NFTText.render([sets[6]], into: &nft)
        #expect(nft == """
            add table inet geogate
            add set inet geogate geogate-cc-it-v4 { type ipv4_addr; flags interval; }
            flush set inet geogate geogate-cc-it-v4
            add element inet geogate geogate-cc-it-v4 { 198.51.100.0-198.51.100.255 }

            """)
        #expect(throws: PlanError.self) { try SetPlanner.plan(config: config, maps: [.v4: map4, .v6: RangeMap(family: .v6)], profile: "nope", perCountry: false) }
    }

    @Test func procNetTCPParsing() {
        #expect(Lockout.endpoint("0100007F:0016", .v4).map { "\($0.0) \($0.1)" } == "127.0.0.1 22")
        #expect(Lockout.endpoint("B80D0120000000000000000001000000:01BB", .v6).map { "\($0.0) \($0.1)" } == "2001:db8::1 443")
    }
}
