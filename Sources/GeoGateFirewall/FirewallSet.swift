import GeoGateCore
import GeoGatePolicy
#if canImport(Glibc)
import Glibc
#endif

/// One firewall set: a name, a family and exactly the addresses it must match.
public struct FirewallSet: Sendable {
    /// What a set is for, which says how rules use it and what may change it.
    public enum Kind: Sendable, Equatable {
        /// A profile's allowed addresses: the rules accept what it matches.
        case profile
        /// One country's networks (`sets --per-country`).
        case country
        /// A profile's run-time allow entries: accepted before the profile set.
        case runtimeAllow
        /// A profile's run-time block entries: dropped before anything else.
        case runtimeBlock
    }

    public let name: String
    public let family: IPFamily
    public let addresses: AddressSet
    /// The minimal CIDR cover of `addresses` (what ipset's hash:net stores).
    public let cidrs: [CIDR]
    /// Which profile (or "country XX") it comes from, for messages.
    public let origin: String
    public let kind: Kind
    /// Run-time sets only: each CIDR's expiry (Unix seconds; nil: until unlisted),
    /// turned into the kernel's element timeouts when loaded. The set is then made
    /// with timeout support.
    public let expiries: [Int64?]?

    public init(name: String, family: IPFamily, addresses: AddressSet, origin: String, kind: Kind = .profile) {
        self.kind = kind
        self.expiries = nil
        self.name = name
        self.family = family
        self.addresses = addresses
        // hash:net holds prefixes 1-32 / 1-128: the whole family (an open filter)
        // is its two halves.
        self.cidrs = addresses.cidrs().flatMap { c in
            c.prefixLength > 0 ? [c] : [CIDR(family: c.family, address: 0, prefixLength: 1),
                                        CIDR(family: c.family, address: (c.family.maxAddress >> 1) + 1, prefixLength: 1)]
        }
        self.origin = origin
    }

    /// A run-time set: disjoint elements with their expiries (Policy.runtimeElements).
    public init(name: String, family: IPFamily, elements: [(cidr: CIDR, expires: Int64?)], origin: String, kind: Kind) {
        self.name = name
        self.family = family
        self.kind = kind
        self.origin = origin
        self.cidrs = elements.map(\.cidr)
        self.expiries = elements.map(\.expires)
        self.addresses = AddressSet(family: family, cidrs: cidrs)
    }

    /// The element timeouts in seconds at `now` (0: no timeout), for the kernel.
    public func timeouts(now: Int64) -> [UInt32]? {
        expiries?.map { e in e.map { UInt32(clamping: max(1, $0 - now)) } ?? 0 }
    }

    /// A fingerprint of exactly what the kernel set holds (family, CIDRs, and the
    /// expiries of a run-time set's elements): equal
    /// digests, equal contents. Two independent 64-bit FNV-1a variants, so an
    /// accidental match is out of reach (128 bits); it only decides whether a
    /// reload can be skipped, never what is allowed.
    public var contentDigest: String {
        var a: UInt64 = 0xcbf2_9ce4_8422_2325
        var b: UInt64 = 0x6c62_272e_07bb_0142
        func mix(_ byte: UInt8) {
            a = (a ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
            b = (b ^ UInt64(byte)) &* 0x0000_0100_0000_0193
        }
        mix(family == .v4 ? 4 : 6)
        for (i, c) in cidrs.enumerated() {
            var v = c.address
            for _ in 0..<16 { mix(UInt8(truncatingIfNeeded: v)); v >>= 8 }
            mix(UInt8(c.prefixLength))
            // A run-time element's absolute expiry: the same entries give the same
            // kernel elements, whose timeouts the kernel counts down itself.
            if let expiries {
                var e = expiries[i] ?? -1
                for _ in 0..<8 { mix(UInt8(truncatingIfNeeded: e)); e >>= 8 }
            }
        }
        return hexString(withUnsafeBytes(of: (a.bigEndian, b.bigEndian)) { Array($0) })
    }

    /// Buckets: the next power of two at or above the entry count (load factor <= 1;
    /// ipset grows the table itself beyond that).
    public var hashSize: Int { max(1024, nextPowerOfTwo(cidrs.count)) }
    /// At least twice the entries (room for data growth before the next apply), so
    /// "Hash is full" cannot happen.
    public var maxElements: Int { max(65536, nextPowerOfTwo(cidrs.count * 2)) }

    private func nextPowerOfTwo(_ n: Int) -> Int {
        var p = 1
        while p < n { p <<= 1 }
        return p
    }
}

/// Turns a config and a country map into the sets `sets` prints and `apply` loads.
public enum SetPlanner {
    /// One set per family for each full-server profile (or only `profile`), plus,
    /// with `perCountry`, one set per family for each country in the data.
    /// With each full-server profile come its run-time entries' sets (RuntimeSets),
    /// from the entries file unless `entries` are given.
    public static func plan(config: GeoGateConfig, maps: [IPFamily: RangeMap], profile: String?,
                            perCountry: Bool, entries given: RuntimeEntries? = nil,
                            now: Int64 = Int64(time(nil))) throws(PlanError) -> [FirewallSet] {
        let entries: RuntimeEntries
        if let given { entries = given } else {
            do { entries = try RuntimeEntries.load(path: config.entriesFile) } catch { throw PlanError("run-time entries: \(error)") }
        }
        var chosen = config.profiles.filter { $0.scope == .fullServer }
        if let profile {
            guard let p = config.profile(named: profile) else {
                throw PlanError("no profile \"\(profile)\" in \(config.path) (profiles: \(config.profiles.map(\.name).joined(separator: ", ")))")
            }
            guard p.scope == .fullServer else {
                throw PlanError("profile \"\(profile)\" is web-only: it has no firewall set (the web login asks the daemon)")
            }
            chosen = [p]
        }
        var sets: [FirewallSet] = []
        for p in chosen {
            let policy = config.policy(p)
            for family in IPFamily.allCases {
                sets.append(FirewallSet(name: "\(p.setName)-v\(family == .v4 ? 4 : 6)", family: family,
                                        addresses: policy.allowedSet(family, countries: maps[family]!),
                                        origin: "profile \(p.name)"))
            }
            sets += RuntimeSets.plan(config: config, profile: p, policy: policy, entries: entries, now: now)
        }
        if perCountry {
            for family in IPFamily.allCases {
                var byCountry: [CountryCode: [AddressSet.Interval]] = [:]
                for r in maps[family]!.ranges { byCountry[r.country, default: []].append(.init(first: r.start, last: r.end)) }
                for (code, intervals) in byCountry.sorted(by: { $0.key < $1.key }) {
                    sets.append(FirewallSet(name: "geogate-cc-\(code.description.lowercased())-v\(family == .v4 ? 4 : 6)",
                                            family: family, addresses: AddressSet(family: family, intervals: intervals),
                                            origin: "country \(code)", kind: .country))
                }
            }
        }
        return sets
    }
}

public struct PlanError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
