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
    /// `countries` as a bit table: the daemon asks once per request, without hashing.
    let countryBits: CountryBitTable

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
        self.countryBits = CountryBitTable(countries)
    }

    /// The country rule alone.
    public func allows(country: CountryCode) -> Bool {
        countryBits.contains(country) == (mode == .allowlist)
    }
}

/// A set of country codes as one bit per possible code: a letter, then a letter
/// or digit (what `CountryCode` accepts), 26 × 43 bits.
struct CountryBitTable: Sendable {
    private var words = [UInt64](repeating: 0, count: (26 * 43 + 63) / 64)

    init(_ codes: Set<CountryCode>) {
        for code in codes {
            guard let bit = Self.bit(code) else { continue }
            words[bit >> 6] |= 1 << UInt64(bit & 63)
        }
    }

    static func bit(_ code: CountryCode) -> Int? {
        let first = Int(code.rawValue >> 8) - 0x41, second = Int(code.rawValue & 0xFF) - 0x30
        guard (0..<26).contains(first), (0..<43).contains(second) else { return nil }
        return first * 43 + second
    }

    func contains(_ code: CountryCode) -> Bool {
        guard let bit = Self.bit(code) else { return false }
        return words[bit >> 6] & (1 << UInt64(bit & 63)) != 0
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
    let matcher: NetworkMatcher

    public init(networks: [CIDR]) {
        self.networks = networks
        self.matcher = NetworkMatcher(networks)
    }

    /// The most specific trusted network holding `address`, if any.
    public func network(containing address: IPAddress) -> CIDR? {
        matcher.mostSpecific(containing: address)
    }

    public func set(_ family: IPFamily) -> AddressSet { AddressSet(family: family, cidrs: networks) }
}

/// A list of networks asked for the longest prefix holding an address: a plain
/// scan (the lists are an admin's few networks, and a scan allocates nothing per
/// request) over bounds worked out once, one family at a time.
struct NetworkMatcher: Sendable {
    struct Entry: Sendable {
        var first: UInt128
        var last: UInt128
        var network: CIDR
    }

    private let v4: [Entry]
    private let v6: [Entry]

    init(_ networks: [CIDR]) {
        let entries = networks.map { Entry(first: $0.first, last: $0.last, network: $0) }
        v4 = entries.filter { $0.network.family == .v4 }
        v6 = entries.filter { $0.network.family == .v6 }
    }

    func mostSpecific(containing address: IPAddress) -> CIDR? {
        var best: Entry?
        for entry in address.family == .v4 ? v4 : v6 where entry.first <= address.value && address.value <= entry.last {
            if best.map({ entry.network.prefixLength > $0.network.prefixLength }) ?? true { best = entry }
        }
        return best?.network
    }
}

extension Profile {
    /// The kernel sets of the profile's run-time entries, `<set-name>-rt-block-v4`
    /// and so on; nil when such a name would be over ipset's 31 characters (a long
    /// set-name): that profile's run-time entries are then refused.
    public func runtimeSetName(_ action: RuntimeEntry.Action, _ family: IPFamily) -> String? {
        let name = "\(setName)-rt-\(action.rawValue)-v\(family == .v4 ? 4 : 6)"
        return name.utf8.count <= GeoGateConfig.maxSetNameLength ? name : nil
    }
}
