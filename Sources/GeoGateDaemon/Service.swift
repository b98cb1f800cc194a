import GeoGateCore
import GeoGatePolicy
import GeoGateTrie
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What the daemon answers from: a trie file and a config, loaded and validated
/// together. Immutable; a reload builds a new one and swaps the reference, so a
/// request in flight finishes on the snapshot it started with.
public final class Snapshot: Sendable {
    public let trie: TrieFile
    public let config: GeoGateConfig
    public let loadedAt: Int64

    public init(trie: TrieFile, config: GeoGateConfig, loadedAt: Int64) {
        self.trie = trie
        self.config = config
        self.loadedAt = loadedAt
    }

    /// Loads the config, then the trie it names (or `database`); throws a message.
    public static func load(configPath: String, database: String?) throws -> Snapshot {
        let config = try GeoGateConfig.load(path: configPath)
        return Snapshot(trie: try TrieFile(path: config.trieFile(override: database)), config: config, loadedAt: Int64(time(nil)))
    }
}

public struct ServiceError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The protocol's answers, independent of the transport: the current snapshot,
/// reloads, and counters. Safe to call from any thread.
public final class LookupService: Sendable {
    public let configPath: String
    public let database: String?
    private let current: Mutex<Snapshot>
    private let counters = Mutex(Counters())

    struct Counters {
        var requests = 0
        var errors = 0
        var reloads = 0
        var failedReloads = 0
        /// Profile name → verdicts given.
        var verdicts: [String: (allow: Int, deny: Int)] = [:]
    }

    public init(configPath: String, database: String?) throws {
        self.configPath = configPath
        self.database = database
        self.current = Mutex(try Snapshot.load(configPath: configPath, database: database))
    }

    public var snapshot: Snapshot { current.withLock { $0 } }

    /// Maps the new trie and config, validates both, then swaps; on any error the
    /// old snapshot keeps serving and the error is returned.
    @discardableResult
    public func reload() -> Result<Snapshot, ServiceError> {
        do {
            let fresh = try Snapshot.load(configPath: configPath, database: database)
            current.withLock { $0 = fresh }
            counters.withLock { $0.reloads += 1 }
            return .success(fresh)
        } catch {
            counters.withLock { $0.failedReloads += 1 }
            return .failure(ServiceError("\(error)"))
        }
    }

    /// The answer line (without newline) for one request line. `peerUID` is the
    /// caller's uid (SO_PEERCRED), nil when unknown: RELOAD needs root or our uid.
    public func answer(_ line: some Collection<UInt8>, peerUID: UInt32?) -> String {
        switch Request.parse(line) {
        case .failure(let error):
            counters.withLock { $0.requests += 1; $0.errors += 1 }
            return error.description
        case .success(let request):
            return answer(request, peerUID: peerUID)
        }
    }

    /// The answer line for a parsed request (the socket protocol and the HTTP endpoint).
    public func answer(_ request: Request, peerUID: UInt32?) -> String {
        counters.withLock { $0.requests += 1 }
        let snap = snapshot
        switch request {
        case .ping:
            return "PONG"
        case .lookup(let address):
            return "OK \(address) \(snap.trie.country(of: address)?.description ?? "--")"
        case .check(let name, let address):
            guard let profile = snap.config.profile(named: name) else {
                counters.withLock { $0.errors += 1 }
                return ProtocolError(.unknownProfile, "\"\(name.prefix(32))\" (profiles: \(snap.config.profiles.map(\.name).joined(separator: " ")))").description
            }
            let decision = snap.config.policy(profile).decide(address, country: snap.trie.country(of: address))
            counters.withLock {
                if decision.verdict == .allow { $0.verdicts[name, default: (0, 0)].allow += 1 } else { $0.verdicts[name, default: (0, 0)].deny += 1 }
            }
            return decision.description
        case .info:
            let m = snap.trie.metadata
            let now = Int64(time(nil))
            return "OK built=\(m.buildTime) age=\(max(0, now - m.buildTime)) loaded=\(snap.loadedAt) "
                + "ipv4-ranges=\(m.v4RangeCount) ipv6-ranges=\(m.v6RangeCount) countries=\(snap.trie.countries.count) "
                + "profiles=\(snap.config.profiles.map(\.name).joined(separator: ",")) "
                + "sources=\(m.sources.map { "\($0.name):\(hexString($0.sha256.prefix(8)))" }.joined(separator: ","))"
        case .stats:
            let c = counters.withLock { $0 }
            var line = "OK requests=\(c.requests) errors=\(c.errors) reloads=\(c.reloads) failed-reloads=\(c.failedReloads)"
            for profile in snap.config.profiles {
                let v = c.verdicts[profile.name] ?? (0, 0)
                line += " \(profile.name).allow=\(v.allow) \(profile.name).deny=\(v.deny)"
            }
            return line
        case .reload:
            guard let uid = peerUID, uid == 0 || uid == getuid() else {
                counters.withLock { $0.errors += 1 }
                return ProtocolError(.forbidden, "RELOAD is for root or the daemon's own user").description
            }
            switch reload() {
            case .success(let fresh): return "OK reloaded built=\(fresh.trie.metadata.buildTime)"
            case .failure(let error): return ProtocolError(.reloadFailed, "\(error) (still serving the previous data)").description
            }
        }
    }
}
