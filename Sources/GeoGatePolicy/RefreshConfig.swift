import GeoGateCore
import Yams

/// The `refresh:` section: the sources `geogate refresh` downloads (merged in
/// order, a later one overriding an earlier one where they overlap, as `compile`
/// does), the download limits, the sanity guard and what follows a change.
public struct RefreshConfig: Sendable, Equatable {
    public var sources: [RefreshSource] = []
    /// Downloads, their validators (ETag, Last-Modified) and the lock file.
    public var stateDirectory = "/var/lib/geogate/refresh"
    /// Seconds one download may take (connect, head and body together).
    public var timeoutSeconds = 300
    /// Seconds a download may go without a byte.
    public var idleTimeoutSeconds = 60
    /// Seconds the whole refresh may take, downloads and retries included; the
    /// switch to the new data (a few seconds) is never cut half-way.
    public var deadlineSeconds = 1800
    /// The largest input accepted after decompression, and the largest plain input
    /// file: compile and refresh stay within a few hundred MB on any input.
    public var maxInputMegabytes = 64
    /// The most ranges all sources together may hold.
    public var maxRanges = 1_500_000
    /// The most trie nodes a refresh's compile may build.
    public var maxNodes = 500_000
    /// Further attempts after a 5xx, a 429 or a network error (not after another 4xx).
    public var retries = 3
    /// The first wait before a retry, doubled for each next one.
    public var retryDelayMilliseconds = 2000
    /// A download larger than this is refused.
    public var maxSizeMegabytes = 512
    /// The guard, in percent: the addresses of a family, and of any country a profile names.
    public var maxFamilyChangePercent = 10.0
    public var maxCountryChangePercent = 30.0
    /// A feed (allow-lists, block-lists) whose network count moves by more than
    /// this share from the last accepted is refused (--force takes it); an empty
    /// feed always is.
    public var maxFeedChangePercent = 50.0
    /// Fewer ranges than this (both families) is always refused, even with --force.
    public var minRanges = 1000
    public var reloadDaemon = true
    public var applySets = true
    /// Run by /bin/sh after a change (GEOGATE_TRIE in its environment).
    public var onChange: String?
    /// How many replaced tries are kept for `rollback` (<database>.1 is the newest).
    public var keepPrevious = 3
    /// An HTTP proxy for every download (http://[user:pass@]host:port); nil: the
    /// environment's http_proxy / https_proxy, as curl reads them.
    public var proxy: String?
    /// Hosts reached without the proxy (no_proxy's syntax); nil: $no_proxy.
    public var noProxy: String?
    /// `geogate status` calls live data older than this stale (a degraded state).
    public var staleAfterSeconds = 7 * 86_400
    /// On a compile host: after each refresh, sign the live trie and publish it for the nodes.
    public var publish: PublishConfig?

    /// The one `trie:` source of a fleet node, if that is what this config has.
    public var publishedTrie: RefreshSource? {
        sources.first { if case .trie = $0.kind { true } else { false } }
    }

    public init() {}

    /// Touched at the end of every refresh, whatever its outcome: the daemon's
    /// own schedule (daemon.refresh-interval) counts from it.
    public var lastRunStamp: String { stateDirectory + "/last-run" }
    /// What the last refresh ended with (RefreshRecord), for `geogate status`.
    public var lastRefreshRecord: String { stateDirectory + "/last-refresh" }
}

/// `refresh.publish`: where a compile host publishes its signed trie (`geogate publish`).
public struct PublishConfig: Sendable, Equatable {
    /// The directory a web server serves to the nodes.
    public var directory: String
    /// The Ed25519 private key (`geogate keygen`).
    public var signKey: String
    /// How many publications' tries stay in the directory.
    public var keep = 3

    public init(directory: String, signKey: String) {
        self.directory = directory
        self.signKey = signKey
    }
}

/// One source of `refresh.sources`: a built-in provider, a URL, a local file, or
/// the signed trie a compile host publishes (a fleet node).
public struct RefreshSource: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case provider(Provider)
        case url(String)
        case file(String)
        /// The URL of a publisher's directory (its `manifest` and the tries it names).
        case trie(String)
    }

    /// The built-in providers: their URL patterns, archive layouts and checksums.
    public enum Provider: String, Sendable, CaseIterable {
        case dbipLite = "dbip-lite"
        case maxmind
        case rir
        case ipdeny
        case tor
    }

    public var kind: Kind
    /// A mirror, or a test server, in place of the provider's own address.
    public var baseURL: String?
    /// maxmind: GeoLite2-Country (default), GeoLite2-Country-CSV, GeoIP2-Country, GeoIP2-Country-CSV.
    /// dbip-lite: csv (default) or mmdb. Nil: the provider's default.
    public var edition: String?
    public var accountID: String?
    public var licenseKey: String?
    /// ipdeny: the country zones to fetch.
    public var countries: [CountryCode] = []
    /// A pinned SHA-256 (hex) of the download, or the URL of a sidecar holding it.
    public var sha256: String?
    public var sha256URL: String?
    /// The input format, when it should not be detected (`compile --format`).
    public var format: String?
    /// A `trie:` source's trusted keys: each a public key file's path, or a key
    /// inline ("geogate-ed25519 <base64>"). Several, while a key is rotated.
    public var publicKeys: [String] = []

    public init(kind: Kind) { self.kind = kind }
}

extension Reader {
    func refreshConfig(_ node: Node) throws(ConfigError) -> RefreshConfig {
        var r = RefreshConfig()
        let known: Set<String> = ["sources", "state-dir", "timeout", "idle-timeout", "deadline", "max-input-mb", "max-ranges", "max-nodes", "retries", "retry-delay-ms", "max-size-mb",
                                  "max-family-change", "max-country-change", "max-feed-change", "min-ranges", "reload-daemon", "apply-sets",
                                  "on-change", "keep-previous", "proxy", "no-proxy", "stale-after", "publish"]
        for (k, _, v) in try mapping(node, "refresh", allowed: known) {
            let key = "refresh.\(k)"
            switch k {
            case "sources":
                for (item, itemKey) in try list(v, key) { r.sources.append(try refreshSource(item, itemKey)) }
            case "state-dir": r.stateDirectory = try string(v, key)
            case "timeout": r.timeoutSeconds = try positiveDuration(v, key)
            case "idle-timeout": r.idleTimeoutSeconds = try positiveDuration(v, key)
            case "deadline": r.deadlineSeconds = try positiveDuration(v, key)
            case "max-input-mb": r.maxInputMegabytes = try number(v, key, 1...4096)
            case "max-ranges": r.maxRanges = try number(v, key, 1...100_000_000)
            case "max-nodes": r.maxNodes = try number(v, key, 1...100_000_000)
            case "retries": r.retries = try number(v, key, 0...20)
            case "retry-delay-ms": r.retryDelayMilliseconds = try number(v, key, 0...600_000)
            case "max-size-mb": r.maxSizeMegabytes = try number(v, key, 1...65_536)
            case "max-family-change": r.maxFamilyChangePercent = try percent(v, key)
            case "max-country-change": r.maxCountryChangePercent = try percent(v, key)
            case "max-feed-change": r.maxFeedChangePercent = try percent(v, key)
            case "min-ranges": r.minRanges = try number(v, key, 1...100_000_000)
            case "reload-daemon": r.reloadDaemon = try bool(v, key)
            case "apply-sets": r.applySets = try bool(v, key)
            case "keep-previous": r.keepPrevious = try number(v, key, 0...30)
            case "proxy":
                let proxy = try string(v, key)
                guard !proxy.contains("://") || proxy.lowercased().hasPrefix("http://") else {
                    throw fail(v, key, "\"\(proxy)\": only http:// proxies are supported (HTTPS goes through them with CONNECT)")
                }
                r.proxy = proxy
            case "no-proxy": r.noProxy = try string(v, key)
            case "stale-after": r.staleAfterSeconds = try positiveDuration(v, key)
            case "publish": r.publish = try publishConfig(v, key)
            default: r.onChange = try string(v, key)
            }
        }
        if r.publishedTrie != nil, r.sources.count > 1 {
            throw fail(nil, "refresh.sources", "a trie: source is the only source of a node: the publisher merges the others")
        }
        if r.publishedTrie != nil && r.publish != nil {
            throw fail(nil, "refresh.publish", "a node that takes a published trie does not publish one (only the compile host does)")
        }
        return r
    }

    /// 32 bytes in base64: 43 characters of the alphabet and one "=".
    static func isBase64Of32Bytes(_ text: Substring) -> Bool {
        text.utf8.count == 44 && text.hasSuffix("=") &&
            text.utf8.dropLast().allSatisfy { ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 43 || $0 == 47 }
    }

    func publishConfig(_ node: Node, _ key: String) throws(ConfigError) -> PublishConfig {
        var dir: String?, signKey: String?, keep = 3
        for (k, _, v) in try mapping(node, key, allowed: ["dir", "sign-key", "keep"]) {
            switch k {
            case "dir": dir = try string(v, "\(key).dir")
            case "sign-key": signKey = try string(v, "\(key).sign-key")
            default: keep = try number(v, "\(key).keep", 1...100)
            }
        }
        guard let dir, let signKey else { throw fail(node, key, "needs dir (what the web server serves) and sign-key (geogate keygen)") }
        var p = PublishConfig(directory: dir, signKey: signKey)
        p.keep = keep
        return p
    }

    func positiveDuration(_ node: Node, _ key: String) throws(ConfigError) -> Int {
        let seconds = try duration(node, key)
        guard seconds > 0 else { throw fail(node, key, "must be at least 1 second") }
        return seconds
    }

    func percent(_ node: Node, _ key: String) throws(ConfigError) -> Double {
        let text = try string(node, key)
        guard let p = Double(text.hasSuffix("%") ? String(text.dropLast()) : text), p >= 0, p <= 100 else {
            throw fail(node, key, "\"\(text)\" is not a percentage in 0...100")
        }
        return p
    }

    func refreshSource(_ node: Node, _ key: String) throws(ConfigError) -> RefreshSource {
        let known: Set<String> = ["provider", "url", "file", "trie", "base-url", "edition", "account-id", "license-key",
                                  "license-key-file", "countries", "sha256", "sha256-url", "format", "public-key"]
        let entries = try mapping(node, key, allowed: known)
        let kinds = entries.filter { ["provider", "url", "file", "trie"].contains($0.0) }
        guard kinds.count == 1, let (kindName, _, kindValue) = kinds.first else {
            throw fail(node, key, "each source has exactly one of provider, url, file or trie")
        }
        let value = try string(kindValue, "\(key).\(kindName)")
        var source: RefreshSource
        switch kindName {
        case "provider":
            guard let p = RefreshSource.Provider(rawValue: value) else {
                throw fail(kindValue, "\(key).provider", "unknown provider \"\(value)\" (known: \(RefreshSource.Provider.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            source = RefreshSource(kind: .provider(p))
        case "url":
            guard value.hasPrefix("http://") || value.hasPrefix("https://") else {
                throw fail(kindValue, "\(key).url", "\"\(value)\" is not an http:// or https:// URL")
            }
            source = RefreshSource(kind: .url(value))
        case "trie":
            guard value.hasPrefix("http://") || value.hasPrefix("https://") else {
                throw fail(kindValue, "\(key).trie", "\"\(value)\" is not an http:// or https:// URL (the publisher's directory)")
            }
            source = RefreshSource(kind: .trie(value))
        default:
            source = RefreshSource(kind: .file(value))
        }
        for (k, _, v) in entries where k != kindName {
            let itemKey = "\(key).\(k)"
            switch k {
            case "base-url": source.baseURL = try string(v, itemKey)
            case "edition": source.edition = try string(v, itemKey)
            case "account-id": source.accountID = try string(v, itemKey)
            case "license-key": source.licenseKey = try string(v, itemKey)
            case "license-key-file":
                let path = try string(v, itemKey)
                guard let bytes = try? readWholeFile(path, limit: 4096),
                      let text = String(validating: bytes, as: UTF8.self)?.trimmingWhitespace(), !text.isEmpty else {
                    throw fail(v, itemKey, "cannot read a license key from \(path)")
                }
                source.licenseKey = text
            case "countries": source.countries = try countries(v, itemKey).sorted()
            case "sha256":
                let hex = try string(v, itemKey).lowercased()
                guard hex.count == 64, hex.allSatisfy({ $0.isHexDigit }) else { throw fail(v, itemKey, "expected 64 hex digits") }
                source.sha256 = hex
            case "sha256-url": source.sha256URL = try string(v, itemKey)
            case "public-key":
                for (item, k) in try list(v, itemKey) {
                    let spec = try string(item, k)
                    if spec.hasPrefix("geogate-ed25519 ") {
                        // Inline: checked here; a key file is read (and checked) by each refresh.
                        let words = spec.split(separator: " ")
                        guard words.count == 2, Self.isBase64Of32Bytes(words[1]) else {
                            throw fail(item, k, "not a geogate-ed25519 public key (geogate keygen writes one to geogate.pub)")
                        }
                    } else if !spec.hasPrefix("/") {
                        throw fail(item, k, "\"\(spec)\": give the public key file's absolute path, or the key inline (\"geogate-ed25519 <base64>\")")
                    }
                    source.publicKeys.append(spec)
                }
            default: source.format = try string(v, itemKey)
            }
        }
        if case .trie = source.kind {
            guard !source.publicKeys.isEmpty else {
                throw fail(node, key, "a trie: source needs public-key: the keys it trusts (a node never takes an unsigned trie)")
            }
            let other = entries.map(\.0).filter { !["trie", "public-key"].contains($0) }
            guard other.isEmpty else { throw fail(node, key, "a trie: source takes only public-key, not \(other.joined(separator: ", "))") }
        } else if !source.publicKeys.isEmpty {
            throw fail(node, key, "public-key belongs to a trie: source")
        }
        if case .provider(.maxmind) = source.kind, source.accountID == nil || source.licenseKey == nil {
            throw fail(node, key, "the maxmind provider needs account-id and license-key (or license-key-file)")
        }
        if case .provider(.dbipLite) = source.kind, let edition = source.edition, edition != "csv" && edition != "mmdb" {
            let node = entries.first { $0.0 == "edition" }?.2
            throw fail(node, "\(key).edition", "dbip-lite comes as csv or mmdb, not \"\(edition)\"")
        }
        if case .provider(.ipdeny) = source.kind, source.countries.isEmpty {
            throw fail(node, key, "the ipdeny provider needs countries: [..]")
        }
        return source
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
