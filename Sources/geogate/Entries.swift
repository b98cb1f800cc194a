import ArgumentParser
import GeoGateCore
import GeoGateFirewall
import GeoGatePolicy
#if canImport(Glibc)
import Glibc
#endif

/// `geogate allow|block|unlist|entries`: run-time entries (Docs/ENTRIES.md).

/// The options `allow` and `block` share.
struct EntryOptions: ParsableArguments {
    @Option(help: configHelp) var config: String?
    @Option(help: "The profile (default: the config's only profile).") var profile: String?
    @Option(name: .customLong("for"), help: ArgumentHelp("How long: 90s, 15m, 2h, 7d, 1h30m (at most 24 days); without it, until unlisted.", valueName: "DURATION"))
    var duration: String?
    @Option(help: ArgumentHelp("Why, kept with the entry and logged (at most 200 bytes).", valueName: "TEXT")) var reason: String = ""
    @Argument(help: "An address or a network (CIDR).") var network: String
}

/// The network an argument names: an address (a host route) or a CIDR; an
/// IPv4-mapped IPv6 address is its IPv4 address, as decisions take it.
func parseEntryNetwork(_ text: String) -> CIDR? {
    if let a = IPAddress(text) {
        let a4 = a.unmappedIPv4 ?? a
        return CIDR(family: a4.family, address: a4.value, prefixLength: a4.family.bitWidth)
    }
    guard let c = CIDR(text), c.prefixLength > 0 else { return nil }
    return c
}

/// The profile named, or the config's only one.
func entryProfile(_ given: String?, _ cfg: GeoGateConfig) throws -> String {
    if let given { return given }
    guard cfg.profiles.count == 1 else {
        printError("geogate: name the profile with --profile (profiles: \(cfg.profiles.map(\.name).joined(separator: ", ")))")
        throw ExitCode(2)
    }
    return cfg.profiles[0].name
}

/// Runs one change and prints what it did; exit 1 when it was refused or failed
/// (nothing changed), 2 for a usage or config error.
func runEntryChange(_ change: EntryUpdate.Change, cfg: GeoGateConfig, command: String) throws {
    do {
        let outcome = try EntryUpdate.apply(change, config: cfg, lockWaitSeconds: cfg.lockWaitSeconds, command: command,
                                            reloadDaemon: true, waiting: { printError("geogate: \($0)") })
        print(outcome.summary)
        for line in outcome.kernel { print("  \(line)") }
    } catch {
        printError("geogate: \(error)")
        throw ExitCode(error.code == .badRequest ? 2 : 1)
    }
}

func putEntry(_ action: RuntimeEntry.Action, _ o: EntryOptions) throws {
    let cfg = try loadConfig(configPath(o.config))
    let profile = try entryProfile(o.profile, cfg)
    guard let network = parseEntryNetwork(o.network) else {
        printError("geogate: \"\(SafeText.field(o.network, limit: 64))\" is not an address or a network (CIDR, host bits clear)")
        throw ExitCode(2)
    }
    let now = Int64(time(nil))
    var expires: Int64?
    if let d = o.duration {
        guard let seconds = RuntimeEntries.parseDuration(d), seconds > 0, seconds <= RuntimeEntries.maxDurationSeconds else {
            printError("geogate: --for \(SafeText.field(d, limit: 32)): a duration from 1s to 24d, like 90s, 15m, 2h, 7d")
            throw ExitCode(2)
        }
        expires = now + seconds
    }
    let entry = RuntimeEntry(action: action, profile: profile, network: network, expires: expires, added: now,
                             uid: getuid(), reason: o.reason)
    try runEntryChange(.put(entry), cfg: cfg, command: "geogate \(action.rawValue)")
}

struct Allow: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Allow an address or network in a profile at run time, for a time or until unlisted.",
        discussion: """
            Takes effect at once in the kernel sets (the profile's <set-name>-rt-allow-v4/-v6, with the element's \
            timeout) and in the daemon's CHECK answers, and survives restarts, reboots and re-applies \
            (<state-dir>/entries). Trusted and the profile's static networks come first: an allow cannot open a \
            block-networks network. A block of the same network replaces it. Takes the run lock. Exit 0 done, 1 \
            refused or failed (nothing changed), 2 usage.
            """)
    @OptionGroup var options: EntryOptions
    func run() throws { try putEntry(.allow, options) }
}

struct Block: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Block an address or network in a profile at run time, for a time or until unlisted.",
        discussion: """
            Takes effect at once in the kernel sets (<set-name>-rt-block-v4/-v6, dropped before anything else) and \
            in the daemon. A block wins over run-time allows; trusted and allow-networks networks are never \
            blocked this way. Exit 0 done, 1 refused or failed (nothing changed), 2 usage.
            """)
    @OptionGroup var options: EntryOptions
    func run() throws { try putEntry(.block, options) }
}

struct Unlist: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove the run-time entry of exactly this address or network from a profile.",
        discussion: "Exit 0 removed, 1 no such entry or failed (nothing changed), 2 usage.")
    @Option(help: configHelp) var config: String?
    @Option(help: "The profile (default: the config's only profile).") var profile: String?
    @Argument(help: "The address or network of the entry.") var network: String

    func run() throws {
        let cfg = try loadConfig(configPath(config))
        let name = try entryProfile(profile, cfg)
        guard let net = parseEntryNetwork(network) else {
            printError("geogate: \"\(SafeText.field(network, limit: 64))\" is not an address or a network (CIDR, host bits clear)")
            throw ExitCode(2)
        }
        try runEntryChange(.remove(profile: name, network: net), cfg: cfg, command: "geogate unlist")
    }
}

struct Entries: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the live run-time entries, with the time each has left.",
        discussion: "Reads <state-dir>/entries (no lock needed: it is replaced atomically).")
    @Option(help: configHelp) var config: String?
    @Option(help: "Only this profile.") var profile: String?
    @Flag(help: "One JSON object: the entries and, per profile, the count and the cap.") var json = false

    func run() throws {
        let cfg = try loadConfig(configPath(config))
        let now = Int64(time(nil))
        let all: RuntimeEntries
        do { all = try RuntimeEntries.load(path: cfg.entriesFile) } catch {
            printError("geogate: \(error)")
            throw ExitCode(2)
        }
        let live = all.entries.filter { $0.isLive(at: now) && (profile == nil || $0.profile == profile) }
        if json {
            var out = "{\"cap\":\(cfg.entries.maxPerProfile),\"profiles\":{"
            out += cfg.profiles.filter { profile == nil || $0.name == profile }.map { p in
                "\"\(p.name)\":\(live.filter { $0.profile == p.name }.count)"
            }.joined(separator: ",")
            out += "},\"entries\":["
            out += live.map { e in
                "{\"action\":\"\(e.action.rawValue)\",\"profile\":\"\(e.profile)\",\"network\":\"\(e.network)\","
                    + "\"expires\":\(e.expires.map(String.init) ?? "null"),\"remaining\":\(e.expires.map { String($0 - now) } ?? "null"),"
                    + "\"added\":\(e.added),\"uid\":\(e.uid),\"reason\":\(jsonString(e.reason))}"
            }.joined(separator: ",")
            print(out + "]}")
            return
        }
        for p in cfg.profiles where profile == nil || p.name == profile {
            let mine = live.filter { $0.profile == p.name }
            print("profile \(p.name): \(mine.count) of \(cfg.entries.maxPerProfile) entries")
            for e in mine {
                let left = e.expires.map { "\(formatSeconds($0 - now)) left" } ?? "until unlisted"
                print("  \(e.action.rawValue) \(e.network)  \(left)  uid \(e.uid)\(e.reason.isEmpty ? "" : "  \(e.reason)")")
            }
        }
    }
}

/// "1d 2h", "15m 3s": a time left, for people.
func formatSeconds(_ s: Int64) -> String {
    let d = s / 86400, h = s % 86400 / 3600, m = s % 3600 / 60, sec = s % 60
    if d > 0 { return "\(d)d \(h)h" }
    if h > 0 { return "\(h)h \(m)m" }
    if m > 0 { return "\(m)m \(sec)s" }
    return "\(sec)s"
}

/// A JSON string literal of printable text (reasons are stored escaped already).
func jsonString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case _ where scalar.value < 0x20: out += "\\u00" + String(scalar.value, radix: 16).leftPadded(2)
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
