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

/// One refresh, in the order the data flows: lock; fetch every source (conditional
/// requests, checks); unpack; compile; compare with the live trie (unchanged: stop);
/// the sanity guard; the full-server sets (lockout guard, atomic swap); the new
/// trie (temp file, fsync, rename; the previous one kept); then the download cache,
/// the daemon's RELOAD and the on-change command. Anything failing before the swap
/// leaves the live data, the sets and the cache as they were.
public struct Refresher {
    public enum Outcome: Sendable { case changed, unchanged }

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

    public func run(force: Bool) async throws(RefreshError) -> Outcome {
        guard !settings.sources.isEmpty else { throw RefreshError("\(config.path): refresh.sources lists no source") }
        let live: String
        do { live = try config.trieFile(override: nil) } catch { throw RefreshError("\(error)") }
        try makeDirectories([settings.stateDirectory, cacheDirectory, settings.stateDirectory + "/work"])
        let lock = try Lock(path: settings.stateDirectory + "/refresh.lock", logger: logger)
        defer { lock.release() }
        defer { touch(settings.lastRunStamp) }
        let work = try temporaryDirectory(in: settings.stateDirectory + "/work")
        defer { removeTree(work) }

        // 1. Fetch.
        let fetched = try await fetchAll(into: work)

        // 2. Import, in merge order.
        var sources: [ImportedSource] = []
        for f in fetched {
            do {
                sources += try SourceLoader.load(paths: f.inputs, format: f.format.flatMap(SourceFormat.init(rawValue:)))
            } catch { throw RefreshError("\(f.download.name): \(error)") }
        }
        let dataset = CountryDataset(sources: sources)
        let current = try? TrieFile(path: live)

        // 3. Unchanged: the same inputs, byte for byte, as the live trie was built from.
        if let current, current.metadata.sources.map(\.sha256) == sources.map(\.sha256) {
            try commitCache(fetched)
            logger.info("unchanged: every source is what \(live) was built from")
            return .unchanged
        }

        // 4. The guard.
        let newCoverage = Coverage(v4: dataset.v4, v6: dataset.v6)
        let oldCoverage = current.map { Coverage(v4: $0.rangeMap(.v4), v6: $0.rangeMap(.v6)) }
        let (absolute, verdict) = SanityGuard.judge(new: newCoverage, old: oldCoverage, config: config)
        if !absolute.isEmpty { throw RefreshError("refused: " + absolute.joined(separator: "; ")) }
        if !verdict.refusals.isEmpty {
            if !force { throw RefreshError("refused by the sanity guard (--force to accept): " + verdict.refusals.joined(separator: "; ")) }
            logger.warning("--force: accepting although \(verdict.refusals.joined(separator: "; "))")
        }
        let metadataSources = sources.map {
            TrieMetadata.Source(name: $0.name, sha256: $0.sha256, storedSize: UInt64($0.storedSize), format: $0.format.rawValue)
        }
        let bytes: [UInt8]
        do { bytes = try TrieWriter.bytes(v4: dataset.v4, v6: dataset.v6, sources: metadataSources, buildTime: now) } catch {
            throw RefreshError("compile: \(error)")
        }

        // 5. Sets first: if the kernel or the lockout guard says no, nothing has changed yet.
        if settings.applySets { try applySets(v4: dataset.v4, v6: dataset.v6) }

        // 6. The swap, keeping the previous trie for `geogate rollback`.
        try keepPrevious(live)
        do { try AtomicFile.write(bytes, to: live) } catch { throw RefreshError("\(live): \(error)") }
        try commitCache(fetched)
        logger.info("""
            changed: \(live) now \(dataset.v4.ranges.count) IPv4 ranges (was \(current?.metadata.v4RangeCount ?? 0)), \
            \(dataset.v6.ranges.count) IPv6 ranges (was \(current?.metadata.v6RangeCount ?? 0)); IPv4 addresses \
            \(Int(oldCoverage?.v4 ?? 0)) -> \(Int(newCoverage.v4))\(verdict.changes.isEmpty ? "" : "; profile countries: " + verdict.changes.joined(separator: ", "))
            """)

        // 7. Those who use the data.
        if settings.reloadDaemon { reloadDaemon() }
        if let command = settings.onChange { runOnChange(command, trie: live) }
        return .changed
    }

    /// Puts the previous trie back (and keeps the current one as the previous).
    public func rollback() throws(RefreshError) {
        let live: String
        do { live = try config.trieFile(override: nil) } catch { throw RefreshError("\(error)") }
        let previous = live + ".previous"
        guard access(previous, F_OK) == 0 else { throw RefreshError("\(previous): no previous trie to roll back to") }
        let trie: TrieFile
        do { trie = try TrieFile(path: previous) } catch { throw RefreshError("\(previous): \(error)") }
        try makeDirectories([settings.stateDirectory])
        let lock = try Lock(path: settings.stateDirectory + "/refresh.lock", logger: logger)
        defer { lock.release() }
        if settings.applySets { try applySets(v4: trie.rangeMap(.v4), v6: trie.rangeMap(.v6)) }
        let aside = live + ".rollback"
        guard rename(live, aside) == 0, rename(previous, live) == 0, rename(aside, previous) == 0 else {
            throw RefreshError("\(live): cannot swap with \(previous): \(String(cString: strerror(errno)))")
        }
        logger.info("rolled back: \(live) is the trie built \(trie.metadata.buildTime) again; the replaced one is \(previous)")
        if settings.reloadDaemon { reloadDaemon() }
        if let command = settings.onChange { runOnChange(command, trie: live) }
    }

    // MARK: - Fetching

    struct Fetched {
        var download: Download
        /// Input files for the importer.
        var inputs: [String]
        var format: String?
        /// A new download to keep in the cache, with its validators, once the refresh succeeds.
        var downloaded: (path: String, validators: Validators)?
    }

    func fetchAll(into work: String) async throws(RefreshError) -> [Fetched] {
        let client = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
                                configuration: HTTPClient.Configuration(
                                    redirectConfiguration: .follow(max: 5, allowCycles: false),
                                    timeout: .init(connect: .seconds(30), read: .seconds(Int64(settings.timeoutSeconds)))))
        let fetcher = HTTPFetcher(client: client, timeout: .seconds(Int64(settings.timeoutSeconds)), retries: settings.retries,
                                  retryDelay: .milliseconds(Int64(settings.retryDelayMilliseconds)),
                                  maxBytes: settings.maxSizeMegabytes << 20, logger: logger)
        var result: [Fetched] = []
        var failure: RefreshError?
        do {
            for (index, source) in settings.sources.enumerated() {
                for d in Providers.downloads(source, index: index, now: now) {
                    result.append(try await fetch(d, format: source.format, fetcher: fetcher, work: work))
                }
            }
        } catch { failure = error }
        try? await client.shutdown()
        if let failure { throw failure }
        return result
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
            let haveCache = access(cached, R_OK) == 0
            let validators = haveCache ? (try? readWholeFile(cached + ".validators", limit: 4096)).map { Validators(text: String(decoding: $0, as: UTF8.self)) } : nil
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
            fetched.inputs = try Archive.extract(file, suffixes: d.members, into: unpacked,
                                                 maxBytes: settings.maxSizeMegabytes << 20, name: d.name)
            logger.info("\(d.name): unpacked \(fetched.inputs.map { Providers.lastComponent($0) }.joined(separator: ", "))")
        }
        return fetched
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

    // MARK: - After the swap

    func applySets(v4: RangeMap, v6: RangeMap) throws(RefreshError) {
        let sets: [FirewallSet]
        do { sets = try SetPlanner.plan(config: config, maps: [.v4: v4, .v6: v6], profile: nil, perCountry: false) } catch {
            throw RefreshError("sets: \(error)")
        }
        guard !sets.isEmpty else { return }
        let cut = SetLoader.lockouts(sets, connections: Lockout.incomingConnections())
        if !cut.isEmpty {
            throw RefreshError("sets: \(SetLoader.LockoutRefusal(cutOff: cut)); nothing changed (check, then `geogate apply --force`)")
        }
        do {
            try SetLoader(kernel: try IPSetKernel()).load(sets)
        } catch { throw RefreshError("sets: \(error); the live sets were not changed") }
        logger.info("sets: applied \(sets.map(\.name).joined(separator: ", "))")
    }

    func keepPrevious(_ live: String) throws(RefreshError) {
        guard access(live, F_OK) == 0 else { return }
        let previous = live + ".previous", staging = live + ".previous.tmp"
        unlink(staging)
        guard link(live, staging) == 0, rename(staging, previous) == 0 else {
            throw RefreshError("\(previous): cannot keep the previous trie: \(String(cString: strerror(errno)))")
        }
    }

    /// RELOAD on the daemon's socket; a daemon that is not running is not an error.
    func reloadDaemon() {
        let path = config.daemon.socket
        do {
            let answer = try UnixSocketClient.ask(path, "RELOAD", timeoutSeconds: 30)
            if answer.hasPrefix("OK") { logger.info("daemon: \(answer)") } else { logger.error("daemon at \(path) refused the reload: \(answer)") }
        } catch {
            logger.info("daemon: not reloaded (\(path): \(error)); it picks the file up on its next look or start")
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

/// An exclusive flock on the state directory's lock file: a second refresh waits
/// for the first, then finds the data current.
struct Lock {
    let fd: Int32

    init(path: String, logger: Logger) throws(RefreshError) {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw RefreshError("\(path): \(String(cString: strerror(errno)))") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            logger.info("another refresh is running (\(path)); waiting for it")
            guard flock(fd, LOCK_EX) == 0 else {
                close(fd)
                throw RefreshError("\(path): cannot lock: \(String(cString: strerror(errno)))")
            }
        }
    }

    func release() {
        flock(fd, LOCK_UN)
        close(fd)
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
        var prefix = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            prefix += "/" + part
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw RefreshError("\(prefix): cannot create: \(String(cString: strerror(errno)))")
            }
        }
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
