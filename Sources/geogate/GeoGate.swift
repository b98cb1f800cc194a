import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

struct GeoGate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "geogate",
        abstract: "Country IP filtering for Linux servers: compile country data into a compact trie, answer lookups, export networks, build firewall sets, decide addresses for profiles.",
        discussion: """
            Data flow: sources (MMDB, CSV, RIR stats, range files, CIDR lists) -> `compile` -> trie file -> \
            `lookup`, `info`, `export`, `sets`, `apply`, `check`, `serve`; `refresh` keeps it current, `rollback` \
            steps back. Every command reads /etc/geogate/geogate.conf unless --config or $GEOGATE_CONFIG names \
            another; its database: is the default --db, its daemon.socket the default --socket. Exit status 2 is a \
            usage or config error. See the README and /usr/share/doc/geogate.
            """,
        version: geogateVersion,
        subcommands: [Compile.self, Lookup.self, Info.self, Export.self, Sets.self, Apply.self, Check.self, Serve.self,
                      Refresh.self, Rollback.self, Status.self, Allow.self, Block.self, Unlist.self, Entries.self, AMITrustCommand.self, Keygen.self, Publish.self]
    )
}

/// The release, also the Debian package's version (Scripts/package-deb.sh reads it here).
let geogateVersion = "0.2.0"

/// Runs the command line. Usage errors exit 2, as for every other geogate error of
/// the caller's making (the argument parser's own default is 64, EX_USAGE).
@main
enum Main {
    static func main() async {
        do {
            var command = try GeoGate.parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            if GeoGate.exitCode(for: error) == .validationFailure {
                printError(GeoGate.fullMessage(for: error))
                exit(2)
            }
            GeoGate.exit(withError: error)
        }
    }
}

/// The config file: --config, else $GEOGATE_CONFIG, else /etc/geogate/geogate.conf
/// (where the package puts it).
func configPath(_ given: String?) -> String {
    if let given { return given }
    if let env = getenv("GEOGATE_CONFIG"), env.pointee != 0 { return String(cString: env) }
    return defaultConfigPath
}

let defaultConfigPath = "/etc/geogate/geogate.conf"

/// The help every `--config` option shows.
let configHelp = ArgumentHelp("The config file (default: $GEOGATE_CONFIG, else \(defaultConfigPath)).", valueName: "FILE")

/// `--db FILE` for the commands that only read a trie file; without it, the
/// config's database:.
struct DatabaseOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The trie file to read (default: the config's database:).", valueName: "FILE"))
    var db: String?

    @Option(help: configHelp) var config: String?

    /// The trie file: --db, else the config's database:; no config is a clear
    /// message and exit 2.
    func path() throws -> String {
        if let db { return db }
        let cfg = try loadConfig(configPath(config), for: "--db")
        do { return try cfg.trieFile(override: nil) } catch {
            printError("geogate: \(error)")
            throw ExitCode(2)
        }
    }
}
