import GeoGateCore
import Yams
#if canImport(Glibc)
import Glibc
#endif

/// A config error: the file, the line (when the YAML parser knows it) and the key
/// path, e.g. `geogate.conf:12: profiles.full.allow-countries[2]: unknown country code "XX"`.
public struct ConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    public let path: String
    public let line: Int?
    public let key: String
    public let message: String

    /// One printable line: the key and the message may quote the file (an unknown
    /// key, a YAML parser's excerpt), so every part is escaped and cut (SafeText).
    public var description: String {
        let shownKey = key.isEmpty ? "" : "\(SafeText.field(key)): "
        return "\(SafeText.field(path, limit: 300))\(line.map { ":\($0)" } ?? ""): \(shownKey)\(SafeText.field(message, limit: 1024))"
    }
}

/// The admin's config file (YAML, parsed by Yams): trusted networks and profiles.
/// Unknown keys are errors, not ignored: a typo in a firewall config must not
/// silently change what is let in. The full example is Data/geogate.conf.
public struct GeoGateConfig: Sendable {
    public let path: String
    public let trusted: TrustedNetworks
    /// In file order (then the drop-ins).
    public private(set) var profiles: [Profile]
    /// `database:`, the trie file, when the config names it.
    public let database: String?
    /// `daemon:`, the lookup daemon's socket and limits.
    public let daemon: DaemonConfig
    /// `refresh:`, where `geogate refresh` gets its data and how it guards the swap.
    public let refresh: RefreshConfig
    /// `runtime-dir:`, where the run lock and the record of geogate's kernel sets
    /// live (/run/geogate: emptied at boot, as the kernel's sets are).
    public var runtimeDirectory = "/run/geogate"
    /// `state-dir:`, live state that outlives a reboot: whether the filter was
    /// switched open (`apply --open`), so the boot unit and refresh keep it so.
    public var stateDirectory = GeoGateConfig.defaultStateDirectory
    /// `lock-wait:`, how long a command waits for another holding the run lock.
    public var lockWaitSeconds = 600
    /// `adopt-sets:`, live sets geogate did not create that it may replace.
    public var adoptSets: [String] = []
    /// `backend:`, where `apply` and `refresh` load the full-server sets: ipset
    /// (libipset, for iptables rules) or nft (libnftables, table inet geogate).
    public var backend = "ipset"
    /// `entries:`, run-time allow and block entries (`geogate allow|block|unlist`).
    public var entries = EntriesConfig()
    /// `profiles-dir:`, drop-in profiles, one a file (`<name>.conf`). Default:
    /// `profiles.d` beside the config file, read when it exists (watched by the
    /// daemon either way). nil for a config parsed from text.
    public var profilesDirectory: String?
    /// The drop-in files read, in the order their profiles come (after the main
    /// file's): what the daemon watches for a reload.
    public var dropInFiles: [String] = []

    /// The one lock of `apply`, `refresh` and `rollback`.
    public var lockFile: String { runtimeDirectory + "/geogate.lock" }
    /// The record of the sets geogate created (SetRegistry).
    public var setRecordFile: String { runtimeDirectory + "/sets" }
    /// Present while the full-server filter is switched open (`apply --open`).
    public var openMarkerFile: String { stateDirectory + "/filter-open" }
    /// The run-time entries of every profile (RuntimeEntries).
    public var entriesFile: String { stateDirectory + "/entries" }

    /// ipset's limit is 31 characters (temporary sets have names of their own).
    public static let maxSetNameLength = 31

    public func profile(named name: String) -> Profile? { profiles.first { $0.name == name } }

    /// The same config with these profiles (a refresh plans the sets of new feeds with it).
    public func replacingProfiles(_ profiles: [Profile]) -> GeoGateConfig {
        var copy = self
        copy.profiles = profiles
        return copy
    }

    /// The trie file to use: `--db` when given, else `database:`; the error says how to name one.
    public func trieFile(override: String?) throws(ConfigError) -> String {
        guard let file = override ?? database else {
            throw ConfigError(path: path, line: nil, key: "database", message: "no trie file: give --db FILE or set database: here")
        }
        return file
    }

    public func policy(_ profile: Profile) -> Policy { Policy(profile: profile, trusted: trusted) }

    /// The policy with the profile's live run-time entries.
    public func policy(_ profile: Profile, entries: RuntimeEntries, now: Int64) -> Policy {
        Policy(profile: profile, trusted: trusted, entries: EntryTable(entries.entries(profile: profile.name, now: now)))
    }

    public static func load(path: String) throws(ConfigError) -> GeoGateConfig {
        try parse(try readText(path, limit: 4 << 20), path: path, dropIns: true)
    }

    /// A config or drop-in file as text: at most `limit` bytes of UTF-8, without
    /// the byte order mark editors on Windows write.
    static func readText(_ path: String, limit: Int) throws(ConfigError) -> String {
        let bytes: [UInt8]
        do { bytes = try readWholeFile(path, limit: limit) } catch {
            throw ConfigError(path: path, line: nil, key: "", message: error.errno == EFBIG ? "larger than \(limit >> 20) MiB" : "cannot read: \(String(cString: strerror(error.errno)))")
        }
        let body = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? Array(bytes.dropFirst(3)) : bytes
        guard let text = String(validating: body, as: UTF8.self) else {
            throw ConfigError(path: path, line: nil, key: "", message: "not UTF-8 text")
        }
        return text
    }

    /// The YAML's root node; an empty document is `empty`'s error.
    static func compose(_ text: String, path: String, empty: String) throws(ConfigError) -> Node {
        do {
            guard let node = try Yams.compose(yaml: text) else { throw ConfigError(path: path, line: nil, key: "", message: empty) }
            return node
        } catch let error as ConfigError {
            throw error
        } catch let error as YamlError {
            throw ConfigError(path: path, line: yamlLine(error), key: "", message: yamlMessage(error))
        } catch {
            throw ConfigError(path: path, line: nil, key: "", message: "\(error)")
        }
    }

    /// `dropIns`: also read the profiles of `profiles-dir` (a config read from a
    /// file; tests and the fuzzer parse text alone).
    public static func parse(_ text: String, path: String, dropIns: Bool = false) throws(ConfigError) -> GeoGateConfig {
        let root = try compose(text, path: path, empty: "empty config: at least one profile is needed")
        return try Reader(path: path).config(root, dropIns: dropIns)
    }

    public static let defaultStateDirectory = "/var/lib/geogate"

    /// `profile` with the networks of its feeds as kept in the state directory (a
    /// feed not fetched yet has none). A kept file that does not parse is an error
    /// naming it: it was written by geogate, so it was changed by hand.
    public static func withStoredFeeds(_ profile: Profile, stateDirectory: String) throws(ConfigError) -> Profile {
        guard !profile.feeds.isEmpty else { return profile }
        var allow: [CIDR] = [], block: [CIDR] = []
        for feed in profile.feeds {
            let path = feed.file(stateDirectory: stateDirectory, profile: profile.name)
            guard access(path, F_OK) == 0 else { continue }
            do {
                let networks = try NetworkList.parse(try readWholeFile(path, limit: 64 << 20), name: path, maxEntries: feed.maxEntries)
                if feed.action == .allow { allow += networks } else { block += networks }
            } catch {
                throw ConfigError(path: path, line: nil, key: "profiles.\(profile.name).\(feed.action.rawValue)-lists", message: "\(error)")
            }
        }
        return profile.with(allowLists: allow, blockLists: block)
    }

    /// The largest number of drop-in profiles, and of bytes in one.
    public static let maxDropIns = 10_000
    static let maxDropInBytes = 1 << 20

    /// The profiles of a drop-in directory: every `<name>.conf` (other names, and
    /// hidden files, as dpkg and editors leave them, are skipped), sorted by name,
    /// each a YAML mapping with the keys of a profile. Errors name the file.
    static func dropInProfiles(_ directory: String) throws(ConfigError) -> [(Profile, String)] {
        guard let dir = opendir(directory) else {
            throw ConfigError(path: directory, line: nil, key: "profiles-dir", message: "cannot read the directory: \(String(cString: strerror(errno)))")
        }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.hasSuffix(".conf"), !name.hasPrefix(".") else { continue }
            names.append(name)
            if names.count > maxDropIns { break }
        }
        closedir(dir)
        guard names.count <= maxDropIns else {
            throw ConfigError(path: directory, line: nil, key: "profiles-dir", message: "more than \(maxDropIns) drop-in profiles")
        }
        var out: [(Profile, String)] = []
        for name in names.sorted() {
            let path = directory + "/" + name
            let root = try compose(try readText(path, limit: maxDropInBytes), path: path,
                                   empty: "empty: a drop-in holds one profile's keys (scope, allow-countries, ...)")
            out.append((try Reader(path: path).profile(String(name.dropLast(5)), root, root), path))
        }
        return out
    }

    static func yamlLine(_ error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): return mark.line
        case .duplicatedKeysInMapping(_, let context): return context.mark.line
        default: return nil
        }
    }

    static func yamlMessage(_ error: YamlError) -> String {
        switch error {
        case .scanner(let context, let problem, _, _), .parser(let context, let problem, _, _),
             .composer(let context, let problem, _, _):
            return "YAML: \(problem)\(context.map { " \($0.text)" } ?? "")"
        case .duplicatedKeysInMapping(let duplicates, _):
            return "duplicate key\(duplicates.count > 1 ? "s" : "") \(duplicates.map { "\"\($0)\"" }.joined(separator: ", "))"
        default:
            return "YAML: \(error)"
        }
    }
}

/// The `daemon:` section: where `geogate serve` listens and its limits.
/// `entries:`, run-time allow and block entries.
public struct EntriesConfig: Sendable, Equatable {
    /// `max-per-profile:`, live entries a profile may hold; the next is refused, so
    /// a caller that may add entries cannot fill the kernel's sets. 0 turns
    /// run-time entries off.
    public var maxPerProfile = 1000
    /// `group:`, whose members may add and remove entries over the daemon's socket
    /// (root and the daemon's own user always may); nil: only those two.
    public var group: String?
    public init() {}
}

public struct DaemonConfig: Sendable, Equatable {
    /// Which decisions the daemon logs, one stable line each (for fail2ban).
    public enum DecisionLogging: String, Sendable, Equatable {
        case none, deny, all
    }

    public var socket = "/run/geogate/geogate.sock"
    /// `log-decisions:` none (the default), deny, or all.
    public var logDecisions = DecisionLogging.none
    /// Octal permission bits of the socket file.
    public var socketMode = 0o660
    /// The group that may connect (e.g. the web server's); nil keeps the daemon's.
    public var socketGroup: String?
    public var idleTimeoutSeconds = 60
    public var maxConnections = 1024
    /// The nginx auth_request endpoint's socket (HTTP), off unless set.
    public var httpSocket: String?
    /// Event-loop threads. One answers a couple of hundred thousand requests a
    /// second (Benchmarks/); more only help on many cores under heavy load.
    public var threads = 1
    /// How often (seconds) to look whether the trie or config file was replaced,
    /// and reload if so; 0 turns it off (SIGHUP and RELOAD still work).
    public var watchIntervalSeconds = 5
    /// How often the daemon runs `geogate refresh` itself (for hosts without the
    /// systemd timer); 0, the default, leaves refreshing to the timer.
    public var refreshIntervalSeconds = 0
    /// Up to this much is added at random to each wait, so many hosts do not ask
    /// the provider at the same moment; nil: a tenth of the interval.
    public var refreshJitterSeconds: Int?
    public init() {}
}

/// Walks the YAML nodes, keeping the key path and line for each error.
struct Reader {
    let path: String

    func fail(_ node: Node?, _ key: String, _ message: String) -> ConfigError {
        ConfigError(path: path, line: node?.mark?.line, key: key, message: message)
    }

    func mapping(_ node: Node, _ key: String, allowed: Set<String>) throws(ConfigError) -> [(String, Node, Node)] {
        guard case .mapping(let m) = node else { throw fail(node, key, "expected a mapping (key: value lines)") }
        var out: [(String, Node, Node)] = []
        for (k, v) in m {
            guard let name = k.scalar?.string else { throw fail(k, key, "keys must be plain names") }
            let full = key.isEmpty ? name : "\(key).\(name)"
            guard allowed.contains(name) else {
                throw fail(k, full, "unknown key (known here: \(allowed.sorted().joined(separator: ", ")))")
            }
            out.append((name, k, v))
        }
        return out
    }

    func string(_ node: Node, _ key: String) throws(ConfigError) -> String {
        guard let s = node.scalar?.string, !s.isEmpty else { throw fail(node, key, "expected a value") }
        return s
    }

    func bool(_ node: Node, _ key: String) throws(ConfigError) -> Bool {
        switch try string(node, key).lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        case let other: throw fail(node, key, "expected true or false, not \"\(other)\"")
        }
    }

    /// A list; a single scalar counts as a list of one.
    func list(_ node: Node, _ key: String) throws(ConfigError) -> [(Node, String)] {
        if case .scalar = node { return [(node, key)] }
        guard case .sequence(let s) = node else { throw fail(node, key, "expected a list, like [a, b]") }
        return s.enumerated().map { ($0.element, "\(key)[\($0.offset)]") }
    }

    func networks(_ node: Node, _ key: String) throws(ConfigError) -> [CIDR] {
        var out: [CIDR] = []
        for (item, itemKey) in try list(node, key) {
            let text = try string(item, itemKey)
            var bytes = Array(text.utf8)
            let parsed = bytes.withUnsafeMutableBufferPointer { CIDR.parse(UnsafeBufferPointer($0)) }
            switch parsed {
            case .success(let cidr): out.append(cidr)
            case .failure(.badAddress): throw fail(item, itemKey, "\"\(text)\" is not an IP address or network")
            case .failure(.badPrefixLength): throw fail(item, itemKey, "\"\(text)\": bad prefix length")
            case .failure(.hostBitsSet): throw fail(item, itemKey, "\"\(text)\": host bits set after the prefix")
            }
        }
        return out
    }

    func countries(_ node: Node, _ key: String) throws(ConfigError) -> Set<CountryCode> {
        var out = Set<CountryCode>()
        for (item, itemKey) in try list(node, key) {
            let text = try string(item, itemKey)
            guard let code = CountryCode(text.uppercased()) else {
                throw fail(item, itemKey, "unknown country code \"\(text)\" (ISO 3166-1 alpha-2, or a documented special code)")
            }
            out.insert(code)
        }
        return out
    }

    func config(_ root: Node, dropIns: Bool = false) throws(ConfigError) -> GeoGateConfig {
        var trusted = TrustedNetworks.defaults
        var profiles: [Profile] = []
        var database: String?
        var profilesNode: Node?
        var daemon = DaemonConfig()
        var daemonNode: Node?
        var refresh = RefreshConfig()
        var runtimeDirectory: String?
        var stateDirectory: String?
        var lockWait: Int?
        var adoptSets: [String] = []
        var backend = "ipset"
        var entries = EntriesConfig()
        var profilesDirectory: String?
        let known: Set<String> = ["trusted", "profiles", "database", "daemon", "refresh", "runtime-dir", "state-dir", "lock-wait", "adopt-sets", "backend",
                                  "entries", "profiles-dir"]
        for (name, _, value) in try mapping(root, "", allowed: known) {
            switch name {
            case "database": database = try string(value, name)
            case "runtime-dir": runtimeDirectory = try string(value, name)
            case "state-dir": stateDirectory = try string(value, name)
            case "lock-wait": lockWait = try duration(value, name)
            case "backend":
                backend = try string(value, name)
                guard backend == "ipset" || backend == "nft" else { throw fail(value, name, "\"\(backend)\" is not ipset or nft") }
            case "adopt-sets":
                for (item, itemKey) in try list(value, name) { adoptSets.append(try string(item, itemKey)) }
            case "daemon": daemon = try daemonConfig(value); daemonNode = value
            case "refresh": refresh = try refreshConfig(value)
            case "profiles-dir":
                profilesDirectory = try string(value, name)
            case "entries":
                for (k, _, v) in try mapping(value, "entries", allowed: ["max-per-profile", "group"]) {
                    if k == "group" {
                        let group = try string(v, "entries.group")
                        guard !group.isEmpty, group.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != 0x3A }) else {
                            throw fail(v, "entries.group", "not a group name")
                        }
                        entries.group = group
                    } else {
                        let text = try string(v, "entries.max-per-profile")
                        guard let n = Int(text), n >= 0, n <= 1_000_000 else { throw fail(v, "entries.max-per-profile", "\"\(text)\" is not a count from 0 to 1000000") }
                        entries.maxPerProfile = n
                    }
                }
            case "trusted":
                var useDefaults = true
                var extra: [CIDR] = []
                for (k, _, v) in try mapping(value, "trusted", allowed: ["defaults", "networks"]) {
                    if k == "defaults" { useDefaults = try bool(v, "trusted.defaults") } else { extra = try networks(v, "trusted.networks") }
                }
                trusted = (useDefaults ? TrustedNetworks.defaults : []) + extra
            default:
                profilesNode = value
                for (profileName, keyNode, body) in try profileEntries(value) {
                    profiles.append(try profile(profileName, keyNode, body))
                }
            }
        }
        // Drop-ins: profiles-dir, else profiles.d beside this file when it exists.
        var dropInFiles: [String] = []
        let directory = profilesDirectory ?? ((path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : ".") + "/profiles.d")
        if dropIns && (profilesDirectory != nil || access(directory, F_OK) == 0) {
            var seen = Set(profiles.map(\.name))
            for (profile, file) in try GeoGateConfig.dropInProfiles(directory) {
                guard seen.insert(profile.name).inserted else {
                    throw ConfigError(path: file, line: nil, key: "profiles.\(profile.name)",
                                      message: "profile \(profile.name) is also defined \(profiles.contains { $0.name == profile.name } ? "in \(path)" : "by another drop-in")")
                }
                profiles.append(profile)
                dropInFiles.append(file)
            }
        }
        guard !profiles.isEmpty else { throw fail(profilesNode ?? root, "profiles", "at least one profile is needed (here or in \(directory))") }
        // The feeds' networks as the last refresh accepted them.
        if dropIns {
            let state = stateDirectory ?? GeoGateConfig.defaultStateDirectory
            profiles = try profiles.map { p throws(ConfigError) in try GeoGateConfig.withStoredFeeds(p, stateDirectory: state) }
        }
        var setNames: [String: String] = [:]
        for p in profiles where p.scope == .fullServer {
            if let other = setNames[p.setName] {
                let file = zip(profiles.suffix(dropInFiles.count), dropInFiles).first { $0.0.name == p.name }?.1
                throw ConfigError(path: file ?? path, line: nil, key: "profiles.\(p.name).set-name",
                                  message: "set name \"\(p.setName)\" is also used by profile \(other)")
            }
            setNames[p.setName] = p.name
        }
        if daemon.refreshIntervalSeconds > 0 && refresh.sources.isEmpty {
            throw fail(daemonNode, "daemon.refresh-interval", "is set, but refresh.sources lists nothing to refresh from")
        }
        var config = GeoGateConfig(path: path, trusted: TrustedNetworks(networks: trusted), profiles: profiles, database: database,
                                   daemon: daemon, refresh: refresh)
        if let runtimeDirectory { config.runtimeDirectory = runtimeDirectory }
        if let stateDirectory { config.stateDirectory = stateDirectory }
        if let lockWait { config.lockWaitSeconds = lockWait }
        config.adoptSets = adoptSets
        config.backend = backend
        config.entries = entries
        config.profilesDirectory = dropIns ? directory : nil
        config.dropInFiles = dropInFiles
        return config
    }

    func daemonConfig(_ node: Node) throws(ConfigError) -> DaemonConfig {
        var d = DaemonConfig()
        let known: Set<String> = ["socket", "socket-mode", "socket-group", "idle-timeout", "max-connections", "http-socket", "watch-interval", "threads",
                                  "refresh-interval", "refresh-jitter", "log-decisions"]
        for (k, _, v) in try mapping(node, "daemon", allowed: known) {
            let key = "daemon.\(k)"
            switch k {
            case "socket": d.socket = try string(v, key)
            case "socket-mode":
                let text = try string(v, key)
                guard let mode = Int(text, radix: 8), mode >= 0, mode <= 0o777 else { throw fail(v, key, "\"\(text)\" is not an octal mode like 0660") }
                d.socketMode = mode
            case "socket-group": d.socketGroup = try string(v, key)
            case "http-socket": d.httpSocket = try string(v, key)
            case "idle-timeout": d.idleTimeoutSeconds = try number(v, key, 1...86_400)
            case "watch-interval": d.watchIntervalSeconds = try number(v, key, 0...86_400)
            case "threads": d.threads = try number(v, key, 1...64)
            case "refresh-interval": d.refreshIntervalSeconds = try duration(v, key)
            case "refresh-jitter": d.refreshJitterSeconds = try duration(v, key)
            case "log-decisions":
                let text = try string(v, key)
                guard let mode = DaemonConfig.DecisionLogging(rawValue: text) else {
                    throw fail(v, key, "\"\(text)\" is not none, deny or all")
                }
                d.logDecisions = mode
            default: d.maxConnections = try number(v, key, 1...100_000)
            }
        }
        return d
    }

    func number(_ node: Node, _ key: String, _ range: ClosedRange<Int>) throws(ConfigError) -> Int {
        let text = try string(node, key)
        guard let n = Int(text), range.contains(n) else { throw fail(node, key, "\"\(text)\" is not a number in \(range.lowerBound)...\(range.upperBound)") }
        return n
    }

    /// Seconds, written as 3600, 90s, 30m, 6h or 1d (at most 366 days).
    func duration(_ node: Node, _ key: String) throws(ConfigError) -> Int {
        let text = try string(node, key)
        let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        let unit = text.last.flatMap { units[$0] }
        let digits = unit == nil ? Substring(text) : text.dropLast()
        guard let n = Int(digits), n >= 0, n <= 366 * 86_400 / (unit ?? 1) else {
            throw fail(node, key, "\"\(text)\" is not a duration like 3600, 90s, 30m, 6h or 1d")
        }
        return n * (unit ?? 1)
    }

    func profileEntries(_ node: Node) throws(ConfigError) -> [(String, Node, Node)] {
        guard case .mapping(let m) = node else { throw fail(node, "profiles", "expected a mapping of profile names") }
        return m.map { ($0.key.scalar?.string ?? "", $0.key, $0.value) }
    }

    func profile(_ name: String, _ keyNode: Node, _ body: Node) throws(ConfigError) -> Profile {
        let key = "profiles.\(name)"
        guard !name.isEmpty, name.count <= 20,
              name.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x5F }) else {
            throw fail(keyNode, key, "a profile name is 1-20 characters of a-z, 0-9, - and _")
        }
        var scope: Scope?
        var allowCountries: Set<CountryCode>?
        var denyCountries: Set<CountryCode>?
        var allowNetworks: [CIDR] = []
        var blockNetworks: [CIDR] = []
        var noCountry = Verdict.deny
        var setName = "geogate-\(name)"
        var setNameNode: Node?
        var confirmEmpty = false
        var feeds: [Feed] = []
        let known: Set<String> = ["scope", "allow-countries", "deny-countries", "allow-networks", "block-networks",
                                  "no-country", "set-name", "confirm-empty", "allow-lists", "block-lists"]
        for (k, _, v) in try mapping(body, key, allowed: known) {
            let full = "\(key).\(k)"
            switch k {
            case "scope":
                let text = try string(v, full)
                guard let s = Scope(rawValue: text) else { throw fail(v, full, "\"\(text)\" is not full-server or web-only") }
                scope = s
            case "allow-countries": allowCountries = try countries(v, full)
            case "deny-countries": denyCountries = try countries(v, full)
            case "allow-networks": allowNetworks = try networks(v, full)
            case "block-networks": blockNetworks = try networks(v, full)
            case "no-country":
                let text = try string(v, full)
                guard let verdict = Verdict(rawValue: text) else { throw fail(v, full, "\"\(text)\" is not allow or deny") }
                noCountry = verdict
            case "set-name":
                setName = try string(v, full)
                setNameNode = v
            case "allow-lists", "block-lists":
                for (item, itemKey) in try list(v, full) {
                    let feed = try feed(item, itemKey, action: k == "allow-lists" ? .allow : .block)
                    guard !feeds.contains(where: { $0.name == feed.name }) else { throw fail(item, itemKey, "a second feed named \(feed.name)") }
                    feeds.append(feed)
                }
            default:  // confirm-empty
                confirmEmpty = try bool(v, full)
            }
        }
        guard let scope else { throw fail(body, "\(key).scope", "missing: full-server or web-only") }
        let mode: CountryMode
        let countries: Set<CountryCode>
        switch (allowCountries, denyCountries) {
        case (let a?, nil): mode = .allowlist; countries = a
        case (nil, let d?): mode = .blocklist; countries = d
        case (nil, nil): throw fail(body, key, "needs allow-countries (allowlist) or deny-countries (blocklist)")
        case (.some, .some): throw fail(body, key, "has both allow-countries and deny-countries; pick one mode")
        }
        for net in allowNetworks where blockNetworks.contains(net) {
            throw fail(body, "\(key).block-networks", "\(net) is also in allow-networks")
        }
        // A profile that can let nobody in (but trusted networks) locks everyone out.
        if mode == .allowlist && countries.isEmpty && allowNetworks.isEmpty && noCountry == .deny && !confirmEmpty {
            throw fail(body, key, "allows no country and no network: everyone but trusted networks would be denied (set confirm-empty: true if that is intended)")
        }
        if scope == .fullServer {
            guard setName.count + "-v4".count <= GeoGateConfig.maxSetNameLength else {
                throw fail(setNameNode ?? keyNode, setNameNode == nil ? key : "\(key).set-name",
                           "set name \"\(setName)-v4\" is over ipset's \(GeoGateConfig.maxSetNameLength) characters")
            }
            guard setName.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x27 }) else {
                throw fail(setNameNode ?? keyNode, "\(key).set-name", "use printable characters without spaces or quotes")
            }
        }
        return Profile(name: name, scope: scope, mode: mode, countries: countries, allowNetworks: allowNetworks,
                       blockNetworks: blockNetworks, noCountry: noCountry, setName: setName, feeds: feeds)
    }

    /// One item of `allow-lists:` / `block-lists:`: `name:`, one of `url:` or
    /// `file:`, and `sha256:`, `sha256-url:`, `max-entries:` as wanted.
    func feed(_ node: Node, _ key: String, action: Feed.Action) throws(ConfigError) -> Feed {
        let entries = try mapping(node, key, allowed: ["name", "url", "file", "sha256", "sha256-url", "max-entries"])
        guard let nameNode = entries.first(where: { $0.0 == "name" })?.2 else { throw fail(node, key, "a feed needs a name:") }
        let name = try string(nameNode, "\(key).name")
        guard !name.isEmpty, name.utf8.count <= 40,
              name.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x5F }) else {
            throw fail(nameNode, "\(key).name", "a feed name is 1-40 characters of a-z, 0-9, - and _")
        }
        var maxEntries = Feed.defaultMaxEntries
        if let v = entries.first(where: { $0.0 == "max-entries" })?.2 { maxEntries = try number(v, "\(key).max-entries", 1...1_000_000) }
        // The rest is a refresh source of kind url or file.
        var sourceEntries = entries.filter { $0.0 != "name" && $0.0 != "max-entries" }
        guard sourceEntries.filter({ $0.0 == "url" || $0.0 == "file" }).count == 1 else { throw fail(node, key, "a feed has exactly one of url or file") }
        sourceEntries.sort { $0.0 < $1.0 }
        var source: RefreshSource?
        for (k, _, v) in sourceEntries where k == "url" || k == "file" {
            let value = try string(v, "\(key).\(k)")
            if k == "url" {
                guard value.hasPrefix("http://") || value.hasPrefix("https://") else { throw fail(v, "\(key).url", "\"\(value)\" is not an http:// or https:// URL") }
                source = RefreshSource(kind: .url(value))
            } else {
                source = RefreshSource(kind: .file(value))
            }
        }
        for (k, _, v) in sourceEntries where k == "sha256" || k == "sha256-url" {
            let value = try string(v, "\(key).\(k)")
            if k == "sha256" {
                guard value.count == 64, value.allSatisfy({ $0.isHexDigit }) else { throw fail(v, "\(key).sha256", "expected 64 hex digits") }
                source?.sha256 = value.lowercased()
            } else {
                source?.sha256URL = value
            }
        }
        return Feed(name: name, action: action, source: source!, maxEntries: maxEntries)
    }
}
