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
    /// `allow-lists:` and `block-lists:`, feeds of networks that `refresh` keeps current.
    public let feeds: [Feed]
    /// The networks of those feeds as last accepted (`<state-dir>/feeds/`): they
    /// rank with allow-networks and block-networks (the most specific decides; a
    /// block wins over an allow of the same network). Empty until a refresh fetched them.
    public let allowLists: [CIDR]
    public let blockLists: [CIDR]
    /// `countries` as a bit table: the daemon asks once per request, without hashing.
    let countryBits: CountryBitTable

    public init(name: String, scope: Scope, mode: CountryMode, countries: Set<CountryCode>,
                allowNetworks: [CIDR], blockNetworks: [CIDR], noCountry: Verdict, setName: String,
                feeds: [Feed] = [], allowLists: [CIDR] = [], blockLists: [CIDR] = []) {
        self.name = name
        self.scope = scope
        self.mode = mode
        self.countries = countries
        self.allowNetworks = allowNetworks
        self.blockNetworks = blockNetworks
        self.noCountry = noCountry
        self.setName = setName
        self.feeds = feeds
        self.allowLists = allowLists
        self.blockLists = blockLists
        self.countryBits = CountryBitTable(countries)
    }

    /// The same profile with these feed networks.
    public func with(allowLists: [CIDR], blockLists: [CIDR]) -> Profile {
        Profile(name: name, scope: scope, mode: mode, countries: countries, allowNetworks: allowNetworks, blockNetworks: blockNetworks,
                noCountry: noCountry, setName: setName, feeds: feeds, allowLists: allowLists, blockLists: blockLists)
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
    let matcher: NetworkMatcher<Bool>

    public init(networks: [CIDR]) {
        self.networks = networks
        self.matcher = NetworkMatcher(networks.map { ($0, true) }, wins: { _, _ in false })
    }

    /// The most specific trusted network holding `address`, if any.
    public func network(containing address: IPAddress) -> CIDR? {
        matcher.mostSpecific(containing: address)?.0
    }

    public func set(_ family: IPFamily) -> AddressSet { AddressSet(family: family, cidrs: networks) }
}

/// Networks asked for the most specific one holding an address, with a tag each
/// (which list it came from). Networks are nested or disjoint, so they flatten
/// into disjoint segments, each naming the most specific network over it; a
/// request is one binary search, whatever the number of networks (an admin's
/// few, or a feed's tens of thousands), and allocates nothing.
struct NetworkMatcher<Tag: Sendable & Equatable>: Sendable {
    struct Segment: Sendable {
        var first: UInt128
        var last: UInt128
        var index: Int32
    }

    private let networks: [(CIDR, Tag)]
    private let v4: [Segment]
    private let v6: [Segment]

    /// `wins(a, b)`: for the same network twice, true when tag `a` is kept over `b`.
    init(_ items: [(CIDR, Tag)], wins: (Tag, Tag) -> Bool) {
        // Sorted by start, the wider first; a network given twice keeps the winning tag.
        var sorted = items.sorted { ($0.0.family == .v4 ? 0 : 1, $0.0.first, $0.0.prefixLength) < ($1.0.family == .v4 ? 0 : 1, $1.0.first, $1.0.prefixLength) }
        var unique: [(CIDR, Tag)] = []
        unique.reserveCapacity(sorted.count)
        for item in sorted {
            if let last = unique.last, last.0 == item.0 {
                if wins(item.1, last.1) { unique[unique.count - 1] = item }
            } else {
                unique.append(item)
            }
        }
        sorted = unique
        networks = sorted
        v4 = Self.segments(sorted, family: .v4)
        v6 = Self.segments(sorted, family: .v6)
    }

    /// The flattening: a stack of the networks open at the sweep's position.
    private static func segments(_ networks: [(CIDR, Tag)], family: IPFamily) -> [Segment] {
        var out: [Segment] = []
        var stack: [Int] = []
        var cursor: UInt128? = 0  // the first address not yet in a segment; nil: past the end
        func emit(upTo last: UInt128, _ index: Int) {
            guard let from = cursor, from <= last else { return }
            out.append(Segment(first: from, last: last, index: Int32(index)))
            cursor = last == .max ? nil : last + 1
        }
        // A network's remaining addresses, after its last nested one, are its own.
        func close(_ top: Int) { emit(upTo: networks[top].0.last, top) }
        for (i, (cidr, _)) in networks.enumerated() where cidr.family == family {
            while let top = stack.last, networks[top].0.last < cidr.first {
                close(top)
                stack.removeLast()
            }
            if let top = stack.last, cidr.first > 0 { emit(upTo: cidr.first - 1, top) }
            cursor = cidr.first
            stack.append(i)
        }
        while let top = stack.popLast() { close(top) }
        return out
    }

    func mostSpecific(containing address: IPAddress) -> (CIDR, Tag)? {
        let segments = address.family == .v4 ? v4 : v6
        let value = address.value
        // The last segment starting at or before the address.
        var low = 0, high = segments.count
        while low < high {
            let mid = (low + high) / 2
            if segments[mid].first <= value { low = mid + 1 } else { high = mid }
        }
        guard low > 0, value <= segments[low - 1].last else { return nil }
        return networks[Int(segments[low - 1].index)]
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

/// One feed of a profile's `allow-lists:` or `block-lists:`: a URL or a file of
/// networks (NetworkList), fetched by `refresh` with the same conditional GET,
/// checksum, guard and transaction as the country data.
public struct Feed: Sendable, Equatable {
    public enum Action: String, Sendable {
        case allow, block
    }

    /// `name:`, letters, digits, - and _ (it names the kept file).
    public let name: String
    public let action: Action
    /// A `url:` or `file:` source, with `sha256:` / `sha256-url:` as for refresh.sources.
    public let source: RefreshSource
    /// `max-entries:`, the most networks the feed may hold; more is refused.
    public let maxEntries: Int

    public init(name: String, action: Action, source: RefreshSource, maxEntries: Int) {
        self.name = name
        self.action = action
        self.source = source
        self.maxEntries = maxEntries
    }

    public static let defaultMaxEntries = 100_000

    /// Where the accepted networks are kept: `<state-dir>/feeds/<profile>.<action>.<name>`.
    public func file(stateDirectory: String, profile: String) -> String {
        "\(stateDirectory)/feeds/\(profile).\(action.rawValue).\(name)"
    }
}
