import Foundation
import GeoGateTestSupport
import Testing
@testable import GeoGateCore
@testable import GeoGatePolicy

func cc(_ s: String) -> CountryCode { CountryCode(s)! }
func ip(_ s: String) -> IPAddress { IPAddress(s)! }
func cidr(_ s: String) -> CIDR { CIDR(s)! }

/// The set algebra against a bit-per-address model, on a small universe.
struct AddressSetTests {
    func model(_ set: AddressSet, _ n: Int) -> [Bool] { (0..<n).map { set.contains(UInt128($0)) } }

    func random(_ rng: inout SplitMix64, _ n: Int) -> (AddressSet, [Bool]) {
        var bits = [Bool](repeating: false, count: n)
        var intervals: [AddressSet.Interval] = []
        for _ in 0..<Int(rng.next() % 8) {
            let a = Int(rng.next() % UInt64(n)), b = min(n - 1, a + Int(rng.next() % 40))
            intervals.append(.init(first: UInt128(a), last: UInt128(b)))
            for i in a...b { bits[i] = true }
        }
        return (AddressSet(family: .v4, intervals: intervals), bits)
    }

    @Test func operationsMatchTheModel() {
        var rng = SplitMix64(seed: 3)
        let n = 256
        for _ in 0..<3_000 {
            let (a, ma) = random(&rng, n), (b, mb) = random(&rng, n)
            #expect(model(a, n) == ma)
            #expect(model(a.union(b), n) == zip(ma, mb).map { $0 || $1 })
            #expect(model(a.subtracting(b), n) == zip(ma, mb).map { $0 && !$1 })
            #expect(model(a.intersection(b), n) == zip(ma, mb).map { $0 && $1 })
            // Normal form: sorted, disjoint, not adjacent.
            for s in [a, a.union(b), a.subtracting(b)] {
                for (x, y) in zip(s.intervals, s.intervals.dropFirst()) { #expect(x.last + 1 < y.first) }
                // The CIDR cover is exact and has no two mergeable siblings.
                let cover = AddressSet(family: .v4, cidrs: s.cidrs())
                #expect(cover == s)
            }
        }
    }

    @Test func wholeSpaceEdges() {
        let all6 = AddressSet.all(.v6)
        #expect(all6.addressCount == .max)
        let top = AddressSet(family: .v6, intervals: [.init(first: .max, last: .max)])
        #expect(all6.subtracting(top).intervals == [.init(first: 0, last: .max - 1)])
        #expect(all6.subtracting(top).union(top) == all6)
        #expect(AddressSet.all(.v4).cidrs().map(\.description) == ["0.0.0.0/0"])
    }
}

/// The one precedence, as decisions and as set algebra: both must agree everywhere.
struct PrecedenceTests {
    /// A random country map, profile and trusted list inside 10.0.0.0/20-sized
    /// space at 100.64.0.0 + offset... kept in a 4,096-address window so random
    /// addresses hit every boundary.
    @Test func setAlgebraAgreesWithTheDecisionForEveryAddress() {
        var rng = SplitMix64(seed: 11)
        let codes = ["IT", "CH", "FR", "DE", "CN", "US", "RU"].map(cc)
        let base: UInt128 = 0xC633_0000  // 198.51.0.0, not trusted by default
        let window = 4096
        for round in 0..<300 {
            // Country map: random runs with gaps.
            var ranges: [AddressRange] = []
            var at = base
            while at < base + UInt128(window) {
                let length = UInt128(1 + rng.next() % 200)
                let end = min(at + length - 1, base + UInt128(window) - 1)
                if rng.next() % 4 != 0 {
                    RangeMap.appendCoalescing(AddressRange(start: at, end: end, country: codes[Int(rng.next() % 7)]), to: &ranges)
                }
                at = end + 1
            }
            let map = RangeMap(family: .v4, normalized: ranges)
            func nets(_ k: Int) -> [CIDR] {
                (0..<k).map { _ in
                    let length = 20 + Int(rng.next() % 13)
                    let address = (base + UInt128(rng.next() % UInt64(window))) & ~((UInt128(1) << UInt128(32 - length)) - 1)
                    return CIDR(family: .v4, address: address, prefixLength: length)
                }
            }
            let allow = nets(Int(rng.next() % 4))
            let block = nets(Int(rng.next() % 4)).filter { !allow.contains($0) }
            let profile = Profile(name: "p", scope: .fullServer, mode: rng.next() % 2 == 0 ? .allowlist : .blocklist,
                                  countries: Set(codes.filter { _ in rng.next() % 3 == 0 }), allowNetworks: allow,
                                  blockNetworks: block, noCountry: rng.next() % 2 == 0 ? .allow : .deny, setName: "p")
            let trusted = TrustedNetworks(networks: (round % 3 == 0 ? [] : nets(1)) + TrustedNetworks.defaults)
            let policy = Policy(profile: profile, trusted: trusted)
            let set = policy.allowedSet(.v4, countries: map)
            // Every address of the window, and a little beyond it.
            for value in (base - 64)..<(base + UInt128(window) + 64) {
                let a = IPAddress(family: .v4, value: value)
                let decision = policy.decide(a, country: map.country(of: value))
                #expect(set.contains(value) == (decision.verdict == .allow), "round \(round) \(a): \(decision)")
            }
            // Far outside: the no-country verdict unless trusted.
            #expect(set.contains(IPAddress("8.8.8.8")!.value) == (profile.noCountry == .allow))
            #expect(set.contains(IPAddress("10.1.2.3")!.value))
        }
    }

    /// The country rule's bit table answers as the set it was made from, for every
    /// code geogate accepts (letters, and the digit codes like A1).
    @Test func countryRuleMatchesItsSetForEveryCode() {
        var rng = SplitMix64(seed: 5)
        var all: [CountryCode] = []
        for a in UInt8(ascii: "A")...UInt8(ascii: "Z") {
            for b in Array(UInt8(ascii: "0")...UInt8(ascii: "9")) + Array(UInt8(ascii: "A")...UInt8(ascii: "Z")) {
                if let code = CountryCode.validated(a, b) { all.append(code) }
            }
        }
        #expect(all.count > 249)
        for round in 0..<50 {
            let chosen = Set(all.filter { _ in rng.next() % UInt64(1 + round % 7) == 0 })
            for mode in [CountryMode.allowlist, .blocklist] {
                let profile = Profile(name: "p", scope: .webOnly, mode: mode, countries: chosen, allowNetworks: [],
                                      blockNetworks: [], noCountry: .deny, setName: "p")
                for code in all {
                    #expect(profile.allows(country: code) == (chosen.contains(code) == (mode == .allowlist)), "\(code) round \(round)")
                }
            }
        }
    }

    /// A network of one family never holds an address of the other, even where the
    /// numbers coincide (::a00:1 is 10.0.0.1 as a number, and is not trusted).
    @Test func networksMatchTheirOwnFamilyOnly() {
        let policy = Policy(profile: Profile(name: "p", scope: .webOnly, mode: .allowlist, countries: [], allowNetworks: [cidr("2001:db8::/32")],
                                             blockNetworks: [cidr("192.0.2.0/24")], noCountry: .deny, setName: "p"),
                            trusted: TrustedNetworks(networks: TrustedNetworks.defaults))
        #expect(policy.decide(ip("::a00:1"), country: nil).description == "DENY -- no-country")
        #expect(policy.decide(ip("fe80::1"), country: nil).description == "ALLOW -- trusted fe80::/10")
        #expect(policy.decide(ip("2001:db8::5"), country: cc("US")).description == "ALLOW US allow-network 2001:db8::/32")
        #expect(policy.decide(ip("::c000:205"), country: cc("US")).description == "DENY US country-not-allowed")
        #expect(policy.decide(ip("192.0.2.5"), country: cc("US")).description == "DENY US block-network 192.0.2.0/24")
    }

    @Test func precedenceExamples() throws {
        let cfg = try GeoGateConfig.load(path: repositoryRoot + "/Data/geogate.conf")
        let full = cfg.policy(cfg.profile(named: "full")!)
        #expect(full.decide(ip("10.0.0.1"), country: cc("CN")).description == "ALLOW CN trusted 10.0.0.0/8")
        #expect(full.decide(ip("198.51.100.7"), country: cc("CN")).description == "ALLOW CN trusted 198.51.100.7/32")
        #expect(full.decide(ip("203.0.113.5"), country: cc("US")).description == "ALLOW US allow-network 203.0.113.0/24")
        #expect(full.decide(ip("203.0.113.66"), country: cc("US")).description == "DENY US block-network 203.0.113.66/32")
        #expect(full.decide(ip("81.2.69.160"), country: cc("GB")).description == "DENY GB country-not-allowed")
        #expect(full.decide(ip("2.16.0.1"), country: cc("IT")).description == "ALLOW IT country-allowed")
        #expect(full.decide(ip("192.0.2.1"), country: nil).description == "DENY -- no-country")
        #expect(full.decide(ip("::ffff:10.0.0.1"), country: nil).verdict == .allow, "IPv4-mapped decides as IPv4")
        let web = cfg.profile(named: "web")!
        #expect(web.scope == .webOnly && web.countries == [cc("IT"), cc("CH")])
    }
}

/// Every config error names the file, the line (when known) and the key.
struct ConfigErrorTests {
    func error(_ text: String) -> String {
        do {
            _ = try GeoGateConfig.parse(text, path: "t.conf")
            return "no error"
        } catch {
            return error.description
        }
    }

    let good = """
        profiles:
          full:
            scope: full-server
            allow-countries: [IT, NO]
        """

    @Test func aGoodConfigAndItsDefaults() throws {
        let cfg = try GeoGateConfig.parse(good, path: "t.conf")
        let p = cfg.profiles[0]
        #expect(p.countries == [cc("IT"), cc("NO")], "NO is Norway, not a YAML boolean")
        #expect(p.noCountry == .deny && p.mode == .allowlist && p.setName == "geogate-full")
        #expect(cfg.trusted.networks.count == TrustedNetworks.defaults.count)
    }

    @Test(arguments: [
        ("profiles:\n  full:\n    scope: full-server\n    allow-countries: [IT, XX]\n",
         "t.conf:4: profiles.full.allow-countries[1]: unknown country code \"XX\""),
        ("profiles:\n  full:\n    scope: full-server\n    allow-countrys: [IT]\n",
         "t.conf:4: profiles.full.allow-countrys: unknown key"),
        ("profiles:\n  full:\n    scope: full-server\n    allow-countries: [IT]\n    allow-networks: [10.0.0.1/8]\n",
         "t.conf:5: profiles.full.allow-networks[0]: \"10.0.0.1/8\": host bits set"),
        ("profiles:\n  full:\n    scope: full-server\n    allow-countries: [IT]\n    block-networks: [300.1.2.3]\n",
         "t.conf:5: profiles.full.block-networks[0]: \"300.1.2.3\" is not an IP address"),
        ("profiles:\n  full:\n    scope: full-server\n    allow-countries: [IT]\n    block-networks: [1.2.3.0/33]\n",
         "t.conf:5: profiles.full.block-networks[0]: \"1.2.3.0/33\": bad prefix length"),
        ("profiles:\n  full:\n    scope: full-server\n    allow-countries: [IT]\n  full:\n    scope: web-only\n    allow-countries: [IT]\n",
         "duplicate key \"full\""),
        ("profiles:\n  full:\n    allow-countries: [IT]\n", "t.conf:3: profiles.full.scope: missing"),
        ("profiles:\n  full:\n    scope: kernel\n    allow-countries: [IT]\n", "t.conf:3: profiles.full.scope: \"kernel\" is not full-server or web-only"),
        ("profiles:\n  full:\n    scope: web-only\n    allow-countries: [IT]\n    deny-countries: [CN]\n", "has both allow-countries and deny-countries"),
        ("profiles:\n  full:\n    scope: web-only\n", "needs allow-countries (allowlist) or deny-countries (blocklist)"),
        ("profiles:\n  full:\n    scope: full-server\n    allow-countries: []\n", "allows no country and no network"),
        ("profiles:\n  full:\n    scope: full-server\n    allow-countries: [IT]\n    set-name: geogate-a-very-long-set-name-x\n",
         "t.conf:5: profiles.full.set-name: set name \"geogate-a-very-long-set-name-x-v4\" is over ipset's 31 characters"),
        ("profiles:\n  Full:\n    scope: full-server\n    allow-countries: [IT]\n", "t.conf:2: profiles.Full: a profile name is 1-20 characters"),
        ("profiles:\n  full:\n    scope: full-server\n    allow-countries: [IT]\n    allow-networks: [1.2.3.0/24]\n    block-networks: [1.2.3.0/24]\n",
         "1.2.3.0/24 is also in allow-networks"),
        ("profiles:\n  a:\n    scope: full-server\n    allow-countries: [IT]\n    set-name: gg\n  b:\n    scope: full-server\n    allow-countries: [IT]\n    set-name: gg\n",
         "set name \"gg\" is also used by profile a"),
        ("profiles:\n  full:\n    scope: full-server\n    allow-countries: [IT\n", "t.conf:"),
        ("trusted:\n  defaults: maybe\nprofiles:\n  full:\n    scope: web-only\n    allow-countries: [IT]\n",
         "t.conf:2: trusted.defaults: expected true or false, not \"maybe\""),
        ("daemon:\n  threads: 0\nprofiles:\n  full:\n    scope: web-only\n    allow-countries: [IT]\n",
         "t.conf:2: daemon.threads: \"0\" is not a number in 1...64"),
        ("daemon:\n  watch-interval: soon\nprofiles:\n  full:\n    scope: web-only\n    allow-countries: [IT]\n",
         "t.conf:2: daemon.watch-interval: \"soon\" is not a number in 0...86400"),
        ("daemon:\n  refresh-interval: daily\nprofiles:\n  full:\n    scope: web-only\n    allow-countries: [IT]\n",
         "t.conf:2: daemon.refresh-interval: \"daily\" is not a duration like 3600, 90s, 30m, 6h or 1d"),
        ("daemon:\n  refresh-interval: 1d\nprofiles:\n  full:\n    scope: web-only\n    allow-countries: [IT]\n",
         "t.conf:2: daemon.refresh-interval: is set, but refresh.sources lists nothing to refresh from"),
        ("refresh:\n  sources:\n    - provider: dbip-lite\n      edition: xlsx\nprofiles:\n  full:\n    scope: web-only\n    allow-countries: [IT]\n",
         "t.conf:4: refresh.sources[0].edition: dbip-lite comes as csv or mmdb, not \"xlsx\""),
        ("", "empty config"),
        ("database: x\n", "profiles: at least one profile is needed"),
    ])
    func badConfigsAreClearErrors(text: String, expected: String) {
        let message = error(text)
        #expect(message.contains(expected), "got: \(message)")
        #expect(message.hasPrefix("t.conf"), "got: \(message)")
    }

    @Test func durationsTakeUnits() throws {
        let cfg = try GeoGateConfig.parse("""
            daemon:
              refresh-interval: 6h
              refresh-jitter: 90s
            refresh:
              sources:
                - provider: tor
            profiles:
              full:
                scope: web-only
                allow-countries: [IT]
            """, path: "t.conf")
        #expect(cfg.daemon.refreshIntervalSeconds == 21_600 && cfg.daemon.refreshJitterSeconds == 90)
        #expect(try GeoGateConfig.parse("profiles:\n  a:\n    scope: web-only\n    allow-countries: [IT]\n", path: "t").daemon.refreshIntervalSeconds == 0)
    }

    @Test func confirmedEmptyProfileAndBlocklist() throws {
        let cfg = try GeoGateConfig.parse("""
            trusted:
              defaults: false
              networks: [192.0.2.0/24]
            profiles:
              locked:
                scope: full-server
                allow-countries: []
                confirm-empty: true
              open:
                scope: web-only
                deny-countries: [KP]
                no-country: allow
            """, path: "t.conf")
        #expect(cfg.trusted.networks.map(\.description) == ["192.0.2.0/24"])
        let open = cfg.policy(cfg.profile(named: "open")!)
        #expect(open.decide(ip("175.45.176.1"), country: cc("KP")).description == "DENY KP country-denied")
        #expect(open.decide(ip("8.8.8.8"), country: cc("US")).description == "ALLOW US country-not-denied")
        #expect(open.decide(ip("10.0.0.1"), country: nil).description == "ALLOW -- no-country", "no default trusted")
    }

    @Test func aMissingFileIsAClearError() {
        do {
            _ = try GeoGateConfig.load(path: "/nonexistent/geogate.conf")
            Issue.record("no error")
        } catch {
            #expect(error.description == "/nonexistent/geogate.conf: cannot read: No such file or directory")
        }
    }
}
