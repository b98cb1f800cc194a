import GeoGateCore
#if canImport(Glibc)
import Glibc
#endif

/// The answer for one address, with the rule that gave it.
public struct Decision: Sendable, Equatable, CustomStringConvertible {
    public let verdict: Verdict
    public let country: CountryCode?
    public let reason: Reason

    /// "ALLOW IT country-allowed" style, as `check` and the daemon print it.
    public var description: String {
        "\(verdict == .allow ? "ALLOW" : "DENY") \(country?.description ?? "--") \(reason)"
    }
}

/// The rule of the precedence that decided (Docs/PROTOCOL.md lists the words).
public enum Reason: Sendable, Equatable, CustomStringConvertible {
    case trusted(CIDR)
    case allowNetwork(CIDR)
    case blockNetwork(CIDR)
    /// A run-time entry (`geogate allow` / `geogate block`).
    case runtimeAllow(CIDR)
    case runtimeBlock(CIDR)
    /// A network of an allow-lists / block-lists feed.
    case allowList(CIDR)
    case blockList(CIDR)
    case countryAllowed, countryNotAllowed, countryDenied, countryNotDenied
    case noCountry

    /// The reason's word; a fixed string, so the daemon writes it without allocating.
    public var word: StaticString {
        switch self {
        case .trusted: "trusted"
        case .allowNetwork: "allow-network"
        case .blockNetwork: "block-network"
        case .runtimeAllow: "runtime-allow"
        case .runtimeBlock: "runtime-block"
        case .allowList: "allow-list"
        case .blockList: "block-list"
        case .countryAllowed: "country-allowed"
        case .countryNotAllowed: "country-not-allowed"
        case .countryDenied: "country-denied"
        case .countryNotDenied: "country-not-denied"
        case .noCountry: "no-country"
        }
    }

    /// The network of a network rule.
    public var network: CIDR? {
        switch self {
        case .trusted(let n), .allowNetwork(let n), .blockNetwork(let n), .runtimeAllow(let n), .runtimeBlock(let n),
             .allowList(let n), .blockList(let n): n
        default: nil
        }
    }

    public var description: String { network.map { "\(word) \($0)" } ?? "\(word)" }
}

/// A profile with the global trusted networks: the one precedence, used by
/// `check`, the daemon and (as set algebra) the firewall sets:
/// 1. trusted networks are allowed;
/// 2. else the most specific always-allowed / always-blocked network decides
///    (allow-networks, block-networks, and the networks of the profile's feeds;
///    a block wins over an allow of the same network);
/// 3. else a live run-time entry: any block holding the address denies, else any
///    allow allows (`geogate block` / `geogate allow`; the most specific is named);
/// 4. else the country rule;
/// 5. else (no country) the profile's no-country verdict.
/// The admin's static rules come before run-time entries on purpose: a caller
/// allowed to add entries (a web application) can neither open a blocked network
/// nor lock out a trusted one.
/// A class: the daemon decides with one per profile per request, and a reference
/// is cheaper to hand around than the lists inside.
public final class Policy: Sendable {
    public let profile: Profile
    public let trusted: TrustedNetworks
    /// Where a static network comes from.
    enum StaticNetwork: Sendable, Equatable {
        case allowNetwork, blockNetwork, allowList, blockList
        var allows: Bool { self == .allowNetwork || self == .allowList }
    }
    /// allow-networks, block-networks and the feeds' networks, together: the most
    /// specific decides, a block wins over an allow of the same network.
    let staticNetworks: NetworkMatcher<StaticNetwork>
    /// The profile's run-time entries (empty unless given).
    public let entries: EntryTable

    public init(profile: Profile, trusted: TrustedNetworks, entries: EntryTable = .empty) {
        self.profile = profile
        self.trusted = trusted
        self.entries = entries
        staticNetworks = NetworkMatcher(profile.allowNetworks.map { ($0, .allowNetwork) } + profile.blockNetworks.map { ($0, .blockNetwork) }
                                            + profile.allowLists.map { ($0, .allowList) } + profile.blockLists.map { ($0, .blockList) },
                                        wins: { a, b in !a.allows && b.allows })
    }

    /// The same policy with these run-time entries (the profile's, live ones).
    public func with(entries: [RuntimeEntry]) -> Policy {
        Policy(profile: profile, trusted: trusted, entries: EntryTable(entries))
    }

    /// The decision for `address`, whose country (from the trie) is `country`.
    /// IPv4-mapped IPv6 addresses are decided as their IPv4 address.
    /// `now`: the clock run-time entries expire by (Unix seconds); read only when
    /// the profile has entries.
    public func decide(_ address: IPAddress, country: CountryCode?, now: Int64? = nil) -> Decision {
        let address = address.unmappedIPv4 ?? address
        if let net = trusted.network(containing: address) {
            return Decision(verdict: .allow, country: country, reason: .trusted(net))
        }
        if let (net, kind) = staticNetworks.mostSpecific(containing: address) {
            let reason: Reason = switch kind {
            case .allowNetwork: .allowNetwork(net)
            case .blockNetwork: .blockNetwork(net)
            case .allowList: .allowList(net)
            case .blockList: .blockList(net)
            }
            return Decision(verdict: kind.allows ? .allow : .deny, country: country, reason: reason)
        }
        if !entries.isEmpty, let (action, net) = entries.match(address, now: now ?? Int64(time(nil))) {
            return Decision(verdict: action == .allow ? .allow : .deny, country: country,
                            reason: action == .allow ? .runtimeAllow(net) : .runtimeBlock(net))
        }
        if let country {
            let allowed = profile.allows(country: country)
            return Decision(verdict: allowed ? .allow : .deny, country: country,
                            reason: profile.mode == .allowlist ? (allowed ? .countryAllowed : .countryNotAllowed)
                                                               : (allowed ? .countryNotDenied : .countryDenied))
        }
        return Decision(verdict: profile.noCountry, country: nil, reason: .noCountry)
    }

    /// Every allowed address of `family`, by set algebra over whole ranges: the
    /// same answers as `decide` for each address (the tests check this), computed
    /// in time linear in the ranges.
    public func allowedSet(_ family: IPFamily, countries map: RangeMap) -> AddressSet {
        precondition(map.family == family)
        // 3 + 4: the country rule over the map, the no-country verdict in its gaps.
        var allowedByCountry: [AddressSet.Interval] = []
        for r in map.ranges where profile.allows(country: r.country) {
            allowedByCountry.append(.init(first: r.start, last: r.end))
        }
        var allowed = AddressSet(family: family, intervals: allowedByCountry)
        if profile.noCountry == .allow {
            let mapped = AddressSet(family: family, intervals: map.ranges.map { .init(first: $0.start, last: $0.end) })
            allowed = allowed.union(AddressSet.all(family).subtracting(mapped))
        }
        // 2: networks from the widest prefix to the narrowest, so the most specific
        // wins. Networks of one length are disjoint (or the same network, which the
        // config refuses in both lists), so each length is one union and one subtraction.
        // The feeds' networks rank with them, so they go in the same passes.
        var allowByLength = [[CIDR]](repeating: [], count: family.bitWidth + 1)
        var blockByLength = allowByLength
        for n in profile.allowNetworks + profile.allowLists where n.family == family { allowByLength[n.prefixLength].append(n) }
        for n in profile.blockNetworks + profile.blockLists where n.family == family { blockByLength[n.prefixLength].append(n) }
        for length in 0...family.bitWidth {
            let allow = allowByLength[length], block = blockByLength[length]
            if !allow.isEmpty { allowed = allowed.union(AddressSet(family: family, cidrs: allow)) }
            if !block.isEmpty { allowed = allowed.subtracting(AddressSet(family: family, cidrs: block)) }
        }
        // 1: trusted.
        return allowed.union(trusted.set(family))
    }
}

// MARK: - Run-time entries as kernel sets

extension Policy {
    /// Where run-time entries decide: every address of `family` but the trusted
    /// and the static networks, which come before them in the precedence.
    public func runtimeRegion(_ family: IPFamily) -> AddressSet {
        let statics = (profile.allowNetworks + profile.blockNetworks + profile.allowLists + profile.blockLists).filter { $0.family == family }
        return AddressSet.all(family).subtracting(AddressSet(family: family, cidrs: statics).union(trusted.set(family)))
    }

    /// The kernel elements of one action's run-time entries: the part of each live
    /// entry inside `runtimeRegion`, as CIDRs, each with the latest expiry of the
    /// entries holding it (nil: until unlisted). The elements are disjoint (nft's
    /// interval sets refuse overlaps), so nested entries are painted from the
    /// longest-lived down. With the firewall's rule order (block set: drop; allow
    /// set: accept; profile set: accept; else drop) the kernel then decides every
    /// address as `decide` does (PolicyTests check it address by address).
    public func runtimeElements(_ action: RuntimeEntry.Action, _ family: IPFamily, entries: [RuntimeEntry],
                                now: Int64) -> [(cidr: CIDR, expires: Int64?)] {
        let region = runtimeRegion(family)
        let live = entries.filter {
            $0.action == action && $0.network.family == family && $0.profile == profile.name && $0.isLive(at: now)
        }.sorted { ($0.network.first, $0.network.prefixLength) < ($1.network.first, $1.network.prefixLength) }
        var out: [(cidr: CIDR, expires: Int64?)] = []
        var i = 0
        while i < live.count {
            // A cluster: entries that overlap (CIDRs nest or are disjoint).
            var j = i + 1
            var last = live[i].network.last
            while j < live.count && live[j].network.first <= last {
                last = max(last, live[j].network.last)
                j += 1
            }
            let cluster = live[i..<j].sorted { ($0.expires ?? .max) > ($1.expires ?? .max) }
            var painted = AddressSet(family: family)
            for entry in cluster {
                var piece = AddressSet(family: family, cidrs: [entry.network]).intersection(region)
                if cluster.count > 1 {
                    piece = piece.subtracting(painted)
                    painted = painted.union(piece)
                }
                for cidr in piece.cidrs() { out.append((cidr, entry.expires)) }
            }
            i = j
        }
        return out
    }
}
