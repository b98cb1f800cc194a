import AsyncHTTPClient
import Crypto
import GeoGateCore
import GeoGateFirewall
import GeoGateImport
import GeoGatePolicy
import GeoGateTrie
import Logging
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// One refresh, in the order the data flows: the run lock; fetch every source
/// (conditional requests, checks, deadlines); unpack; compile; compare with the live
/// trie (unchanged: stop); the sanity guard. Then one transaction over the three
/// live things (Docs/TRANSACTIONS.md):
/// 1. build everything aside: the new trie written and fsynced beside the live one,
///    the new sets filled as temporary sets (ownership and lockout checked);
/// 2. switch: swap the sets in, rename the trie over the live one, RELOAD the daemon;
/// 3. a failure at any switch undoes the ones before it (sets swapped back, the old
///    trie renamed back), so the trie, the kernel sets and what the daemon serves
///    are all the old data or all the new.
/// Only then the download cache, the replaced trie kept as `<database>.1` for
/// rollback (older ones shift to .2, .3, ... up to refresh.keep-previous), and on-change.
public struct Refresher {
    /// `changed` carries what changed, as the log's line says it (for `geogate status`).
    public enum Outcome: Sendable { case changed(String), unchanged }

    let config: GeoGateConfig
    let logger: Logger
    /// Build time for the new trie and the month DB-IP's file is picked by.
    let now: Int64

    public init(config: GeoGateConfig, logger: Logger, now: Int64) {
        self.config = config
        self.logger = logger
        self.now = now
    }

    var settings: RefreshConfig { config.refresh }
    var cacheDirectory: String { settings.stateDirectory + "/cache" }
    var workDirectory: String { settings.stateDirectory + "/work" }

    public func run(force: Bool) async throws(RefreshError) -> Outcome {
        let deadline = monotonicSeconds() + Double(settings.deadlineSeconds)
        guard !settings.sources.isEmpty else { throw RefreshError("\(config.path): refresh.sources lists no source") }
        let live: String
        do { live = try config.trieFile(override: nil) } catch { throw RefreshError("\(error)") }
        let lock = try takeLock("geogate refresh")
        defer { lock.release() }
        try makeDirectories([settings.stateDirectory, cacheDirectory, workDirectory])
        defer { touch(settings.lastRunStamp) }
        removeStaleWork()
        let work = try temporaryDirectory(in: workDirectory)
        defer { removeTree(work) }

        // 1. Fetch (the feeds too; a fleet node: the publisher's signed trie, judged against the live one).
        let current = try? TrieFile(path: live)
        let (fetched, feedsFetched, published) = try await fetchAll(into: work, deadline: deadline, force: force,
                                                                     liveBuildTime: current?.metadata.buildTime)

        // 2. The new data: the sources imported in merge order and compiled below,
        // or the publication, verified (Publication.swift).
        let v4: RangeMap, v6: RangeMap
        let fingerprint: SourceFingerprint
        var metadataSources: [TrieMetadata.Source] = []
        var publication: Publication?
        var unchangedBecause: String?
        switch published?.0 {
        case nil:
            try checkDeadline(deadline, before: "compiling")
            var sources: [ImportedSource] = []
            var options = ImportOptions()
            options.maximumInputBytes = settings.maxInputMegabytes << 20
            options.maximumRanges = settings.maxRanges
            for f in fetched {
                do {
                    // The range limit counts every source's ranges together.
                    options.rangesBefore = sources.reduce(0) { $0 + $1.v4Count + $1.v6Count }
                    sources += try SourceLoader.load(paths: f.inputs, format: f.format.flatMap(SourceFormat.init(rawValue:)), options: options)
                } catch { throw RefreshError("\(f.download.name): \(error)") }
            }
            fingerprint = SourceFingerprint(sources.map(\.sha256))
            metadataSources = sources.map {
                TrieMetadata.Source(name: $0.name, sha256: $0.sha256, storedSize: UInt64($0.storedSize), format: $0.format.rawValue)
            }
            let dataset = CountryDataset(taking: &sources)
            (v4, v6) = (dataset.v4, dataset.v6)
        case .unchanged(let why)?:
            unchangedBecause = why
            (v4, v6) = (RangeMap(family: .v4), RangeMap(family: .v6))
            fingerprint = SourceFingerprint([])
        case .fetched(let p)?:
            publication = p
            (v4, v6) = (p.trie.rangeMap(.v4), p.trie.rangeMap(.v6))
            fingerprint = SourceFingerprint(p.trie.metadata.sources.map(\.sha256))
        }
        let manifestRecord = published?.1.map { [$0] } ?? []

        // The feeds: parsed, capped and guarded, each against the networks kept from the last refresh.
        let feeds = try judgeFeeds(feedsFetched, force: force)
        let feedsChanged = feeds.contains { $0.changed }

        // 3. Unchanged: the same inputs, byte for byte, as the live trie was built from,
        // or as data the admin rolled back from (kept out until newer data comes, or --force).
        // Then only changed feeds move (sets, kept networks, daemon).
        // (A publication is the same as the live trie only byte for byte: Publication.swift.)
        var rolledBack = RolledBackList(path: rolledBackFile)
        if unchangedBecause == nil {
            if publication == nil, let current, SourceFingerprint(current.metadata.sources.map(\.sha256)) == fingerprint {
                unchangedBecause = "every source is what \(live) was built from"
            } else if rolledBack.contains(fingerprint) {
                if !force {
                    unchangedBecause = "the sources are those of data rolled back with `geogate rollback`; keeping \(live) (--force takes them)"
                } else {
                    rolledBack.remove(fingerprint)
                }
            }
        }
        if let why = unchangedBecause {
            guard feedsChanged, let current else {
                try commitCache(fetched + feedsFetched + manifestRecord)
                logger.info("unchanged: \(why)\(feeds.isEmpty ? "" : "; the feeds too")")
                return .unchanged
            }
            logger.info("country data unchanged: \(why)")
            try switchFeeds(feeds, v4: current.rangeMap(.v4), v6: current.rangeMap(.v6))
            try commitCache(fetched + feedsFetched + manifestRecord)
            let summary = feeds.filter(\.changed).map(\.summary).joined(separator: "; ")
            logger.notice("changed: \(summary)")
            if let command = settings.onChange { runOnChange(command, trie: live) }
            return .changed(summary)
        }

        // 4. The guard.
        let newCoverage = Coverage(v4: v4, v6: v6)
        let oldCoverage = current.map { Coverage(v4: $0.rangeMap(.v4), v6: $0.rangeMap(.v6)) }
        let (absolute, verdict) = SanityGuard.judge(new: newCoverage, old: oldCoverage, config: config)
        if !absolute.isEmpty { throw RefreshError("refused: " + absolute.joined(separator: "; ")) }
        if !verdict.refusals.isEmpty {
            if !force { throw RefreshError("refused by the sanity guard (--force to accept): " + verdict.refusals.joined(separator: "; ")) }
            logger.warning("--force: accepting although \(verdict.refusals.joined(separator: "; "))")
        }
        let bytes: [UInt8]
        if let publication {
            bytes = publication.bytes
        } else {
            do { bytes = try TrieWriter.bytes(v4: v4, v6: v6, sources: metadataSources, buildTime: now,
                                             maxNodes: settings.maxNodes) } catch {
                throw RefreshError("compile: \(error)")
            }
        }
        try checkDeadline(deadline, before: "switching to the new data")

        // 5. The transaction.
        try switchTo(trie: bytes, signature: publication?.signature, live: live, v4: v4, v6: v6, feeds: feeds)
        keepReplaced(live: live)
        if force { rolledBack.save(logger: logger) }
        try commitCache(fetched + feedsFetched + manifestRecord)
        if let p = publication {
            logger.notice("applied the publisher's \(p.manifest.trieName), built \(p.trie.metadata.buildTime), signed by key \(p.key.id) (\(p.key.origin))")
        }
        let summary = """
            \(v4.ranges.count) IPv4 ranges (was \(current?.metadata.v4RangeCount ?? 0)), \
            \(v6.ranges.count) IPv6 ranges (was \(current?.metadata.v6RangeCount ?? 0)); IPv4 addresses \
            \(Int(oldCoverage?.v4 ?? 0)) -> \(Int(newCoverage.v4))\(verdict.changes.isEmpty ? "" : "; profile countries: " + verdict.changes.joined(separator: ", "))\
            \(feeds.filter(\.changed).map { "; " + $0.summary }.joined())
            """
        logger.notice("changed: \(live) now \(summary)")
        if let command = settings.onChange { runOnChange(command, trie: live) }
        return .changed(summary)
    }

    /// Steps back one: `<database>.1` becomes the live trie again, as the same
    /// transaction as a refresh (sets, trie and daemon together); .2 becomes .1, and
    /// so on. The data stepped away from is dropped, and its sources remembered so
    /// that the next refresh does not bring it straight back (only newer data, or
    /// `refresh --force`).
    public func rollback() throws(RefreshError) {
        let live: String
        do { live = try config.trieFile(override: nil) } catch { throw RefreshError("\(error)") }
        let lock = try takeLock("geogate rollback")
        defer { lock.release() }
        adoptOldPrevious(live: live)
        let previous = Self.previous(live, 1)
        guard access(previous, F_OK) == 0 else {
            throw RefreshError("\(previous): no earlier trie to step back to (a refresh keeps up to refresh.keep-previous = \(settings.keepPrevious))")
        }
        let trie: TrieFile
        let bytes: [UInt8]
        do {
            bytes = try readWholeFile(previous, limit: 1 << 30)
            trie = try TrieFile(bytes: bytes, name: previous)
        } catch { throw RefreshError("\(previous): \(error)") }
        let replaced = try? TrieFile(path: live)
        // A node's earlier trie goes back with the publisher's signature it came with.
        let signature = try? readWholeFile(previous + ".sig", limit: 4096)
        try switchTo(trie: bytes, signature: signature, live: live, v4: trie.rangeMap(.v4), v6: trie.rangeMap(.v6))
        // The switch succeeded: drop the data stepped away from, remember its sources.
        if let replaced {
            var list = RolledBackList(path: rolledBackFile)
            list.add(SourceFingerprint(replaced.metadata.sources.map(\.sha256)))
            do { try makeDirectories([settings.stateDirectory]) } catch { logger.warning("\(error)") }
            list.save(logger: logger)
        }
        Self.removeTrie(live + ".undo")
        Self.removeTrie(previous)
        var k = 2
        while access(Self.previous(live, k), F_OK) == 0 {
            Self.renameTrie(Self.previous(live, k), Self.previous(live, k - 1))
            k += 1
        }
        let left = k - 2
        logger.notice("rolled back: \(live) is the trie built \(trie.metadata.buildTime) again; \(left) earlier one\(left == 1 ? "" : "s") left to step back to")
        if let command = settings.onChange { runOnChange(command, trie: live) }
    }

    /// `<database>.k`: the k-th newest replaced trie.
    static func previous(_ live: String, _ k: Int) -> String { "\(live).\(k)" }

    /// A kept trie moves with its signature (`<trie>.sig`, a fleet node's), or
    /// loses a stale one left at the new name.
    @discardableResult
    static func renameTrie(_ from: String, _ to: String) -> Bool {
        guard rename(from, to) == 0 else { return false }
        if rename(from + ".sig", to + ".sig") != 0 { unlink(to + ".sig") }
        return true
    }

    static func removeTrie(_ path: String) {
        unlink(path)
        unlink(path + ".sig")
    }

    /// Where the sources of data rolled back from are remembered.
    var rolledBackFile: String { settings.stateDirectory + "/rolled-back" }

    /// After a successful switch: the replaced trie (kept as `.undo` during the
    /// switch) becomes `<database>.1`, the older ones shift up, and the oldest
    /// beyond refresh.keep-previous is removed.
    func keepReplaced(live: String) {
        let undo = live + ".undo"
        guard access(undo, F_OK) == 0 else { return }
        adoptOldPrevious(live: live)
        let keep = settings.keepPrevious
        guard keep > 0 else { Self.removeTrie(undo); return }
        var k = keep
        while access(Self.previous(live, k + 1), F_OK) == 0 { k += 1 }
        // Oldest first: drop what falls beyond the limit, move the rest up one.
        while k >= 1 {
            let from = Self.previous(live, k)
            if access(from, F_OK) == 0 {
                if k >= keep { Self.removeTrie(from) } else { Self.renameTrie(from, Self.previous(live, k + 1)) }
            }
            k -= 1
        }
        if !Self.renameTrie(undo, Self.previous(live, 1)) {
            logger.warning("\(Self.previous(live, 1)): cannot keep the replaced trie for rollback: \(String(cString: strerror(errno)))")
            Self.removeTrie(undo)
        }
    }

    /// geogate 0.1 kept one replaced trie as `<database>.previous`: it is .1 now.
    func adoptOldPrevious(live: String) {
        let old = live + ".previous"
        if access(old, F_OK) == 0 && access(Self.previous(live, 1), F_OK) != 0 { rename(old, Self.previous(live, 1)) }
    }

    func takeLock(_ command: String) throws(RefreshError) -> RunLock {
        do { return try LiveState.lock(config, command: command, waiting: { logger.info("\($0)") }) } catch {
            throw RefreshError("\(error)")
        }
    }

    func checkDeadline(_ deadline: Double, before step: String) throws(RefreshError) {
        guard monotonicSeconds() < deadline else {
            throw RefreshError("the refresh ran past its deadline of \(settings.deadlineSeconds) s (refresh.deadline) before \(step)")
        }
    }

    /// Work directories of runs that were killed: this run holds the lock, so no
    /// other run is using one.
    func removeStaleWork() {
        guard let dir = opendir(workDirectory) else { return }
        var stale: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasPrefix("run-") { stale.append(workDirectory + "/" + name) }
        }
        closedir(dir)
        for path in stale {
            logger.info("removing \(path), left by a refresh that did not finish")
            removeTree(path)
        }
    }

    // MARK: - The switch

    /// Stages the trie and the sets, then switches sets, trie and daemon, undoing
    /// the earlier switches when a later one fails. On success the replaced trie is
    /// left as `<database>.undo` for the caller (refresh keeps it, rollback drops it).
    /// `signature`: the publisher's, which becomes `<database>.sig` with the trie
    /// (nil: a trie compiled here, and a `.sig` of the replaced one goes with it).
    func switchTo(trie bytes: [UInt8], signature: [UInt8]? = nil, live: String, v4: RangeMap, v6: RangeMap,
                  feeds: [FeedUpdate] = []) throws(RefreshError) {
        // Built aside: nothing live changes if either fails.
        let staged: AtomicFile.Staged
        var stagedSignature: AtomicFile.Staged?
        do {
            try FaultInjection.check("trie-write")
            staged = try AtomicFile.stage(bytes, for: live)
            if let signature { stagedSignature = try AtomicFile.stage(signature, for: live + ".sig") }
        } catch { throw RefreshError("\(live): cannot write the new trie: \(error)") }
        func discardStaged() {
            staged.discard()
            stagedSignature?.discard()
        }
        var sets: PreparedSets?
        if settings.applySets {
            do { sets = try prepareSets(v4: v4, v6: v6, config: configWith(feeds)) } catch {
                discardStaged()
                throw error
            }
        }
        // The old trie (and its signature), kept by a second name until the end, to undo the rename.
        let undo = live + ".undo"
        Self.removeTrie(undo)
        let hadLive = access(live, F_OK) == 0
        if hadLive && link(live, undo) != 0 {
            let reason = String(cString: strerror(errno))
            discardStaged()
            sets?.revert()
            throw RefreshError("\(undo): cannot keep the live trie aside: \(reason)")
        }
        let hadSignature = access(live + ".sig", F_OK) == 0 && link(live + ".sig", undo + ".sig") == 0
        var feedFiles = KeptFeeds()
        func undoAll(_ why: String) -> RefreshError {
            // (When the new trie never reached `live`, both names are one file and
            // rename does nothing: the unlink drops the second name.)
            if hadLive { rename(undo, live); unlink(undo) } else { unlink(live) }
            if hadSignature { rename(undo + ".sig", live + ".sig"); unlink(undo + ".sig") } else { unlink(live + ".sig") }
            discardStaged()
            feedFiles.revert()
            sets?.revert()
            return RefreshError("\(why); everything was put back: the old trie, the old sets")
        }
        // Switch 1: the sets.
        if var transaction = sets {
            do { try transaction.switchIn() } catch {
                discardStaged()
                Self.removeTrie(undo)
                throw RefreshError("sets: \(error); the live sets, the trie and the daemon were not changed")
            }
            sets = transaction
            for line in transaction.reportLines { logger.info("sets: \(line)") }
        }
        // Switch 2: the trie.
        do {
            try FaultInjection.check("trie-rename")
            try staged.commit()
            // The signature follows the bytes it is over (none for a trie compiled here).
            if let stagedSignature { try stagedSignature.commit() } else { unlink(live + ".sig") }
        } catch { throw undoAll("\(live): cannot put the new trie in place: \(error)") }
        // Switch 2b: the feeds' networks, which the daemon reads with the config.
        do { try feedFiles.write(feeds, stateDirectory: config.stateDirectory) } catch {
            throw undoAll("\(error)")
        }
        // Switch 3: the daemon.
        if settings.reloadDaemon {
            if let failure = reloadDaemon() {
                let error = undoAll("daemon: \(failure)")
                // The daemon may have loaded the new file before it failed: load the old one again.
                _ = reloadDaemon()
                throw error
            }
        }
        sets?.finish()
    }

    /// Fills the new sets aside, after the ownership and lockout checks.
    func prepareSets(v4: RangeMap, v6: RangeMap, config: GeoGateConfig) throws(RefreshError) -> PreparedSets? {
        let plan: [FirewallSet]
        do { plan = try SetPlanner.plan(config: config, maps: [.v4: v4, .v6: v6], profile: nil, perCountry: false) } catch {
            throw RefreshError("sets: \(error)")
        }
        guard !plan.isEmpty else { return nil }
        // While an admin has the filter switched open (`apply --open`), it stays open.
        let planned = OpenFilter.effective(plan, config: config)
        if OpenFilter.isOpen(config) { logger.warning("the filter is switched open (\(config.openMarkerFile)): loading open sets; `geogate apply` closes it") }
        let cut = SetLoader.lockouts(planned, connections: Lockout.incomingConnections())
        if !cut.isEmpty {
            throw RefreshError("sets: \(SetLoader.LockoutRefusal(cutOff: cut)); nothing changed (check, then `geogate apply --force`)")
        }
        do {
            return try PreparedSets.prepare(planned, backend: config.backend) { () throws(IPSetError) in try LiveState.loader(config) }
        } catch { throw RefreshError("sets: \(error)") }
    }

    /// RELOAD on the daemon's socket. A daemon that is not running is no failure (it
    /// reads the new file when it starts); one that is running and does not take the
    /// new data (refuses, cannot be reached, does not answer) is: nil, or why.
    func reloadDaemon() -> String? {
        let path = config.daemon.socket
        do {
            try FaultInjection.check("daemon-reload")
            let answer = try UnixSocketClient.ask(path, "RELOAD refresh", timeoutSeconds: 30)
            guard answer.hasPrefix("OK") else { return "the daemon at \(path) refused the reload: \(SafeText.field(answer))" }
            logger.info("daemon: \(SafeText.field(answer))")
            return nil
        } catch let failure as UnixSocketClient.Failure where failure.daemonIsDown {
            logger.info("daemon: not running (\(failure)); it reads the new trie when it starts")
            return nil
        } catch {
            return "\(error)"
        }
    }

    // MARK: - Fetching

    /// The process's environment (for the proxy variables).
    func processEnvironment() -> [String: String] {
        var out: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let text = String(cString: entry)
            if let eq = text.firstIndex(of: "=") { out[String(text[..<eq])] = String(text[text.index(after: eq)...]) }
            p += 1
        }
        return out
    }

    struct Fetched {
        var download: Download
        /// Input files for the importer.
        var inputs: [String]
        var format: String?
        /// A new download to keep in the cache, with its validators, once the refresh succeeds.
        var downloaded: (path: String, validators: Validators)?
    }

    /// The sources' downloads (or a node's publication), then the feeds' (FeedUpdate),
    /// with one set of HTTP clients.
    func fetchAll(into work: String, deadline: Double, force: Bool, liveBuildTime: Int64?) async throws(RefreshError)
        -> (sources: [Fetched], feeds: [Fetched], publication: (Publication.Fetch, Fetched?)?) {
        let routes = try ProxyRoutes(config: settings, environment: processEnvironment())
        // One client per way out: direct, and each proxy in use.
        var clients: [ProxyServer?: HTTPClient] = [:]
        for server in Set([nil, routes.http, routes.https]) {
            var configuration = HTTPClient.Configuration(
                redirectConfiguration: .follow(max: 5, allowCycles: false),
                timeout: .init(connect: .seconds(30), read: .seconds(Int64(settings.idleTimeoutSeconds))))
            configuration.proxy = server?.configuration
            clients[server] = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
        }
        let fetcher = HTTPFetcher(clients: clients, routes: routes, timeout: .seconds(Int64(settings.timeoutSeconds)), runDeadline: deadline,
                                  retries: settings.retries,
                                  retryDelay: .milliseconds(Int64(settings.retryDelayMilliseconds)),
                                  maxBytes: settings.maxSizeMegabytes << 20, logger: logger)
        var result: [Fetched] = []
        var feeds: [Fetched] = []
        var publication: (Publication.Fetch, Fetched?)?
        var failure: RefreshError?
        do {
            for (index, source) in settings.sources.enumerated() {
                if case .trie(let url) = source.kind {
                    publication = try await fetchPublication(source, url: url, fetcher: fetcher, work: work, force: force,
                                                                   liveBuildTime: liveBuildTime)
                    continue
                }
                for d in Providers.downloads(source, index: index, now: now) {
                    result.append(try await fetch(d, format: source.format, fetcher: fetcher, work: work))
                }
            }
            for (_, _, d) in feedDownloads() {
                var f = try await fetch(d, format: nil, fetcher: fetcher, work: work)
                // A feed is read whole from the file fetched (no archive layer).
                if f.inputs.isEmpty { f.inputs = [work + "/" + d.name + "/" + d.inputName] }
                feeds.append(f)
            }
        } catch { failure = error }
        for client in clients.values { try? await client.shutdown() }
        if let failure { throw failure }
        return (result, feeds, publication)
    }

    func fetch(_ d: Download, format: String?, fetcher: HTTPFetcher, work: String) async throws(RefreshError) -> Fetched {
        let directory = work + "/" + d.name
        try makeDirectories([directory])
        var fetched = Fetched(download: d, inputs: [], format: format)
        let file: String
        switch d.location {
        case .file(let path):
            guard access(path, R_OK) == 0 else { throw RefreshError("\(d.name): \(path): \(String(cString: strerror(errno)))") }
            logger.info("\(d.name): local file \(path)")
            file = path
        case .url(let url):
            let cached = cacheDirectory + "/" + d.name
            let validators = cachedValidators(d.name)
            let target = directory + "/download"
            var outcome = try await fetcher.fetch(url, to: target, validators: validators, user: d.user, password: d.password,
                                                  name: d.name, notFoundIsAnAnswer: d.fallback != nil)
            if outcome == .notFound, let earlier = d.fallback {
                logger.info("\(d.name): \(fetcher.redacted(url)) is not published yet; taking the previous one")
                outcome = try await fetcher.fetch(earlier, to: target, validators: validators, user: d.user, password: d.password, name: d.name)
            }
            switch outcome {
            case .notModified:
                logger.info("\(d.name): not modified (conditional request); using the cached copy")
                file = cached
            case .downloaded(let v, let bytes):
                logger.info("\(d.name): downloaded \(bytes) bytes from \(fetcher.redacted(url))")
                file = target
                fetched.downloaded = (target, v)
            case .notFound:
                throw RefreshError("\(d.name): \(fetcher.redacted(url)): HTTP 404")
            }
        }
        // A 304's cached copy was verified when it was downloaded.
        if fetched.downloaded != nil || d.isLocal { try await verify(file, d, fetcher: fetcher, work: directory) }
        if d.members.isEmpty && d.isLocal {
            fetched.inputs = [file]  // errors then name the admin's own file
        } else if d.members.isEmpty {
            // Linked under the name the importer should see (a zone file's name is its country).
            let input = directory + "/" + d.inputName
            guard symlink(file, input) == 0 else { throw RefreshError("\(d.name): cannot link \(input)") }
            fetched.inputs = [input]
        } else {
            let unpacked = directory + "/members"
            try makeDirectories([unpacked])
            do {
                fetched.inputs = try Archive.extract(file, suffixes: d.members, into: unpacked,
                                                     maxBytes: settings.maxSizeMegabytes << 20, name: d.name)
            } catch { throw RefreshError(error.description) }
            logger.info("\(d.name): unpacked \(fetched.inputs.map { SafeText.field(Providers.lastComponent($0)) }.joined(separator: ", "))")
        }
        return fetched
    }

    /// What the server said of the cached copy of download `name`, for a conditional request.
    func cachedValidators(_ name: String) -> Validators? {
        let cached = cacheDirectory + "/" + name
        guard access(cached, R_OK) == 0, let text = try? readWholeFile(cached + ".validators", limit: 4096) else { return nil }
        return Validators(text: String(decoding: text, as: UTF8.self))
    }

    /// The download's checksum: pinned, or from a sidecar fetched fresh each time.
    func verify(_ file: String, _ d: Download, fetcher: HTTPFetcher, work: String) async throws(RefreshError) {
        let expected: String
        let md5: Bool
        switch d.check {
        case .none: return
        case .sha256(let hex): expected = hex; md5 = false
        case .sha256Sidecar(let url), .md5Sidecar(let url):
            md5 = { if case .md5Sidecar = d.check { return true } else { return false } }()
            let sidecar = work + "/checksum"
            _ = try await fetcher.fetch(url, to: sidecar, validators: nil, user: d.user, password: d.password, name: d.name + " checksum")
            guard let text = try? readWholeFile(sidecar, limit: 4096),
                  let hex = Refresher.firstHexWord(String(decoding: text, as: UTF8.self), length: md5 ? 32 : 64) else {
                throw RefreshError("\(d.name): the checksum file \(fetcher.redacted(url)) holds no \(md5 ? "MD5" : "SHA-256")")
            }
            expected = hex
        }
        let actual = try digest(file, md5: md5, name: d.name)
        guard actual == expected else {
            throw RefreshError("\(d.name): checksum mismatch: \(md5 ? "MD5" : "SHA-256") \(actual), expected \(expected)")
        }
        logger.info("\(d.name): \(md5 ? "MD5" : "SHA-256") verified")
    }

    /// "abc123…  file", "MD5 (file) = abc123…", or the bare digest.
    static func firstHexWord(_ text: String, length: Int) -> String? {
        text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "=" || $0 == "\r" })
            .map { $0.lowercased() }
            .first { $0.count == length && $0.allSatisfy(\.isHexDigit) }
    }

    func digest(_ path: String, md5: Bool, name: String) throws(RefreshError) -> String {
        guard let f = fopen(path, "rb") else { throw RefreshError("\(name): cannot read \(path)") }
        defer { fclose(f) }
        var sha = SHA256(), legacy = Insecure.MD5()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = fread(&buffer, 1, buffer.count, f)
            if n == 0 { break }
            buffer.withUnsafeBytes { chunk in
                let part = UnsafeRawBufferPointer(rebasing: chunk[0..<n])
                if md5 { legacy.update(bufferPointer: part) } else { sha.update(bufferPointer: part) }
            }
        }
        return md5 ? hexString(Array(legacy.finalize())) : hexString(Array(sha.finalize()))
    }

    /// New downloads and their validators into the cache (only after success, so a
    /// refused download is fetched again next time, never answered by a 304).
    func commitCache(_ fetched: [Fetched]) throws(RefreshError) {
        for f in fetched {
            guard let (path, validators) = f.downloaded else { continue }
            let cached = cacheDirectory + "/" + f.download.name
            do {
                try AtomicFile.write(Array(validators.text.utf8), to: cached + ".validators")
            } catch { throw RefreshError("\(cached).validators: \(error)") }
            guard rename(path, cached) == 0 else { throw RefreshError("\(cached): \(String(cString: strerror(errno)))") }
        }
    }

    func runOnChange(_ command: String, trie: String) {
        guard let pid = ChildProcess.spawn("/bin/sh", ["-c", command],
                                           environment: ChildProcess.currentEnvironment + ["GEOGATE_TRIE=\(trie)"]) else {
            logger.error("on-change: cannot start /bin/sh")
            return
        }
        let status = ChildProcess.wait(pid)
        if status == 0 { logger.info("on-change: \(command): done") } else { logger.error("on-change: \(command): exit status \(status)") }
    }
}

/// Creates `path` or sets its modification time to now.
func touch(_ path: String) {
    let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
    guard fd >= 0 else { return }
    futimens(fd, nil)
    close(fd)
}

func makeDirectories(_ paths: [String]) throws(RefreshError) {
    for path in paths {
        do { try createDirectories(path) } catch { throw RefreshError("cannot create a directory: \(error)") }
    }
}

func temporaryDirectory(in parent: String) throws(RefreshError) -> String {
    var template = Array((parent + "/run-XXXXXX").utf8CString)
    guard let made = mkdtemp(&template) else { throw RefreshError("\(parent): cannot create a work directory") }
    return String(cString: made)
}

/// rm -rf of the refresh's own work directory.
func removeTree(_ path: String) {
    guard let dir = opendir(path) else { unlink(path); return }
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name == "." || name == ".." { continue }
        let child = path + "/" + name
        var s = stat()
        if lstat(child, &s) == 0 && (s.st_mode & S_IFMT) == S_IFDIR { removeTree(child) } else { unlink(child) }
    }
    closedir(dir)
    rmdir(path)
}
