import ArgumentParser
import Crypto
import Foundation
import GeoGateCore
import GeoGateFirewall
import GeoGateFleet
import GeoGatePolicy
import GeoGateRefresh
import GeoGateTrie

/// `geogate status`: is the filter really on, and with what data? Reads
/// everything, changes nothing, takes no lock.
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Say whether the filter is really on: live trie, config, kernel sets against the plan, the rules using them, daemon, refreshes.",
        discussion: """
            Exit 0 all well, 1 degraded (a set drifted from the plan or used by no rule while another is, the filter switched open, data older than \
            refresh.stale-after, the last refresh failed, the daemon down while a web-only profile needs it), 2 broken \
            (the config or trie cannot be read, a planned set is missing, or no firewall rule uses a set: nothing is \
            enforced). Reads the kernel's sets and rules (needs CAP_NET_ADMIN for the sets); changes nothing.
            """)

    @Option(help: configHelp) var config: String?
    @Option(help: ArgumentHelp("The trie file (default: the config's database:).", valueName: "FILE")) var db: String?
    @Flag(help: "One JSON object, for monitoring tools.") var json = false

    func run() throws {
        let report = StatusReport.gather(configPath: configPath(config), db: db)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            var out = OutputBuffer()
            out.write(String(decoding: try encoder.encode(report), as: UTF8.self) + "\n")
            out.flush()
        } else {
            var out = OutputBuffer()
            out.write(report.text)
            out.flush()
        }
        if report.exitStatus != 0 { throw ExitCode(Int32(report.exitStatus)) }
    }
}

/// What `status` found; Codable for `--json` (Docs: README, "See what is live").
struct StatusReport: Codable {
    struct Trie: Codable {
        var path: String
        var built: Int64
        var ageSeconds: Int64
        var ipv4Ranges: Int
        var ipv6Ranges: Int
        var sources: [String]
        /// "none", "key <id>, verified with <origin>", or why it does not verify.
        var signature: String = "none"
        /// The publisher's manifest this node last took (a fleet node).
        var publication: String?
        /// What this compile host's refresh.publish directory serves to the nodes.
        var published: String?
    }

    struct Daemon: Codable {
        var socket: String
        var up: Bool
        var info: [String: String]
        var stats: [String: String]
    }

    struct Refresh: Codable {
        var last: RefreshRecordJSON?
        var next: String?
    }

    struct RefreshRecordJSON: Codable {
        var time: Int64
        var exit: Int
        var outcome: String
        var message: String
    }

    struct FeedState: Codable {
        var profile: String
        var name: String
        var list: String
        /// nil: not fetched yet.
        var networks: Int?
        var ageSeconds: Int64?
    }

    struct ProfileEntries: Codable {
        var profile: String
        var allow: Int
        var block: Int
        var cap: Int
    }

    var state = "ok"
    var exitStatus = 0
    var config: String
    var configError: String?
    var trie: Trie?
    var trieError: String?
    var filterOpen = false
    var backend = "ipset"
    var sets: [SetState] = []
    /// The full-server profiles' run-time entry sets (<set-name>-rt-block-v4 ...).
    var runtimeSets: [SetState] = []
    /// Per profile: live run-time entries and the cap (entries.max-per-profile).
    var entries: [ProfileEntries] = []
    var entriesError: String?
    /// Each profile's allow-lists and block-lists feeds, as last accepted.
    var feeds: [FeedState] = []
    var daemon: Daemon?
    var refresh = Refresh()
    var problems: [String] = []

    mutating func degrade(_ problem: String) {
        problems.append("degraded: " + problem)
        if exitStatus < 1 { exitStatus = 1; state = "degraded" }
    }

    mutating func broken(_ problem: String) {
        problems.append("broken: " + problem)
        exitStatus = 2
        state = "broken"
    }

    static func gather(configPath: String, db: String?) -> StatusReport {
        var r = StatusReport(config: configPath)
        let cfg: GeoGateConfig
        do { cfg = try GeoGateConfig.load(path: configPath) } catch {
            r.configError = "\(error)"
            r.broken("the config cannot be used: \(error)")
            return r
        }
        r.backend = cfg.backend
        let now = Int64(time(nil))

        // The live trie.
        var trieFile: TrieFile?
        do {
            let path = try cfg.trieFile(override: db)
            let t = try TrieFile(path: path)
            trieFile = t
            let m = t.metadata
            r.trie = Trie(path: path, built: m.buildTime, ageSeconds: max(0, now - m.buildTime), ipv4Ranges: Int(m.v4RangeCount),
                          ipv6Ranges: Int(m.v6RangeCount), sources: m.sources.map { "\($0.name) \($0.format) sha256:\(hexString($0.sha256))" })
            let signature = Self.signature(of: path, config: cfg, report: &r)
            r.trie?.signature = signature
            // A fleet: the manifest a node last took, or the one a compile host serves.
            func manifest(_ file: String) -> (Manifest, live: Bool)? {
                guard let bytes = try? readWholeFile(file, limit: Manifest.maxBytes), let m = try? Manifest.parse(bytes, name: file) else { return nil }
                let live = (try? readWholeFile(path, limit: 1 << 30)).map { hexString(Array(SHA256.hash(data: $0))) } == m.sha256
                return (m, live)
            }
            func describe(_ m: Manifest) -> String {
                "\(m.trieName), published \(formatUTC(m.publishedTime)), signed by key \(SafeText.field(m.keyID, limit: 32))"
            }
            if cfg.refresh.publishedTrie != nil {
                if let (m, live) = manifest(cfg.refresh.stateDirectory + "/cache/published-manifest") {
                    r.trie?.publication = describe(m) + (live ? ": live" : ": NOT the live trie")
                } else {
                    r.trie?.publication = "no manifest taken yet"
                }
            }
            if let publish = cfg.refresh.publish {
                let file = publish.directory + "/" + Publisher.manifestName
                if let (m, live) = manifest(file) {
                    r.trie?.published = "\(publish.directory)/" + describe(m) + (live ? ": the live trie" : ": NOT the live trie")
                    if !live { r.degrade("\(file) names \(m.trieName), not the live trie: the nodes do not get the live data (`geogate publish`)") }
                } else {
                    r.trie?.published = "nothing (no \(file))"
                    r.degrade("refresh.publish: \(file) cannot be read: the nodes get nothing (`geogate publish`)")
                }
            }
            if now - m.buildTime > Int64(cfg.refresh.staleAfterSeconds) {
                r.degrade("the data was built \(Self.age(now - m.buildTime)) ago, more than refresh.stale-after (\(Self.age(Int64(cfg.refresh.staleAfterSeconds))))")
            }
        } catch {
            r.trieError = "\(error)"
            r.broken("the live trie cannot be used: \(error)")
        }

        // The kernel's sets against the plan, and the rules that use them.
        r.filterOpen = OpenFilter.isOpen(cfg)
        if r.filterOpen { r.degrade("the filter is switched open (`geogate apply --open`): everyone is let in; `geogate apply` closes it") }
        // Feeds, as the last refresh accepted them (the config carries their networks).
        for p in cfg.profiles {
            for feed in p.feeds {
                let path = feed.file(stateDirectory: cfg.stateDirectory, profile: p.name)
                var state = FeedState(profile: p.name, name: feed.name, list: "\(feed.action.rawValue)-lists", networks: nil, ageSeconds: nil)
                var st = stat()
                if stat(path, &st) == 0, let bytes = try? readWholeFile(path, limit: 64 << 20) {
                    state.networks = bytes.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) } - 1  // less the comment line
                    state.ageSeconds = max(0, now - Int64(st.st_mtim.tv_sec))
                    if state.ageSeconds! > Int64(cfg.refresh.staleAfterSeconds) {
                        r.degrade("feed \(p.name)/\(feed.name) was last taken \(Self.age(state.ageSeconds!)) ago, more than refresh.stale-after")
                    }
                } else {
                    r.degrade("feed \(p.name)/\(feed.name) has not been fetched yet (`geogate refresh`): its networks do not count")
                }
                r.feeds.append(state)
            }
        }

        // Run-time entries.
        var runtimeEntries = RuntimeEntries()
        do { runtimeEntries = try RuntimeEntries.load(path: cfg.entriesFile) } catch {
            r.entriesError = "\(error)"
            r.degrade("the run-time entries cannot be read: \(error)")
        }
        for p in cfg.profiles {
            let live = runtimeEntries.entries(profile: p.name, now: now)
            r.entries.append(ProfileEntries(profile: p.name, allow: live.filter { $0.action == .allow }.count,
                                            block: live.filter { $0.action == .block }.count, cap: cfg.entries.maxPerProfile))
        }
        if let t = trieFile, let fullPlan = try? SetPlanner.plan(config: cfg, maps: [.v4: t.rangeMap(.v4), .v6: t.rangeMap(.v6)],
                                                                profile: nil, perCountry: false, entries: runtimeEntries, now: now), !fullPlan.isEmpty {
            let effective = OpenFilter.effective(fullPlan, config: cfg)
            let runtime = effective.filter { $0.kind == .runtimeAllow || $0.kind == .runtimeBlock }
            r.runtimeSets = SetInspector.inspect(runtime, backend: cfg.backend)
            for s in r.runtimeSets {
                if !s.present {
                    r.degrade("set \(s.name) is missing from the kernel: run-time entries are not enforced (`geogate apply`)")
                } else if s.drifted {
                    r.degrade("set \(s.name) differs from the run-time entries: \(s.missingEntries ?? 0) missing, \(s.extraEntries ?? 0) extra (`geogate apply`)")
                } else if s.rules.isEmpty && s.planned > 0 {
                    r.degrade("no rule uses set \(s.name): its \(s.planned) run-time entries are not enforced (the rules: /usr/share/doc/geogate/examples/firewall-*.sh)")
                }
            }
            let plan = effective.filter { $0.kind == .profile }
            r.sets = SetInspector.inspect(plan, backend: cfg.backend)
            for s in r.sets {
                if !s.present {
                    r.broken("set \(s.name) is missing from the kernel (`geogate apply`; at boot, geogate-sets.service)")
                } else if s.drifted {
                    r.degrade("set \(s.name) differs from the plan: \(s.missingEntries ?? 0) planned entries missing, \(s.extraEntries ?? 0) extra (`geogate apply`)")
                }
            }
            if r.sets.allSatisfy({ $0.rules.isEmpty }) {
                r.broken("no iptables, ip6tables or nft rule uses the sets: nothing is filtered (the rules: /usr/share/doc/geogate/examples/firewall-*.sh)")
            } else {
                for set in r.sets where set.rules.isEmpty && set.present {
                    r.degrade("no rule uses set \(set.name): IPv\(set.family) traffic is not filtered by it")
                }
            }
        }

        // The daemon.
        let socket = cfg.daemon.socket
        var daemon = Daemon(socket: socket, up: false, info: [:], stats: [:])
        if let info = try? UnixSocketClient.ask(socket, "INFO", timeoutSeconds: 2), info.hasPrefix("OK "),
           let stats = try? UnixSocketClient.ask(socket, "STATS", timeoutSeconds: 2) {
            daemon.up = true
            daemon.info = Self.fields(info)
            daemon.stats = Self.fields(stats)
            if daemon.info["last-reload-outcome"] == "failed" {
                r.degrade("the daemon's last reload failed: it still serves the previous data")
            }
            if let built = daemon.info["built"], let t = r.trie, built != String(t.built) {
                r.degrade("the daemon serves data built at \(built), the live trie was built at \(t.built) (RELOAD it)")
            }
        } else if cfg.profiles.contains(where: { $0.scope == .webOnly }) {
            r.degrade("the daemon does not answer on \(socket): web-only profiles are not decided")
        }
        r.daemon = daemon

        // Refreshes.
        if let last = RefreshRecord.read(cfg.refresh.lastRefreshRecord) {
            r.refresh.last = RefreshRecordJSON(time: last.time, exit: last.exitStatus, outcome: last.outcome, message: last.message)
            if last.outcome == "failed" { r.degrade("the last refresh failed: \(last.message)") }
        }
        r.refresh.next = Self.nextRefresh(cfg)
        return r
    }

    /// `OK a=b c=d` → [a: b, c: d].
    /// What `<trie>.sig` says, verified against a fleet node's trusted keys. A
    /// node whose live trie is not signed by one of them is degraded: the trie
    /// did not come from its publisher.
    static func signature(of path: String, config cfg: GeoGateConfig, report r: inout StatusReport) -> String {
        let source = cfg.refresh.publishedTrie
        guard let line = try? readWholeFile(path + ".sig", limit: 4096) else {
            if source != nil { r.degrade("the live trie has no signature (\(path).sig): it did not come from the publisher") }
            return "none"
        }
        guard let source else {
            let words = String(decoding: line.prefix(200), as: UTF8.self).split(separator: " ")
            return "key \(SafeText.field(words.count > 1 ? words[1] : "?", limit: 32)) (not checked: no trie: source with public-key)"
        }
        do {
            let keys = try TrieSigning.trustedKeys(source.publicKeys)
            let bytes = try readWholeFile(path, limit: 1 << 30)
            let key = try bytes.withUnsafeBytes { b throws(TrieSigning.Failure) in try TrieSigning.verify(b, signature: line, keys: keys, name: path + ".sig") }
            return "key \(key.id), verified with \(key.origin)"
        } catch {
            r.degrade("the live trie's signature does not verify: \(error)")
            return "DOES NOT VERIFY: \(error)"
        }
    }

    static func fields(_ line: String) -> [String: String] {
        var out: [String: String] = [:]
        for part in line.split(separator: " ").dropFirst() {
            guard let eq = part.firstIndex(of: "=") else { continue }
            out[String(part[..<eq])] = String(part[part.index(after: eq)...])
        }
        return out
    }

    /// When the next refresh is due: the systemd timer's next elapse, else the
    /// daemon's own refresh-interval from the last run, else nil (none scheduled).
    static func nextRefresh(_ cfg: GeoGateConfig) -> String? {
        if access("/run/systemd/system", F_OK) == 0,
           let pipe = popen("systemctl show geogate-refresh.timer -p NextElapseUSecRealtime --value 2>/dev/null", "r") {
            defer { pclose(pipe) }
            var buffer = [CChar](repeating: 0, count: 256)
            if fgets(&buffer, 256, pipe) != nil {
                let text = String(cString: buffer).trimmingCharacters(in: .whitespacesAndNewlines)
                if !text.isEmpty && text != "n/a" { return "\(text) (geogate-refresh.timer)" }
            }
        }
        if cfg.daemon.refreshIntervalSeconds > 0 {
            var s = stat()
            let last = stat(cfg.refresh.lastRunStamp, &s) == 0 ? Int64(s.st_mtim.tv_sec) : Int64(time(nil))
            return "\(formatUTC(last + Int64(cfg.daemon.refreshIntervalSeconds))) (daemon.refresh-interval, without its jitter)"
        }
        return nil
    }

    static func age(_ seconds: Int64) -> String {
        seconds >= 2 * 86_400 ? "\(seconds / 86_400) days" : seconds >= 7200 ? "\(seconds / 3600) hours"
            : seconds >= 120 ? "\(seconds / 60) minutes" : "\(seconds) seconds"
    }

    var text: String {
        var out = "geogate status: \(state.uppercased())\n"
        out += "config: \(config): \(configError.map { "ERROR \($0)" } ?? "valid")\n"
        if let t = trie {
            out += "trie: \(t.path), built \(formatUTC(t.built)) (\(Self.age(t.ageSeconds)) ago), \(t.ipv4Ranges) IPv4 and \(t.ipv6Ranges) IPv6 ranges\n"
            for s in t.sources { out += "  source \(s)\n" }
            out += "  signature: \(t.signature)\n"
            if let p = t.publication { out += "  publisher's last manifest: \(p)\n" }
            if let p = t.published { out += "  published for the nodes: \(p)\n" }
        } else if let e = trieError {
            out += "trie: ERROR \(e)\n"
        }
        out += "filter: \(filterOpen ? "SWITCHED OPEN (apply --open)" : "closed") (backend \(backend))\n"
        for s in sets + runtimeSets {
            var line = "set \(s.name): "
            if !s.present {
                line += "MISSING (plan: \(s.planned) entries)"
            } else {
                line += "present, \(s.entries.map(String.init) ?? "?") entries"
                if s.missingEntries != nil { line += s.drifted ? ", DRIFTED: \(s.missingEntries!) missing, \(s.extraEntries!) extra" : ", as planned" }
            }
            line += s.rules.isEmpty ? "; used by no rule" : "; used by \(s.rules.count) rule\(s.rules.count == 1 ? "" : "s") (\(Set(s.rules).sorted().joined(separator: ", ")))"
            out += line + "\n"
        }
        for f in feeds {
            out += "feed \(f.profile)/\(f.name) (\(f.list)): "
            out += f.networks.map { "\($0) networks, taken \(Self.age(f.ageSeconds ?? 0)) ago" } ?? "NOT FETCHED YET"
            out += "\n"
        }
        if let e = entriesError { out += "entries: ERROR \(e)\n" }
        for e in entries {
            out += "entries: profile \(e.profile): \(e.allow + e.block) of \(e.cap) (\(e.allow) allow, \(e.block) block)\n"
        }
        if let d = daemon {
            if d.up {
                let started = Int64(d.info["started"] ?? "") ?? 0
                var line = "daemon: up on \(d.socket), for \(Self.age(max(0, Int64(time(nil)) - started))), \(d.stats["requests"] ?? "?") requests"
                let verdicts = d.stats.filter { $0.key.hasSuffix(".allow") || $0.key.hasSuffix(".deny") }.sorted { $0.key < $1.key }
                if !verdicts.isEmpty { line += " (" + verdicts.map { "\($0.key)=\($0.value)" }.joined(separator: " ") + ")" }
                if let t = d.info["last-reload"], t != "0", let when = Int64(t) {
                    line += ", last reload \(formatUTC(when)) \(d.info["last-reload-outcome"] ?? "")"
                }
                out += line + "\n"
            } else {
                out += "daemon: not answering on \(d.socket)\n"
            }
        }
        if let last = refresh.last {
            out += "refresh: last \(formatUTC(last.time)): \(last.outcome) (exit \(last.exit))\(last.outcome == "unchanged" ? "" : ": \(last.message)")\n"
        } else {
            out += "refresh: none recorded\n"
        }
        out += "next refresh: \(refresh.next ?? "not scheduled (geogate-refresh.timer, cron or daemon.refresh-interval)")\n"
        if !problems.isEmpty { out += "problems:\n" + problems.map { "  \($0)\n" }.joined() }
        return out
    }
}
