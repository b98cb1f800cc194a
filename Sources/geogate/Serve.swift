import ArgumentParser
import GeoGateDaemon
import GeoGatePolicy
import Logging
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The lookup daemon: country and allow/deny answers over a Unix socket (Docs/PROTOCOL.md).",
        discussion: """
            Listens on the config's daemon.socket (default /run/geogate/geogate.sock, mode 0660). SIGHUP or a \
            RELOAD request (root or the daemon's user) maps the trie and config again, validates them and swaps \
            them in; a bad new file is logged and the old data keeps serving. SIGTERM/SIGINT shut down gracefully.
            """)

    @Option(help: configHelp) var config: String?
    @Option(help: ArgumentHelp("The trie file (default: the config's database).", valueName: "FILE")) var db: String?
    @Option(help: ArgumentHelp("The socket (default: the config's daemon.socket).", valueName: "PATH")) var socket: String?

    func run() async throws {
        bootstrapLogging()
        let logger = Logger(label: "geogate")
        let config = configPath(self.config)
        let service: LookupService
        do { service = try LookupService(configPath: config, database: db, logger: logger) } catch {
            printError("geogate: \(error)")
            throw ExitCode(2)
        }
        let d = service.snapshot.config.daemon
        var settings = DaemonSettings(socketPath: socket ?? d.socket)
        settings.socketMode = mode_t(d.socketMode)
        settings.idleTimeoutSeconds = Int64(d.idleTimeoutSeconds)
        settings.watchIntervalSeconds = d.watchIntervalSeconds
        settings.threads = d.threads
        settings.maxConnections = d.maxConnections
        settings.httpSocketPath = d.httpSocket
        // daemon.refresh-interval runs this same program's `refresh`.
        if let program = executablePath() {
            settings.refreshCommand = [program, "refresh", "--config", config]
            if d.refreshIntervalSeconds > 0, let db, db != (try? service.snapshot.config.trieFile(override: nil)) {
                logger.warning("daemon.refresh-interval: refreshes write the config's database, not --db \(db)")
            }
        }
        if let name = d.socketGroup {
            guard let group = getgrnam(name) else {
                printError("geogate: \(config): daemon.socket-group: no group \"\(name)\"")
                throw ExitCode(2)
            }
            settings.socketGroup = group.pointee.gr_gid
        }
        let server = DaemonServer(service: service, settings: settings, logger: logger)
        let group = ServiceGroup(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        do { try await group.run() } catch {
            printError("geogate: \(error)")
            throw ExitCode(1)
        }
    }
}
