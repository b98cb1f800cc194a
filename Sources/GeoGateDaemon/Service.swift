import CGeoGateSupport
import Logging
import GeoGateCore
import GeoGateFirewall
import GeoGatePolicy
import GeoGateTrie
import NIOCore
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
    /// The config's profiles ready to decide, in config order.
    let profiles: [ProfileEntry]
    /// daemon.log-decisions, read once per snapshot.
    let logDecisions: DaemonConfig.DecisionLogging
    /// The two files as they were when loaded: a replaced file differs.
    let files: WatchedFiles
    /// The run-time entries (`<state-dir>/entries`) the profiles decide with.
    public let entries: RuntimeEntries

    init(trie: TrieFile, config: GeoGateConfig, entries: RuntimeEntries, files: WatchedFiles, counters: (String) -> VerdictCounters) {
        self.trie = trie
        self.config = config
        self.files = files
        self.entries = entries
        let now = Int64(time(nil))
        self.loadedAt = now
        profiles = config.profiles.map {
            ProfileEntry(name: $0.name, policy: config.policy($0, entries: entries, now: now), counters: counters($0.name))
        }
        logDecisions = config.daemon.logDecisions
    }

    /// Loads the config, then the trie it names (or `database`); throws a message.
    /// `entriesFailure`: at start-up, an entries file that cannot be read is
    /// reported there and the daemon serves without run-time entries (web logins
    /// must not stop for it); nil (a reload): it fails the reload, the old snapshot serves.
    static func load(configPath: String, database: String?, counters: (String) -> VerdictCounters,
                     entriesFailure: ((String) -> Void)? = nil) throws -> Snapshot {
        // Each file's identity is taken before it is read: a replacement racing the
        // load then shows up as a change, and costs one more reload, never a miss.
        let configIdentity = FileIdentity(path: configPath)
        let config = try GeoGateConfig.load(path: configPath)
        let triePath = try config.trieFile(override: database)
        let trieIdentity = FileIdentity(path: triePath)
        let trie = try TrieFile(path: triePath)
        var entries = RuntimeEntries()
        do { entries = try RuntimeEntries.load(path: config.entriesFile) } catch {
            guard let report = entriesFailure else { throw error }
            report("\(error)")
        }
        return Snapshot(trie: trie, config: config, entries: entries,
                        files: WatchedFiles(triePath: triePath, trie: trieIdentity, config: configIdentity,
                                            dropIns: WatchedFiles.dropIns(config)), counters: counters)
    }

    func profile(named name: String) -> ProfileEntry? {
        for p in profiles where p.name == name { return p }
        return nil
    }
}

/// A class so that finding one per request costs one reference, not a copy of
/// the profile's lists.
final class ProfileEntry: Sendable {
    let name: String
    let policy: Policy
    let counters: VerdictCounters

    init(name: String, policy: Policy, counters: VerdictCounters) {
        self.name = name
        self.policy = policy
        self.counters = counters
    }
}

/// A profile's verdicts since the daemon started; kept by name across reloads.
final class VerdictCounters: @unchecked Sendable {
    let allow = Atomic<Int>(0)
    let deny = Atomic<Int>(0)
    /// Verdicts per country, for /metrics: slot `2 * countrySlot + (deny ? 1 : 0)`,
    /// updated with relaxed atomic adds (CGeoGateSupport); slot 0 is "no country".
    let byCountry: UnsafeMutablePointer<UInt64>

    /// Two characters of [A-Z0-9] (real data's special codes have digits: A1, O1).
    static let countrySlots = 36 * 36 + 1

    init() {
        byCountry = .allocate(capacity: 2 * Self.countrySlots)
        byCountry.initialize(repeating: 0, count: 2 * Self.countrySlots)
    }

    deinit { byCountry.deallocate() }

    static func slot(_ country: CountryCode?) -> Int {
        guard let c = country else { return 0 }
        func digit(_ b: UInt16) -> Int { b >= 65 ? Int(b) - 65 : Int(b) - 48 + 26 }
        return digit(c.rawValue >> 8) * 36 + digit(c.rawValue & 0xFF) + 1
    }

    /// The code of a slot (its inverse), nil for slot 0.
    static func code(_ slot: Int) -> String? {
        guard slot > 0 else { return nil }
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        return String([alphabet[(slot - 1) / 36], alphabet[(slot - 1) % 36]])
    }

    func count(_ decision: Decision) {
        geogate_counter_add(byCountry + 2 * Self.slot(decision.country) + (decision.verdict == .deny ? 1 : 0), 1)
    }
}

/// The verdict counters of every profile name seen, so a reload keeps counting.
final class CounterRegistry: Sendable {
    let byName = Mutex<[String: VerdictCounters]>([:])

    func counters(_ name: String) -> VerdictCounters {
        byName.withLock { all in
            if let c = all[name] { return c }
            let c = VerdictCounters()
            all[name] = c
            return c
        }
    }
}

/// Which file a path names now: a replacement by rename changes the inode, an
/// edit in place the size or modification time.
struct FileIdentity: Equatable, Sendable {
    var device: UInt64 = 0, inode: UInt64 = 0, size: Int64 = 0, modified: Int64 = 0, modifiedNanoseconds: Int64 = 0

    /// nil when the path cannot be stat'ed (missing).
    init?(path: String) {
        var s = stat()
        guard stat(path, &s) == 0 else { return nil }
        device = UInt64(s.st_dev)
        inode = UInt64(s.st_ino)
        size = Int64(s.st_size)
        modified = Int64(s.st_mtim.tv_sec)
        modifiedNanoseconds = Int64(s.st_mtim.tv_nsec)
    }
}

struct WatchedFiles: Equatable, Sendable {
    var triePath: String
    var trie: FileIdentity?
    var config: FileIdentity?
    /// The drop-in directory (a file added, removed or renamed in changes it) and
    /// each drop-in read. Taken after the load: an edit racing it is seen at the
    /// next RELOAD or SIGHUP.
    var dropIns: [FileIdentity?] = []

    static func dropIns(_ config: GeoGateConfig) -> [FileIdentity?] {
        guard let directory = config.profilesDirectory else { return [] }
        return [FileIdentity(path: directory)] + config.dropInFiles.map { FileIdentity(path: $0) }
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
    /// Bumped by every swap, so a connection can keep using the snapshot it has
    /// without taking the lock on each read (`snapshot(cached:)`).
    private let generation = Atomic<Int>(0)
    let verdictCounters = CounterRegistry()
    /// The files of the last reload that failed, so a watch does not retry the same bad file.
    private let lastFailedFiles = Mutex<WatchedFiles?>(nil)
    let requests = Atomic<Int>(0)
    let errors = Atomic<Int>(0)
    let reloads = Atomic<Int>(0)
    let failedReloads = Atomic<Int>(0)
    /// Connections open now, and refused at the cap (the server keeps them).
    public let openConnections = Atomic<Int>(0)
    public let refusedConnections = Atomic<Int>(0)
    /// When the daemon started (Unix seconds).
    public let startTime = Int64(time(nil))
    /// The last reload: when (Unix seconds, 0: none yet) and whether it worked.
    let lastReloadTime = Atomic<Int>(0)
    let lastReloadFailed = Atomic<Bool>(false)
    /// How long answering one read's requests took (a batch; most reads carry one).
    let answerDurations = DurationHistogram()

    /// Held by a reload and by a run-time entry change from load to swap, so an
    /// older read of the entries can never replace a newer one.
    private let entryChanges = Mutex<Void>(())

    /// Where RELOAD requests are logged, with who asked and why.
    let logger: Logger?
    /// Where decisions go when daemon.log-decisions asks for them.
    let decisionLog = DecisionLog()

    public init(configPath: String, database: String?, logger: Logger? = nil) throws {
        self.configPath = configPath
        self.database = database
        self.logger = logger
        let registry = verdictCounters
        self.current = Mutex(try Snapshot.load(configPath: configPath, database: database, counters: registry.counters,
                                               entriesFailure: { logger?.error("run-time entries: \($0); serving without them until they are fixed and reloaded") }))
    }

    public var snapshot: Snapshot { current.withLock { $0 } }

    /// A connection's cached snapshot: kept while no swap happened since it was
    /// taken, else replaced by the current one.
    public struct CachedSnapshot {
        var snapshot: Snapshot?
        var generation = -1
        public init() {}
        init(snapshot: Snapshot, generation: Int) {
            self.snapshot = snapshot
            self.generation = generation
        }
    }

    func snapshot(cached: inout CachedSnapshot) -> Snapshot {
        let now = generation.load(ordering: .acquiring)
        if now == cached.generation, let s = cached.snapshot { return s }
        let (s, g) = current.withLock { ($0, generation.load(ordering: .relaxed)) }
        cached = CachedSnapshot(snapshot: s, generation: g)
        return s
    }

    /// Maps the new trie and config, validates both, then swaps; on any error the
    /// old snapshot keeps serving and the error is returned.
    @discardableResult
    public func reload() -> Result<Snapshot, ServiceError> {
        entryChanges.withLock { _ in reloadNow() }
    }

    private func reloadNow() -> Result<Snapshot, ServiceError> {
        let filesBefore = currentFiles()
        do {
            let fresh = try Snapshot.load(configPath: configPath, database: database, counters: verdictCounters.counters)
            current.withLock {
                $0 = fresh
                generation.add(1, ordering: .releasing)
            }
            reloads.add(1, ordering: .relaxed)
            lastReloadFailed.store(false, ordering: .relaxed)
            lastReloadTime.store(Int(time(nil)), ordering: .relaxed)
            lastFailedFiles.withLock { $0 = nil }
            return .success(fresh)
        } catch {
            failedReloads.add(1, ordering: .relaxed)
            lastReloadFailed.store(true, ordering: .relaxed)
            lastReloadTime.store(Int(time(nil)), ordering: .relaxed)
            lastFailedFiles.withLock { $0 = filesBefore }
            return .failure(ServiceError("\(error)"))
        }
    }

    /// The trie (named by the current config) and config files as they are now.
    func currentFiles() -> WatchedFiles {
        let config = try? GeoGateConfig.load(path: configPath)
        let triePath = (try? config?.trieFile(override: database)) ?? snapshot.files.triePath
        return WatchedFiles(triePath: triePath, trie: FileIdentity(path: triePath), config: FileIdentity(path: configPath),
                            dropIns: config.map(WatchedFiles.dropIns) ?? snapshot.files.dropIns)
    }

    /// True when the trie or config file was replaced or changed since the
    /// snapshot was loaded, and not into the same files a reload already refused.
    func filesChanged() -> Bool {
        let snap = snapshot
        let now = WatchedFiles(triePath: snap.files.triePath, trie: FileIdentity(path: snap.files.triePath),
                               config: FileIdentity(path: configPath), dropIns: WatchedFiles.dropIns(snap.config))
        guard now != snap.files else { return false }
        return lastFailedFiles.withLock { $0 } != currentFiles()
    }

    /// Answers every complete line of `input` in order, appending the answer lines
    /// to `output`. Returns the bytes consumed (through the last newline), and
    /// whether it stopped at a line over `Request.maxLineLength`. One snapshot
    /// serves the whole batch (a RELOAD in it switches to the new one); `cache` is
    /// the connection's, so a read costs no lock while nothing was swapped.
    public func answerLines(_ input: UnsafeRawBufferPointer, peerUID: UInt32?, cache: inout CachedSnapshot,
                            into output: inout ByteBuffer) -> (consumed: Int, tooLong: Bool) {
        var snap = snapshot(cached: &cache)
        var start = 0, answered = 0, failed = 0
        let began = DurationHistogram.now()
        // The decision log's lines of this read, written with one write(2) at the end.
        var decisions = DecisionLog.Lines()
        defer {
            requests.add(answered, ordering: .relaxed)
            if failed > 0 { errors.add(failed, ordering: .relaxed) }
            decisionLog.write(&decisions)
            answerDurations.observe(since: began)
        }
        // An unpipelined read (one complete line, the usual client): answered
        // straight, without the groups' set-up, which only pays for itself when
        // there are lookups to overlap (measured: 2-5% of the throughput at 50
        // connections x 1).
        if let found = memchr(input.baseAddress!, 0x0A, input.count) {
            let newline = input.baseAddress!.distance(to: UnsafeRawPointer(found))
            if memchr(found + 1, 0x0A, input.count - newline - 1) == nil {
                let length = newline - (newline > 0 && input[newline - 1] == 0x0D ? 1 : 0)
                if length > Request.maxLineLength { return (0, true) }
                let request = Request.parse(UnsafeRawBufferPointer(rebasing: input[0..<newline]))
                answered = 1
                if case .success(.stats) = request {
                    requests.add(1, ordering: .relaxed)
                    answered = 0
                }
                if !answer(request, snapshot: &snap, peerUID: peerUID, into: &output, decisions: &decisions) { failed += 1 }
                start = newline + 1
                return (start, input.count - start > Request.maxLineLength + 1)
            }
        }
        // The lines go in groups: each group's requests are parsed, their addresses
        // looked up as one batch (`TrieView.countryIndexes`: the group's cache misses
        // overlap), then answered in order. A request other than LOOKUP or CHECK ends
        // its group, so a RELOAD or STATS sees every request before it answered.
        let group = LookupService.batchLines
        return withUnsafeTemporaryAllocation(of: Result<Request, ProtocolError>.self, capacity: group) { parsed in
            withUnsafeTemporaryAllocation(of: IPAddress.self, capacity: group) { addresses in
                withUnsafeTemporaryAllocation(of: UInt16.self, capacity: group) { countries in
                    while start < input.count {
                        var n = 0
                        var tooLong = false
                        while n < group && start < input.count {
                            guard let found = memchr(input.baseAddress! + start, 0x0A, input.count - start) else { break }
                            let newline = input.baseAddress!.distance(to: UnsafeRawPointer(found))
                            // The limit is on the request itself: without the newline and a CR before it.
                            let length = newline - start - (newline > start && input[newline - 1] == 0x0D ? 1 : 0)
                            if length > Request.maxLineLength { tooLong = true; break }
                            let request = Request.parse(UnsafeRawBufferPointer(rebasing: input[start..<newline]))
                            start = newline + 1
                            var endsGroup = false
                            switch request {
                            case .success(.lookup(let a)), .success(.check(_, let a)): addresses[n] = a
                            case .success: addresses[n] = IPAddress(family: .v4, value: 0); endsGroup = true
                            case .failure: addresses[n] = IPAddress(family: .v4, value: 0)
                            }
                            parsed.initializeElement(at: n, to: request)
                            n += 1
                            if endsGroup { break }
                        }
                        if n == 0 { break }
                        snap.trie.view.countryIndexes(of: UnsafeBufferPointer(rebasing: addresses[0..<n]), into: countries)
                        for k in 0..<n {
                            let request = parsed.moveElement(from: k)
                            answered += 1
                            if case .success(.stats) = request {
                                // STATS counts everything before it (and itself).
                                requests.add(answered, ordering: .relaxed)
                                errors.add(failed, ordering: .relaxed)
                                answered = 0
                                failed = 0
                            }
                            if !answer(request, countryIndex: countries[k], snapshot: &snap, peerUID: peerUID, into: &output,
                                       decisions: &decisions) { failed += 1 }
                        }
                        if tooLong { return (start, true) }
                    }
                    // A partial line may still end in CR LF: over the limit plus that CR, it is too long.
                    return (start, input.count - start > Request.maxLineLength + 1)
                }
            }
        }
    }

    /// Requests looked up together in `answerLines` (its stack holds a group's
    /// parsed requests, addresses and answers: no memory per connection).
    static let batchLines = 64

    /// The answer to a last line without its newline (a half-closed connection).
    public func answerLastLine(_ line: UnsafeRawBufferPointer, peerUID: UInt32?, into output: inout ByteBuffer) {
        var snap = snapshot
        var decisions = DecisionLog.Lines()
        requests.add(1, ordering: .relaxed)
        if !answer(Request.parse(line), snapshot: &snap, peerUID: peerUID, into: &output, decisions: &decisions) { errors.add(1, ordering: .relaxed) }
        decisionLog.write(&decisions)
    }

    /// The answer line for a parsed request, as text (the HTTP endpoint, tests).
    public func answer(_ request: Request, peerUID: UInt32?) -> String {
        var snap = snapshot
        var output = ByteBufferAllocator().buffer(capacity: 128)
        var decisions = DecisionLog.Lines()
        requests.add(1, ordering: .relaxed)
        if !answer(request, snapshot: &snap, peerUID: peerUID, into: &output, decisions: &decisions) { errors.add(1, ordering: .relaxed) }
        decisionLog.write(&decisions)
        output.moveWriterIndex(to: output.writerIndex - 1)  // the newline
        return String(buffer: output)
    }

    /// Writes one answer line; false for an `ERR` answer.
    /// `countryIndex`: the country of the request's address in the snapshot's trie,
    /// when a batch looked it up already.
    private func answer(_ parsed: Result<Request, ProtocolError>, countryIndex: UInt16? = nil, snapshot snap: inout Snapshot,
                        peerUID: UInt32?, into output: inout ByteBuffer, decisions: inout DecisionLog.Lines) -> Bool {
        switch parsed {
        case .failure(let error):
            output.writeString(error.description)
            output.writeInteger(UInt8(0x0A))
            return false
        case .success(let request):
            return answer(request, countryIndex: countryIndex, snapshot: &snap, peerUID: peerUID, into: &output, decisions: &decisions)
        }
    }

    private func answer(_ request: Request, countryIndex: UInt16? = nil, snapshot snap: inout Snapshot, peerUID: UInt32?,
                        into output: inout ByteBuffer, decisions: inout DecisionLog.Lines) -> Bool {
        func country(of address: IPAddress) -> CountryCode? {
            let view = snap.trie.view
            return view.countryCode(index: countryIndex ?? view.countryIndex(of: address))
        }
        defer { output.writeInteger(UInt8(0x0A)) }
        switch request {
        case .ping:
            output.writeStaticString("PONG")
        case .lookup(let address):
            output.writeStaticString("OK ")
            output.writeAddress(address)
            output.writeInteger(UInt8(0x20))
            output.writeCountry(country(of: address))
        case .check(let name, let address):
            guard let profile = snap.profile(named: name) else {
                output.writeString(ProtocolError(.unknownProfile, "\"\(name.prefix(32))\" (profiles: \(snap.profiles.map(\.name).joined(separator: " ")))").description)
                return false
            }
            let decision = profile.policy.decide(address, country: country(of: address))
            profile.counters.count(decision)
            if decision.verdict == .allow {
                profile.counters.allow.add(1, ordering: .relaxed)
                if snap.logDecisions == .all { decisionLog.append(decision, address: address, profile: profile.name, to: &decisions) }
            } else {
                profile.counters.deny.add(1, ordering: .relaxed)
                if snap.logDecisions != .none { decisionLog.append(decision, address: address, profile: profile.name, to: &decisions) }
            }
            output.writeDecision(decision)
        case .info:
            let m = snap.trie.metadata
            let now = Int64(time(nil))
            output.writeString("OK built=\(m.buildTime) age=\(max(0, now - m.buildTime)) loaded=\(snap.loadedAt) "
                + "ipv4-ranges=\(m.v4RangeCount) ipv6-ranges=\(m.v6RangeCount) countries=\(snap.trie.countries.count) "
                + "profiles=\(snap.profiles.map(\.name).joined(separator: ",")) "
                + "sources=\(m.sources.map { "\(SafeText.field($0.name, limit: 200)):\(hexString($0.sha256.prefix(8)))" }.joined(separator: ",")) "
                + "started=\(startTime) last-reload=\(lastReloadTime.load(ordering: .relaxed)) "
                + "last-reload-outcome=\(lastReloadTime.load(ordering: .relaxed) == 0 ? "none" : lastReloadFailed.load(ordering: .relaxed) ? "failed" : "ok")")
        case .stats:
            var line = "OK requests=\(requests.load(ordering: .relaxed)) errors=\(errors.load(ordering: .relaxed)) "
                + "reloads=\(reloads.load(ordering: .relaxed)) failed-reloads=\(failedReloads.load(ordering: .relaxed))"
            for p in snap.profiles {
                line += " \(p.name).allow=\(p.counters.allow.load(ordering: .relaxed)) \(p.name).deny=\(p.counters.deny.load(ordering: .relaxed))"
            }
            output.writeString(line)
        case .entry(let request):
            switch changeEntries(request, snapshot: &snap, peerUID: peerUID) {
            case .success(let line): output.writeString(line)
            case .failure(let error):
                output.writeString(error.description)
                return false
            }
        case .reload(let reason):
            let who = "RELOAD from uid \(peerUID.map(String.init) ?? "?")\(reason.map { " (\($0))" } ?? "")"
            guard let uid = peerUID, uid == 0 || uid == getuid() else {
                logger?.warning("\(who) refused: RELOAD is for root or the daemon's own user")
                output.writeString(ProtocolError(.forbidden, "RELOAD is for root or the daemon's own user").description)
                return false
            }
            switch reload() {
            case .success(let fresh):
                snap = fresh
                logger?.info("reloaded (\(who)): trie built \(fresh.trie.metadata.buildTime), \(fresh.config.profiles.count) profiles")
                output.writeString("OK reloaded built=\(fresh.trie.metadata.buildTime)")
            case .failure(let error):
                logger?.error("reload (\(who)) failed, still serving the previous data: \(error)")
                output.writeString(ProtocolError(.reloadFailed, "\(error) (still serving the previous data)").description)
                return false
            }
        }
        return true
    }
}

// MARK: - Run-time entries

extension LookupService {
    /// ALLOW, BLOCK, UNLIST (root, the daemon's user, or a member of entries.group)
    /// and ENTRIES (anyone who may connect). A change runs EntryUpdate without
    /// waiting for the run lock (a refresh or apply holding it: `ERR busy`), then
    /// serves the new entries at once.
    func changeEntries(_ request: EntryRequest, snapshot snap: inout Snapshot, peerUID: UInt32?) -> Result<String, ProtocolError> {
        let now = Int64(time(nil))
        let change: EntryUpdate.Change
        switch request {
        case .count(let name):
            guard snap.profile(named: name) != nil else {
                return .failure(ProtocolError(.unknownProfile, "\"\(name.prefix(32))\" (profiles: \(snap.profiles.map(\.name).joined(separator: " ")))"))
            }
            return .success("OK entries=\(snap.entries.entries(profile: name, now: now).count) max=\(snap.config.entries.maxPerProfile)")
        case .put(let action, let profile, let network, let seconds, let reason):
            change = .put(RuntimeEntry(action: action, profile: profile, network: network, expires: seconds > 0 ? now + seconds : nil,
                                       added: now, uid: peerUID ?? UInt32.max, reason: reason))
        case .unlist(let profile, let network):
            change = .remove(profile: profile, network: network)
        }
        let who = "uid \(peerUID.map(String.init) ?? "?")"
        guard let uid = peerUID, PeerGroups.mayChangeEntries(uid: uid, group: snap.config.entries.group) else {
            logger?.warning("run-time entry change from \(who) refused: not root, the daemon's user or a member of entries.group")
            return .failure(ProtocolError(.forbidden, "changing run-time entries is for root, the daemon's user and members of entries.group"))
        }
        let config = snap.config
        let result: Result<(EntryUpdate.Outcome, Snapshot), EntryError> = entryChanges.withLock { _ in
            do throws(EntryError) {
                let outcome = try EntryUpdate.apply(change, config: config, lockWaitSeconds: 0, command: "geogate serve (\(who))",
                                                    reloadDaemon: false, now: now)
                let current = snapshot
                let fresh = Snapshot(trie: current.trie, config: current.config, entries: outcome.entries, files: current.files,
                                     counters: verdictCounters.counters)
                swap(to: fresh)
                return .success((outcome, fresh))
            } catch {
                return .failure(error)
            }
        }
        switch result {
        case .success(let (outcome, fresh)):
            snap = fresh
            logger?.notice("entry: \(outcome.summary) by \(who)")
            for line in outcome.kernel { logger?.info("entry: \(line)") }
            switch change {
            case .put(let e): return .success("OK \(e.action.rawValue) \(e.profile) \(e.network) expires=\(e.expires.map(String.init) ?? "never")")
            case .remove(let p, let n): return .success("OK unlisted \(p) \(n)")
            }
        case .failure(let error):
            logger?.warning("entry change by \(who) refused or failed: \(error)")
            let code: ProtocolError.Code = switch error.code {
            case .full: .full
            case .notFound: .notFound
            case .badRequest: .badRequest
            case .forbidden: .forbidden
            case .busy: .busy
            case .failed: .entryFailed
            }
            return .failure(ProtocolError(code, SafeText.field(error.description, limit: 400)))
        }
    }

    /// Serves `fresh` from now on.
    func swap(to fresh: Snapshot) {
        current.withLock {
            $0 = fresh
            generation.add(1, ordering: .releasing)
        }
    }
}

/// Who may change run-time entries over the socket.
enum PeerGroups {
    /// Root, the daemon's own user, or a member of `group` (its primary group or a
    /// supplementary one, from the user and group databases).
    static func mayChangeEntries(uid: UInt32, group: String?) -> Bool {
        if uid == 0 || uid == getuid() { return true }
        guard let group, let gid = groupID(group) else { return false }
        var pwd = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getpwuid_r(uid, &pwd, &buffer, buffer.count, &result) == 0, result != nil, let name = pwd.pw_name else { return false }
        if pwd.pw_gid == gid { return true }
        var count: Int32 = 256
        var groups = [gid_t](repeating: 0, count: Int(count))
        guard getgrouplist(name, pwd.pw_gid, &groups, &count) >= 0 else { return false }
        return groups.prefix(Int(count)).contains(gid)
    }

    static func groupID(_ name: String) -> gid_t? {
        var grp = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getgrnam_r(name, &grp, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return grp.gr_gid
    }
}

extension ByteBuffer {
    /// Two letters, or `--` for no country.
    mutating func writeCountry(_ country: CountryCode?) {
        if let c = country {
            writeInteger(UInt16(c.rawValue))  // big-endian: the first letter first
        } else {
            writeStaticString("--")
        }
    }

    /// Dotted IPv4 written digit by digit (no allocation); IPv6 in RFC 5952 form.
    mutating func writeAddress(_ address: IPAddress) {
        guard address.family == .v4 else {
            writeString(IPAddress.format(address.value, family: .v6))
            return
        }
        let v = UInt32(truncatingIfNeeded: address.value)
        var shift: UInt32 = 24
        while true {
            let octet = UInt8(truncatingIfNeeded: v >> shift)
            if octet >= 100 { writeInteger(0x30 + octet / 100) }
            if octet >= 10 { writeInteger(0x30 + octet / 10 % 10) }
            writeInteger(0x30 + octet % 10)
            if shift == 0 { break }
            writeInteger(UInt8(ascii: "."))
            shift -= 8
        }
    }

    /// `ALLOW|DENY <CC|--> <reason>`, as `Decision.description` prints it.
    mutating func writeDecision(_ decision: Decision) {
        let verdict: StaticString = decision.verdict == .allow ? "ALLOW " : "DENY "
        let word = decision.reason.word
        // The fixed part in one write: verdict, country, reason word.
        writeWithUnsafeMutableBytes(minimumWritableBytes: 32) { out in
            var n = 0
            func put(_ s: StaticString) {
                for i in 0..<s.utf8CodeUnitCount { out[n + i] = s.utf8Start[i] }
                n += s.utf8CodeUnitCount
            }
            put(verdict)
            if let c = decision.country {
                out[n] = UInt8(c.rawValue >> 8)
                out[n + 1] = UInt8(c.rawValue & 0xFF)
            } else {
                out[n] = UInt8(ascii: "-")
                out[n + 1] = UInt8(ascii: "-")
            }
            out[n + 2] = 0x20
            n += 3
            put(word)
            return n
        }
        if let network = decision.reason.network {
            writeInteger(UInt8(0x20))
            writeAddress(IPAddress(family: network.family, value: network.address))
            writeInteger(UInt8(ascii: "/"))
            writeString(String(network.prefixLength))
        }
    }
}
