import ArgumentParser
import GeoGateCore
import GeoGateFirewall
import GeoGatePolicy
import GeoGateTrie

/// `--config FILE`, plus `--db FILE` (default: the config's `database:`).
struct PolicyOptions: ParsableArguments {
    @Option(help: configHelp) var config: String?

    @Option(help: ArgumentHelp("The trie file (default: the config's database).", valueName: "FILE"))
    var db: String?

    func load() throws -> (GeoGateConfig, TrieFile) { try PolicyOptions.load(config: configPath(config), db: db) }

    /// Loads the config (a bad one: message and exit 2) and the trie it is used with.
    static func load(config: String, db: String?) throws -> (GeoGateConfig, TrieFile) {
        let cfg = try loadConfig(config)
        let path: String
        do { path = try cfg.trieFile(override: db) } catch {
            printError("geogate: \(error)")
            throw ExitCode(2)
        }
        return (cfg, try openTrie(path))
    }
}

/// Plans the sets; a bad profile choice is a message and exit 2.
/// `boot`: an entries file that cannot be read is no reason to boot without a
/// filter: the sets are loaded with empty run-time sets, and it is said.
func planSets(_ cfg: GeoGateConfig, _ trie: TrieFile, profile: String?, perCountry: Bool, boot: Bool = false) throws -> [FirewallSet] {
    var entries: RuntimeEntries
    do { entries = try RuntimeEntries.load(path: cfg.entriesFile) } catch {
        printError("geogate: run-time entries: \(error)")
        guard boot else { throw ExitCode(2) }
        printError("geogate: --boot: loading the sets without run-time entries; fix or remove \(cfg.entriesFile), then `geogate apply`")
        entries = RuntimeEntries()
    }
    do {
        return try SetPlanner.plan(config: cfg, maps: [.v4: trie.rangeMap(.v4), .v6: trie.rangeMap(.v6)],
                                   profile: profile, perCountry: perCountry, entries: entries)
    } catch {
        printError("geogate: \(error)")
        throw ExitCode(2)
    }
}

struct Sets: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the firewall sets of the full-server profiles as `ipset restore` or `nft -f` text.",
        discussion: """
            One set per profile and family, named <set-name>-v4 / -v6 (set-name defaults to geogate-<profile>), \
            holding exactly the allowed addresses: trusted networks, then the most specific allow/block network, \
            then the country rule, then the no-country verdict. ipset text replaces each set atomically (temporary \
            set, swap, destroy): `geogate sets ... --format ipset | ipset restore`. nft text is one transaction on \
            table inet geogate: `geogate sets ... --format nft | nft -f -`.
            """)

    @OptionGroup var options: PolicyOptions

    @Option(help: "Only this profile.") var profile: String?

    @Option(help: ArgumentHelp("ipset or nft.", valueName: "FORMAT")) var format: String

    @Flag(help: "Also one set per country and family (geogate-cc-<cc>-v4/-v6), for rules of your own.")
    var perCountry = false

    func validate() throws {
        guard format == "ipset" || format == "nft" else { throw ValidationError("--format is ipset or nft") }
    }

    func run() throws {
        let (cfg, trie) = try options.load()
        let sets = try planSets(cfg, trie, profile: profile, perCountry: perCountry)
        var text = ""
        if format == "ipset" { IPSetText.render(sets, into: &text) } else { NFTText.render(sets, into: &text) }
        var out = OutputBuffer()
        out.write(text)
        out.flush()
    }
}

struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load the full-server sets into the kernel, as one transaction (libipset, or libnftables with --backend nft).",
        discussion: """
            Takes the run lock (<runtime-dir>/geogate.lock, shared with refresh and rollback; waits at most \
            lock-wait). Before changing anything, apply checks the established incoming TCP connections and the \
            answered TCP and UDP flows of connection tracking (SIP phones) against the new sets and refuses, \
            listing them, if one would be cut off, unless --force. ipset: every new set is filled as a temporary \
            set, then all are swapped with the live sets (rules that use them keep working) and the old contents \
            destroyed; on any failure every live set stays as it was. Only sets geogate created (recorded in \
            <runtime-dir>/sets) are replaced: a live set of that name that is not geogate's is refused unless \
            adopted (--adopt NAME, or adopt-sets: in the config). A set that already holds exactly the new contents \
            is left alone. nft: the sets of table inet geogate are created or flushed and refilled in one nft \
            transaction. --open is the emergency off switch: every profile set matches every address (the rules \
            that use them let everyone in) until the next plain apply, and refresh and the boot unit keep it \
            open meanwhile. Needs CAP_NET_ADMIN. Exit 0 applied, 1 refused or failed (nothing changed), 2 usage \
            or bad config.
            """)

    @OptionGroup var options: PolicyOptions
    @Option(help: "Only this profile.") var profile: String?
    @Option(help: ArgumentHelp("ipset (libipset, for iptables rules) or nft (libnftables, table inet geogate); default: the config's backend, else ipset.", valueName: "B"))
    var backend: String?
    @Flag(help: "Print what would change per set (entries added/removed) and touch nothing.") var dryRun = false
    @Flag(help: "Apply even if established connections would be cut off.") var force = false
    @Flag(help: "Also one set per country and family.") var perCountry = false
    @Option(help: ArgumentHelp("Replace this live set although geogate did not create it (repeatable; ipset).", valueName: "NAME"))
    var adopt: [String] = []
    @Flag(help: "Emergency off: load sets that let every address in, until the next apply without --open.")
    var open = false
    @Flag(help: "Put back what was live (geogate-sets.service at boot): the planned sets, or open ones after --open.")
    var boot = false

    func validate() throws {
        if let backend, backend != "ipset" && backend != "nft" { throw ValidationError("--backend is ipset or nft") }
        if open && boot { throw ValidationError("--open and --boot do not go together") }
    }

    func run() throws {
        let (cfg, trie) = try options.load()
        func failed(_ error: some Error) -> ExitCode {
            printError("geogate: \(error)")
            printError("geogate: the live sets were not changed")
            return ExitCode(1)
        }
        let lock: RunLock
        do { lock = try LiveState.lock(cfg, command: "geogate apply", waiting: { printError("geogate: \($0)") }) } catch {
            throw failed(error)
        }
        defer { lock.release() }
        // Planned under the lock: the run-time entries change only while it is held.
        let planned = try planSets(cfg, trie, profile: profile, perCountry: perCountry, boot: boot)
        // Read under the lock: refresh changes sets only while holding it.
        let wasOpen = OpenFilter.isOpen(cfg)
        let opening = open || (boot && wasOpen)
        let sets = opening ? OpenFilter.opened(planned) : planned
        if opening { printError("geogate: the filter is \(open ? "being switched" : "still switched") open: every address matches the profile sets") }
        var loader: SetLoader?
        if (backend ?? cfg.backend) == "ipset" {
            do {
                let ipset = try LiveState.loader(cfg, adopt: adopt)
                try ipset.checkOwnership(sets)
                if dryRun {
                    for c in try ipset.changes(sets) { print(c.unchanged ? c.description : "would change " + c.description) }
                }
                loader = ipset
            } catch { throw failed(error) }
        } else {
            for set in sets { print("\(dryRun ? "would change " : "")\(set.name) (table inet \(NFTText.table)): \(set.addresses.intervals.count) ranges (\(set.origin))") }
        }
        let cut = SetLoader.lockouts(sets, connections: Lockout.incomingConnections())
        if !cut.isEmpty {
            let refusal = SetLoader.LockoutRefusal(cutOff: cut)
            if !force {
                printError("geogate: \(refusal)")
                throw ExitCode(1)
            }
            printError("geogate: --force: applying although \(cut.count) established connection(s) will be cut off")
        }
        if dryRun { return }
        // The marker changes first and is put back if the load fails: a refresh
        // must never find the filter closed while the marker says open, or open
        // while it says closed.
        let marking = opening != wasOpen && !boot
        if marking {
            do { try OpenFilter.mark(cfg, open: opening, by: "geogate apply\(open ? " --open" : "")") } catch { throw failed(error) }
        }
        do {
            if var ipset = loader {
                for line in try ipset.load(sets).lines { print(line) }
            } else {
                try NFTLoader.load(sets)
            }
        } catch {
            if marking { try? OpenFilter.mark(cfg, open: wasOpen, by: "geogate apply (put back after a failure)") }
            throw failed(error)
        }
        print("applied \(sets.count) set\(sets.count == 1 ? "" : "s")\(opening ? ", switched open (geogate apply without --open closes it)" : "")")
    }
}
