import ArgumentParser
import GeoGateCore
import GeoGateFleet
import GeoGatePolicy
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// `geogate publish --dir DIR`: the compile host's side of a fleet
/// (GeoGateFleet/Publisher.swift): the live trie, signed, beside a manifest, in a
/// directory a web server serves to the nodes' `trie:` sources.
struct Publish: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sign a trie and publish it for fleet nodes: DIR/geogate-<hash>.trie, its .sig, and DIR/manifest.",
        discussion: """
            The trie and its signature get new names, the manifest is replaced last, so a web server serving DIR \
            never shows a trie with another's hash or signature. Tries of publications older than the last --keep \
            are removed. The defaults come from refresh.publish in the config. Exit 0 published (or already \
            published), 1 failed (the manifest still names the earlier publication), 2 usage or bad key.
            """)

    @OptionGroup var database: DatabaseOption
    @Option(help: ArgumentHelp("The directory a web server serves to the nodes (default: refresh.publish.dir).", valueName: "DIR"))
    var dir: String?
    @Option(help: ArgumentHelp("The Ed25519 private key (default: refresh.publish.sign-key).", valueName: "KEY"))
    var signKey: String?
    @Option(help: "How many publications' tries stay in DIR (default: refresh.publish.keep, 3).") var keep: Int?

    func run() throws {
        // refresh.publish gives the defaults whenever a config is read (unless only --db names the trie);
        // a config that does not load is its error, exit 2.
        let configured = database.db == nil || database.config != nil ? try loadConfig(configPath(database.config)).refresh.publish : nil
        guard let dir = dir ?? configured?.directory, let signKey = signKey ?? configured?.signKey else {
            printError("geogate: publish needs --dir and --sign-key, or refresh.publish in the config")
            throw ExitCode(2)
        }
        let key: TrieSigningKey
        do { key = TrieSigningKey(try TrieSigning.privateKey(signKey)) } catch {
            printError("geogate: --sign-key: \(error)")
            throw ExitCode(2)
        }
        let path = try database.path()
        bootstrapLogging()
        let logger = Logger(label: "geogate-publish")
        guard publishTrie(path, key: key, directory: dir, keep: keep ?? configured?.keep ?? 3, logger: logger) else { throw ExitCode(1) }
    }
}

/// Publishes `path`; logs the outcome. False: it failed (logged).
func publishTrie(_ path: String, key: TrieSigningKey, directory: String, keep: Int, logger: Logger) -> Bool {
    do {
        let outcome = try Publisher.publish(trie: path, key: key.key, directory: directory, keep: max(keep, 1), now: Int64(time(nil)))
        let m = outcome.manifest
        if outcome.changed {
            logger.notice("published \(directory)/\(m.trieName): \(m.size) bytes, built \(m.buildTime), SHA-256 \(m.sha256), signed by key \(m.keyID)\(outcome.removed.isEmpty ? "" : "; removed " + outcome.removed.joined(separator: ", "))")
        } else {
            logger.info("\(directory) already publishes \(m.trieName) signed by key \(m.keyID)")
        }
        return true
    } catch {
        logger.error("publish: \(error)")
        return false
    }
}

/// refresh.publish: after a refresh, the live trie goes to the nodes.
func publishAfterRefresh(_ cfg: GeoGateConfig, logger: Logger) -> Bool {
    guard let p = cfg.refresh.publish else { return true }
    do {
        let key = TrieSigningKey(try TrieSigning.privateKey(p.signKey))
        return publishTrie(try cfg.trieFile(override: nil), key: key, directory: p.directory, keep: p.keep, logger: logger)
    } catch {
        logger.error("publish: refresh.publish.sign-key: \(error)")
        return false
    }
}
