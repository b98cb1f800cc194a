import ArgumentParser
import GeoGateCore
import GeoGateFirewall
import GeoGatePolicy
import GeoGateTrie
#if canImport(Glibc)
import Glibc
#endif

/// The trie file, the config and the profile whose sets are measured.
struct ProfileOptions: ParsableArguments {
    @Option(help: "The trie file.") var db: String
    @Option(help: "The config file.") var config: String
    @Option(help: "The profile.") var profile: String

    /// Opens the trie and computes the profile's sets (what `geogate sets` does).
    func plan(_ cfg: GeoGateConfig) throws -> [FirewallSet] {
        let trie = try TrieFile(path: db)
        return try SetPlanner.plan(config: cfg, maps: [.v4: trie.rangeMap(.v4), .v6: trie.rangeMap(.v6)],
                                   profile: profile, perCountry: false)
    }
}

/// `sets --db FILE --config FILE --profile P`: time to compute every set of a
/// profile from the trie file (open, range maps, set algebra, CIDR cover), the
/// median of N runs.
struct SetsBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sets")
    @OptionGroup var options: ProfileOptions
    @Option(help: "Runs.") var runs = 11

    func run() throws {
        let cfg = try GeoGateConfig.load(path: options.config)
        let profile = options.profile
        var times: [Double] = []
        var entries = 0
        for _ in 0..<runs {
            let start = now()
            let sets = try options.plan(cfg)
            times.append(now() - start)
            entries = sets.reduce(0) { $0 + $1.cidrs.count }
        }
        let p = cfg.profile(named: profile)!
        print("profile \(profile): \(p.countries.count) countries, \(entries) entries")
        print("compute sets: \(format(median(times) * 1000)) ms (median of \(runs)), \(format(times.min()! * 1000)) ms best")
    }
}

/// `ipset-load --db FILE --config FILE --profile P`: loading the profile's IPv4 set
/// into the kernel through libipset (temporary set, batched adds, swap, destroy)
/// against `ipset restore -f` of the same entries in the same pattern, alternating,
/// the median of N runs each. Run it inside a network namespace (run.sh does).
struct IPSetLoadBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ipset-load")
    @OptionGroup var options: ProfileOptions
    @Option(help: "Runs per side.") var runs = 7
    @Option(help: "A scratch file for the ipset restore text.") var scratch = "/tmp/geogate-bench.ipset"

    func run() throws {
        let sets = try options.plan(try GeoGateConfig.load(path: options.config)).filter { $0.family == .v4 }
        var text = ""
        IPSetText.render(sets, into: &text)
        try AtomicFile.write(Array(text.utf8), to: scratch)
        let kernel = try IPSetKernel()
        var first = SetLoader(kernel: kernel, registry: try SetRegistry(path: scratch + ".sets"))
        try first.load(sets)  // the live set exists for both sides
        var ours: [Double] = [], restore: [Double] = []
        for _ in 0..<runs {
            // A full load every round: the record forgets what the live set holds
            // (else apply would find it unchanged and skip it).
            var registry = try SetRegistry(path: scratch + ".sets")
            for set in sets { try registry.record(set.name, family: set.family, temporary: false, digest: nil) }
            var loader = SetLoader(kernel: kernel, registry: registry)
            var start = now()
            try loader.load(sets)
            ours.append(now() - start)
            start = now()
            let status = spawn(["/usr/sbin/ipset", "restore", "-f", scratch])
            restore.append(now() - start)
            guard status == 0 else { throw ValidationError("ipset restore failed with status \(status)") }
        }
        let a = median(ours), b = median(restore)
        print("entries: \(sets[0].cidrs.count) IPv4 networks")
        print("libipset (geogate): \(format(a * 1000)) ms (median of \(runs))")
        print("ipset restore -f: \(format(b * 1000)) ms (median of \(runs))")
        print("ratio: \(format(b / a))")
    }

    func spawn(_ argv: [String]) -> Int32 {
        var pid: pid_t = 0
        let cArgs = argv.map { strdup($0) } + [nil]
        defer { for p in cArgs { free(p) } }
        guard posix_spawn(&pid, argv[0], nil, nil, cArgs, environ) == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status
    }
}
