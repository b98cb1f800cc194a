import GeoGateCore

/// Where a profile is enforced.
public enum Scope: String, Sendable, CaseIterable {
    /// In the kernel, for every service, through a firewall set per family.
    case fullServer = "full-server"
    /// Not in the kernel: the web login asks the daemon.
    case webOnly = "web-only"
}

public enum Verdict: String, Sendable {
    case allow, deny
}

/// What a profile does with the countries it lists.
public enum CountryMode: Sendable, Equatable {
    /// Only the listed countries are allowed.
    case allowlist
    /// The listed countries are denied, every other country is allowed.
    case blocklist
}

/// One filter: a country rule, networks that override it, and the verdict for
/// addresses that have no country. Built only by `GeoGateConfig`, which checks it.
public struct Profile: Sendable {
    public let name: String
    public let scope: Scope
    public let mode: CountryMode
    public let countries: Set<CountryCode>
    public let allowNetworks: [CIDR]
    public let blockNetworks: [CIDR]
    public let noCountry: Verdict
    /// The ipset/nft set base name; the family suffix (-v4, -v6) is added.
    public let setName: String

    public init(name: String, scope: Scope, mode: CountryMode, countries: Set<CountryCode>,
                allowNetworks: [CIDR], blockNetworks: [CIDR], noCountry: Verdict, setName: String) {
        self.name = name
        self.scope = scope
        self.mode = mode
        self.countries = countries
        self.allowNetworks = allowNetworks
        self.blockNetworks = blockNetworks
        self.noCountry = noCountry
        self.setName = setName
    }

    /// The country rule alone.
    public func allows(country: CountryCode) -> Bool {
        countries.contains(country) == (mode == .allowlist)
    }
}

/// Networks that are allowed before any profile rule is looked at.
public struct TrustedNetworks: Sendable {
    /// Loopback, RFC 1918, link-local, CGNAT (RFC 6598), ULA: never the Internet.
    public static let defaults: [CIDR] = [
        "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10",
        "::1/128", "fe80::/10", "fc00::/7",
    ].map { CIDR($0)! }

    public let networks: [CIDR]

    public init(networks: [CIDR]) { self.networks = networks }

    /// The most specific trusted network holding `address`, if any.
    public func network(containing address: IPAddress) -> CIDR? {
        mostSpecific(of: networks, containing: address)
    }

    public func set(_ family: IPFamily) -> AddressSet { AddressSet(family: family, cidrs: networks) }
}

/// The longest-prefix network of `list` that holds `address` (a plain scan: the
/// lists are an admin's few networks, and a scan allocates nothing per request).
func mostSpecific(of list: [CIDR], containing address: IPAddress) -> CIDR? {
    var best: CIDR?
    for net in list where net.family == address.family && net.first <= address.value && address.value <= net.last {
        if best.map({ net.prefixLength > $0.prefixLength }) ?? true { best = net }
    }
    return best
}
