import GeoGateCore

/// The answer for one address, with the rule that gave it.
public struct Decision: Sendable, Equatable, CustomStringConvertible {
    public let verdict: Verdict
    public let country: CountryCode?
    public let reason: String

    /// "ALLOW IT country" style, as `check` and the daemon print it.
    public var description: String {
        "\(verdict == .allow ? "ALLOW" : "DENY") \(country?.description ?? "--") \(reason)"
    }
}

/// A profile with the global trusted networks: the one precedence, used by
/// `check`, the daemon and (as set algebra) the firewall sets:
/// 1. trusted networks are allowed;
/// 2. else the most specific always-allowed / always-blocked network decides;
/// 3. else the country rule;
/// 4. else (no country) the profile's no-country verdict.
public struct Policy: Sendable {
    public let profile: Profile
    public let trusted: TrustedNetworks

    public init(profile: Profile, trusted: TrustedNetworks) {
        self.profile = profile
        self.trusted = trusted
    }

    /// The decision for `address`, whose country (from the trie) is `country`.
    /// IPv4-mapped IPv6 addresses are decided as their IPv4 address.
    public func decide(_ address: IPAddress, country: CountryCode?) -> Decision {
        let address = address.unmappedIPv4 ?? address
        if let net = trusted.network(containing: address) {
            return Decision(verdict: .allow, country: country, reason: "trusted \(net)")
        }
        if let (net, allow) = mostSpecificNetwork(containing: address) {
            return Decision(verdict: allow ? .allow : .deny, country: country,
                            reason: "\(allow ? "allow-network" : "block-network") \(net)")
        }
        if let country {
            let allowed = profile.allows(country: country)
            return Decision(verdict: allowed ? .allow : .deny, country: country,
                            reason: profile.mode == .allowlist ? (allowed ? "country-allowed" : "country-not-allowed")
                                                               : (allowed ? "country-not-denied" : "country-denied"))
        }
        return Decision(verdict: profile.noCountry, country: nil, reason: "no-country")
    }

    private func mostSpecificNetwork(containing address: IPAddress) -> (CIDR, Bool)? {
        var best: (CIDR, Bool)?
        for (list, allow) in [(profile.allowNetworks, true), (profile.blockNetworks, false)] {
            for net in list where net.family == address.family && net.first <= address.value && address.value <= net.last {
                if best == nil || net.prefixLength > best!.0.prefixLength { best = (net, allow) }
            }
        }
        return best
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
        // 2: networks from the widest to the narrowest, so the most specific is applied last.
        let networks = (profile.allowNetworks.map { ($0, true) } + profile.blockNetworks.map { ($0, false) })
            .filter { $0.0.family == family }
            .sorted { $0.0.prefixLength < $1.0.prefixLength }
        for (net, allow) in networks {
            let one = AddressSet(family: family, cidrs: [net])
            allowed = allow ? allowed.union(one) : allowed.subtracting(one)
        }
        // 1: trusted.
        return allowed.union(trusted.set(family))
    }
}
