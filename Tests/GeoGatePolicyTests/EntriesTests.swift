import Foundation
import GeoGateTestSupport
import Testing
@testable import GeoGateCore
@testable import GeoGatePolicy

/// Run-time entries: their place in the precedence, as decisions and as the
/// kernel's sets, against a per-address model; the state file; caps; durations.
struct RuntimeEntryTests {
    /// Random profiles, countries, trusted and static networks (feeds' networks too), and random allow and
    /// block entries (nested, overlapping, some expired) in a 4,096-address window.
    /// For every address: `decide` equals the written-out precedence, and the
    /// kernel's rule order over the sets (block set: drop; allow set: accept;
    /// profile set: accept; else drop) gives the same verdict. The elements of each
    /// set are disjoint and carry the latest expiry of the entries that hold them.
    @Test func entriesFollowThePrecedenceInDecisionsAndInTheKernelSets() {
        var rng = SplitMix64(seed: 17)
        let codes = ["IT", "CH", "CN", "US"].map(cc)
        let base: UInt128 = 0xC633_0000  // 198.51.0.0
        let window = 4096
        let now: Int64 = 1_800_000_000
        for round in 0..<200 {
            var ranges: [AddressRange] = []
            var at = base
            while at < base + UInt128(window) {
                let end = min(at + UInt128(1 + rng.next() % 300) - 1, base + UInt128(window) - 1)
                if rng.next() % 4 != 0 {
                    RangeMap.appendCoalescing(AddressRange(start: at, end: end, country: codes[Int(rng.next() % 4)]), to: &ranges)
                }
                at = end + 1
            }
            let map = RangeMap(family: .v4, normalized: ranges)
            func nets(_ k: Int, shortest: Int = 20) -> [CIDR] {
                (0..<k).map { _ in
                    let length = shortest + Int(rng.next() % UInt64(33 - shortest))
                    let address = (base + UInt128(rng.next() % UInt64(window))) & ~((UInt128(1) << UInt128(32 - length)) - 1)
                    return CIDR(family: .v4, address: address, prefixLength: length)
                }
            }
            let allowNets = nets(Int(rng.next() % 3))
            let blockNets = nets(Int(rng.next() % 3)).filter { !allowNets.contains($0) }
            // Feeds' networks: more of them, and free to repeat a static network or each other.
            let allowLists = nets(Int(rng.next() % 4), shortest: 22) + (allowNets.isEmpty || rng.next() % 3 != 0 ? [] : [allowNets[0]])
            let blockLists = nets(Int(rng.next() % 4), shortest: 22) + (allowLists.isEmpty || rng.next() % 2 != 0 ? [] : [allowLists[0]])
            let profile = Profile(name: "p", scope: .fullServer, mode: rng.next() % 2 == 0 ? .allowlist : .blocklist,
                                  countries: Set(codes.filter { _ in rng.next() % 2 == 0 }), allowNetworks: allowNets,
                                  blockNetworks: blockNets, noCountry: rng.next() % 2 == 0 ? .allow : .deny, setName: "p",
                                  allowLists: allowLists, blockLists: blockLists)
            let trusted = TrustedNetworks(networks: (round % 2 == 0 ? [] : nets(1, shortest: 24)) + TrustedNetworks.defaults)
            // Entries: one per network (as the store keeps them), some expired, some until unlisted.
            var table = RuntimeEntries()
            for net in nets(Int(rng.next() % 12), shortest: 21) {
                let expires: Int64? = switch rng.next() % 4 {
                case 0: nil
                case 1: now - Int64(1 + rng.next() % 100)  // expired
                default: now + Int64(1 + rng.next() % 5000)
                }
                let entry = RuntimeEntry(action: rng.next() % 2 == 0 ? .allow : .block, profile: "p", network: net,
                                         expires: expires, added: now - 200, uid: 0, reason: "r")
                try? table.put(entry, cap: 100, now: now - 300)  // before any expiry: expired ones are kept
            }
            let entries = table.entries
            let policy = Policy(profile: profile, trusted: trusted, entries: EntryTable(entries))
            let staticSet = Policy(profile: profile, trusted: trusted).allowedSet(.v4, countries: map)
            let blockElements = policy.runtimeElements(.block, .v4, entries: entries, now: now)
            let allowElements = policy.runtimeElements(.allow, .v4, entries: entries, now: now)
            for elements in [blockElements, allowElements] {
                let sorted = elements.map(\.cidr).sorted { $0.first < $1.first }
                for (x, y) in zip(sorted, sorted.dropFirst()) { #expect(x.last < y.first, "round \(round): \(x) and \(y) overlap") }
            }
            let blockSet = AddressSet(family: .v4, cidrs: blockElements.map(\.cidr))
            let allowSet = AddressSet(family: .v4, cidrs: allowElements.map(\.cidr))
            for value in (base - 16)..<(base + UInt128(window) + 16) {
                let a = IPAddress(family: .v4, value: value)
                let country = map.country(of: value)
                // The precedence, written out.
                func holds(_ n: CIDR) -> Bool { n.first <= value && value <= n.last }
                func live(_ action: RuntimeEntry.Action) -> [RuntimeEntry] {
                    entries.filter { $0.action == action && $0.isLive(at: now) && holds($0.network) }
                }
                let expected: Verdict
                // The most specific static network; of the same network, a block.
                let staticNet = ((allowNets + allowLists).map { ($0, Verdict.allow) } + (blockNets + blockLists).map { ($0, Verdict.deny) })
                    .filter { holds($0.0) }
                    .max { ($0.0.prefixLength, $0.1 == .deny ? 1 : 0) < ($1.0.prefixLength, $1.1 == .deny ? 1 : 0) }
                if trusted.network(containing: a) != nil {
                    expected = .allow
                } else if let (_, verdict) = staticNet {
                    expected = verdict
                } else if !live(.block).isEmpty {
                    expected = .deny
                } else if !live(.allow).isEmpty {
                    expected = .allow
                } else if let country {
                    expected = profile.allows(country: country) ? .allow : .deny
                } else {
                    expected = profile.noCountry
                }
                let decision = policy.decide(a, country: country, now: now)
                #expect(decision.verdict == expected, "round \(round) \(a): \(decision), expected \(expected)")
                let kernel: Verdict = blockSet.contains(value) ? .deny : allowSet.contains(value) || staticSet.contains(value) ? .allow : .deny
                #expect(kernel == expected, "round \(round) \(a): the kernel sets say \(kernel), expected \(expected)")
                // Each element's expiry: the latest of the live entries holding the address.
                for (action, elements) in [(RuntimeEntry.Action.block, blockElements), (.allow, allowElements)] {
                    guard let element = elements.first(where: { holds($0.cidr) }) else { continue }
                    let holding = live(action)
                    let latest: Int64? = holding.contains { $0.expires == nil } ? nil : holding.compactMap(\.expires).max()
                    #expect(element.expires == latest, "round \(round) \(a) \(action): expiry \(String(describing: element.expires)), expected \(String(describing: latest))")
                }
            }
        }
    }

    @Test func expiryIsTheClocks() {
        let profile = Profile(name: "p", scope: .webOnly, mode: .allowlist, countries: [cc("IT")], allowNetworks: [],
                              blockNetworks: [], noCountry: .deny, setName: "p")
        let entry = RuntimeEntry(action: .allow, profile: "p", network: cidr("192.0.2.0/24"), expires: 1000, added: 0, uid: 0, reason: "")
        let policy = Policy(profile: profile, trusted: TrustedNetworks(networks: []), entries: EntryTable([entry]))
        #expect(policy.decide(ip("192.0.2.9"), country: cc("CN"), now: 999).description == "ALLOW CN runtime-allow 192.0.2.0/24")
        #expect(policy.decide(ip("192.0.2.9"), country: cc("CN"), now: 1000).description == "DENY CN country-not-allowed")
        #expect(policy.decide(ip("::ffff:192.0.2.9"), country: cc("CN"), now: 5).verdict == .allow, "IPv4-mapped, as IPv4")
    }

    @Test func putReplacesTheSameNetworkAndTheCapRefusesTheNext() throws {
        var t = RuntimeEntries()
        func entry(_ net: String, _ action: RuntimeEntry.Action, expires: Int64? = nil, profile: String = "p") -> RuntimeEntry {
            RuntimeEntry(action: action, profile: profile, network: cidr(net), expires: expires, added: 1, uid: 7, reason: "why")
        }
        try t.put(entry("192.0.2.1/32", .allow), cap: 2, now: 10)
        let replaced = try t.put(entry("192.0.2.1/32", .block), cap: 2, now: 10)
        #expect(replaced?.action == .allow && t.entries.count == 1 && t.entries[0].action == .block, "a block replaces the allow")
        try t.put(entry("192.0.2.2/32", .allow, expires: 20), cap: 2, now: 10)
        #expect(throws: EntryError.self) { try t.put(entry("192.0.2.3/32", .allow), cap: 2, now: 10) }
        try t.put(entry("192.0.2.3/32", .allow), cap: 2, now: 25)  // .2 expired: room again
        #expect(t.entries.map(\.network.description) == ["192.0.2.1/32", "192.0.2.3/32"])
        try t.put(entry("192.0.2.9/32", .allow, profile: "q"), cap: 2, now: 25)  // another profile's cap
        #expect(t.remove(profile: "p", network: cidr("192.0.2.1/32"), now: 25)?.action == .block)
        #expect(t.remove(profile: "p", network: cidr("192.0.2.1/32"), now: 25) == nil)
    }

    @Test func theStateFileRoundTripsAndBadLinesNameTheirLine() throws {
        let entries = RuntimeEntries([
            RuntimeEntry(action: .block, profile: "full", network: cidr("203.0.113.7/32"), expires: 1_800_000_600, added: 1_800_000_000,
                         uid: 0, reason: "SIP scanner\non 5060 \u{1b}[31m"),
            RuntimeEntry(action: .allow, profile: "web", network: cidr("2001:db8::/48"), expires: nil, added: 1_800_000_000, uid: 33, reason: ""),
        ])
        #expect(entries.entries[0].reason == "SIP scanner\\non 5060 \\x1b[31m", "escaped when taken")
        let parsed = try RuntimeEntries.parse(entries.encoded(), path: "entries")
        #expect(parsed == entries)
        func error(_ text: String) -> String {
            do { _ = try RuntimeEntries.parse(Array(text.utf8), path: "/var/lib/geogate/entries"); return "accepted" } catch { return error.description }
        }
        #expect(error("v1\nallow full 10.0.0.1/8 - 1 0\n").hasPrefix("/var/lib/geogate/entries:2: not a network"))
        #expect(error("# c\nv1\nallow full 10.0.0.0/8 - 1\n").hasPrefix("/var/lib/geogate/entries:3: expected"))
        #expect(error("v2\n").hasPrefix("/var/lib/geogate/entries:1: not a geogate entries file of version v1"))
        #expect(error("v1\npermit full 10.0.0.0/8 - 1 0\n").contains(":2: the action is not allow or block"))
        #expect(error("v1\nallow full 10.0.0.0/8 soon 1 0\n").contains(":2: the expiry is not a time"))
        #expect(error("v1\nallow FULL 10.0.0.0/8 - 1 0\n").contains(":2: not a profile name"))
        #expect(error("v1\nallow full 10.0.0.0/8 - 1 0 \u{7}bell\n").contains(":2: control characters: ") && !error("v1\nallow full 10.0.0.0/8 - 1 0 \u{7}\n").contains("\u{7}"))
        #expect(error("v1\nallow full 0.0.0.0/0 - 1 0\n").contains(":2: not a network"), "every address is not an entry")
    }

    @Test func durations() {
        #expect(RuntimeEntries.parseDuration("90") == 90)
        #expect(RuntimeEntries.parseDuration("90s") == 90)
        #expect(RuntimeEntries.parseDuration("15m") == 900)
        #expect(RuntimeEntries.parseDuration("1h30m") == 5400)
        #expect(RuntimeEntries.parseDuration("7d") == 604_800)
        #expect(RuntimeEntries.parseDuration("1w") == 604_800)
        for bad in ["", "m", "1x", "-5", "1.5h", "99999999999", "h1"] { #expect(RuntimeEntries.parseDuration(bad) == nil, "\(bad)") }
    }
}
