import ArgumentParser
import GeoGatePolicy
import GeoGateRefresh
import Logging
#if canImport(Glibc)
import Glibc
#endif

struct Refresh: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Download the config's refresh.sources, check them, and swap in a new trie if the data changed.",
        discussion: """
            Conditional requests (ETag, If-Modified-Since), retries with backoff on 5xx/429/network errors, a size \
            cap, checksums (provider sidecars or a pinned SHA-256). The new compile must pass the sanity guard \
            (refresh.max-family-change, refresh.max-country-change against the live trie; --force accepts a larger \
            change, never an empty or tiny dataset). Then the full-server sets are re-applied (lockout guard), the \
            trie is swapped (the previous one kept for `geogate rollback`), the daemon gets RELOAD, and \
            refresh.on-change runs. A fleet node (a `trie:` source) takes the compile host's published trie instead, \
            only when its size, SHA-256 and Ed25519 signature check out against the node's public-key list; a \
            compile host (refresh.publish) publishes what is live after each refresh. Exit 0 changed, 3 unchanged, \
            1 failed (nothing changed), 2 usage or bad config.
            """)

    @Option(help: configHelp) var config: String?
    @Flag(help: "Accept a change beyond the sanity guard's thresholds.") var force = false
    @Flag(name: .shortAndLong, help: "Print only what changed, warnings and errors: nothing when the data is unchanged (for cron, which mails any output).")
    var quiet = false

    func run() async throws {
        let cfg = try loadConfig(configPath(config))
        var logger = refreshLogger()
        if quiet { logger.logLevel = .notice }
        // What `geogate status` shows as the last refresh.
        func record(_ status: Int, _ outcome: String, _ message: String) {
            do {
                try RefreshRecord(time: Int64(time(nil)), exitStatus: status, outcome: outcome, message: message)
                    .write(to: cfg.refresh.lastRefreshRecord)
            } catch { logger.warning("\(cfg.refresh.lastRefreshRecord): \(error)") }
        }
        do {
            let outcome = try await Refresher(config: cfg, logger: logger, now: buildTimeNow()).run(force: force)
            // A compile host publishes what is live (a publication that failed earlier, too).
            guard publishAfterRefresh(cfg, logger: logger) else {
                logger.error("the live data is in place here; the nodes keep the earlier publication (`geogate publish` retries)")
                record(1, "failed", "publishing to \(cfg.refresh.publish?.directory ?? "?") failed")
                throw ExitCode(1)
            }
            switch outcome {
            case .changed(let summary):
                record(0, "changed", summary)
                return
            case .unchanged:
                record(3, "unchanged", "the data is unchanged")
                throw ExitCode(3)
            }
        } catch let error as RefreshError {
            logger.error("\(error)")
            logger.error("nothing changed")
            record(1, "failed", "\(error)")
            throw ExitCode(1)
        }
    }
}

struct Rollback: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Put back the trie that the last refresh replaced, then reload the daemon and re-apply the sets.",
        discussion: "Exit 0 rolled back, 1 failed (nothing changed), 2 usage or bad config.")

    @Option(help: configHelp) var config: String?

    @Flag(name: .shortAndLong, help: "Print only the outcome, warnings and errors.") var quiet = false

    func run() throws {
        let cfg = try loadConfig(configPath(config))
        var logger = refreshLogger()
        if quiet { logger.logLevel = .notice }
        do { try Refresher(config: cfg, logger: logger, now: buildTimeNow()).rollback() } catch {
            logger.error("\(error)")
            throw ExitCode(1)
        }
    }
}

/// Loads the config; a bad or missing one is a message and exit 2. `needed`: what
/// else the caller could have given instead (for the hint when the file is missing).
func loadConfig(_ path: String, for needed: String? = nil) throws -> GeoGateConfig {
    do { return try GeoGateConfig.load(path: path) } catch {
        printError("geogate: \(error)")
        if access(path, F_OK) != 0 {
            printError("geogate: name a config with --config FILE or GEOGATE_CONFIG\(needed.map { ", or give \($0)" } ?? ""); the package installs \(defaultConfigPath)")
        }
        throw ExitCode(2)
    }
}

func refreshLogger() -> Logger {
    bootstrapLogging()
    return Logger(label: "geogate-refresh")
}

/// $SOURCE_DATE_EPOCH (reproducible builds, tests), else now.
func buildTimeNow() -> Int64 {
    getenv("SOURCE_DATE_EPOCH").flatMap { Int64(String(cString: $0)) } ?? Int64(time(nil))
}
