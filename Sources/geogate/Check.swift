import ArgumentParser
import GeoGateCore
import GeoGatePolicy
import GeoGateTrie
#if canImport(Glibc)
import Glibc
#endif

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decide one address for a profile: exit 0 allowed, 1 denied, 2 error.",
        discussion: """
            Prints `ALLOW|DENY <CC|--> <reason>`, the same answer the firewall sets give. With --socket it asks \
            the running daemon (`geogate serve`); without it, from the config and its trie (--db overrides the config's database:).
            """)

    @Option(help: ArgumentHelp("Ask the daemon on this socket instead of deciding from the files.", valueName: "PATH")) var socket: String?
    @Option(help: configHelp) var config: String?
    @Option(help: ArgumentHelp("The trie file (default: the config's database).", valueName: "FILE")) var db: String?
    @Option(help: "The profile.") var profile: String
    @Argument(help: "The address.") var address: String

    func validate() throws {
        if socket != nil && config != nil { throw ValidationError("give either --socket PATH or --config FILE, not both") }
        if socket != nil && db != nil { throw ValidationError("--db goes with --config, not --socket") }
    }

    func run() throws {
        guard let ip = IPAddress(address) else {
            printError("geogate: \"\(address)\" is not an IP address")
            throw ExitCode(2)
        }
        let answer: String
        if let socket {
            answer = try ask(socket: socket, "CHECK \(profile) \(ip)")
        } else {
            let (cfg, trie) = try PolicyOptions.load(config: configPath(config), db: db)
            guard let p = cfg.profile(named: profile) else {
                printError("geogate: no profile \"\(profile)\" in \(cfg.path) (profiles: \(cfg.profiles.map(\.name).joined(separator: ", ")))")
                throw ExitCode(2)
            }
            // With the run-time entries (`geogate allow|block`), as the daemon and the kernel sets have them.
            let now = Int64(time(nil))
            let entries: RuntimeEntries
            do { entries = try RuntimeEntries.load(path: cfg.entriesFile) } catch {
                printError("geogate: \(error)")
                throw ExitCode(2)
            }
            answer = cfg.policy(p, entries: entries, now: now).decide(ip, country: trie.country(of: ip), now: now).description
        }
        if answer.hasPrefix("ALLOW ") { print(answer); return }
        if answer.hasPrefix("DENY ") { print(answer); throw ExitCode(1) }
        printError("geogate: \(answer)")
        throw ExitCode(2)
    }

    /// One request line to the daemon, its one answer line back.
    func ask(socket path: String, _ request: String) throws -> String {
        do { return try UnixSocketClient.ask(path, request, timeoutSeconds: 5) } catch {
            printError("geogate: \(path): \(error) (is `geogate serve` running?)")
            throw ExitCode(2)
        }
    }
}
