import GeoGateCore
import GeoGateFirewall
import GeoGatePolicy
#if canImport(Glibc)
import Glibc
#endif

/// One feed of a profile (allow-lists, block-lists) in a refresh: its networks as
/// fetched now, and as kept from the last accepted fetch.
struct FeedUpdate {
    let profile: String
    let feed: Feed
    let networks: [CIDR]
    /// The kept file's networks; nil before the first accepted fetch.
    let old: [CIDR]?
    /// Where they are kept (`<state-dir>/feeds/<profile>.<action>.<name>`).
    let path: String

    var changed: Bool { old.map { Set($0) != Set(networks) } ?? true }
    var summary: String { "feed \(profile)/\(feed.name): \(networks.count) networks (was \(old.map { String($0.count) } ?? "none"))" }
}

extension Refresher {
    /// Every profile's feeds as downloads (a feed's name names it in the cache).
    func feedDownloads() -> [(profile: String, feed: Feed, download: Download)] {
        var out: [(String, Feed, Download)] = []
        for p in config.profiles {
            for feed in p.feeds {
                guard var d = Providers.downloads(feed.source, index: 0, now: now).first else { continue }
                d.name = "feed-\(p.name)-\(feed.action.rawValue)-\(feed.name)"
                d.members = []
                out.append((p.name, feed, d))
            }
        }
        return out
    }

    /// Reads each fetched feed (NetworkList: a bad line or more than max-entries
    /// fails the refresh, naming the feed and line), then the guard: an empty
    /// feed is refused, and one that grew or shrank by more than
    /// refresh.max-feed-change since the last accepted is refused unless --force.
    func judgeFeeds(_ fetched: [Fetched], force: Bool) throws(RefreshError) -> [FeedUpdate] {
        var out: [FeedUpdate] = []
        var refusals: [String] = []
        for ((profile, feed, download), f) in zip(feedDownloads(), fetched) {
            let label = "feed \(profile)/\(feed.name)"
            let networks: [CIDR]
            do {
                let bytes = try readWholeFile(f.inputs[0], limit: settings.maxInputMegabytes << 20)
                networks = try NetworkList.parse(bytes, name: "\(label) (\(download.name))", maxEntries: feed.maxEntries)
            } catch { throw RefreshError("\(label): \(error)") }
            let path = feed.file(stateDirectory: config.stateDirectory, profile: profile)
            var old: [CIDR]?
            if access(path, F_OK) == 0 {
                do { old = try NetworkList.parse(try readWholeFile(path, limit: 64 << 20), name: path, maxEntries: Int.max) } catch {
                    logger.warning("\(label): the kept networks cannot be read (\(error)); taking the new ones as the first")
                }
            }
            let update = FeedUpdate(profile: profile, feed: feed, networks: networks, old: old, path: path)
            if networks.isEmpty { throw RefreshError("refused: \(label) is empty (a feed that lost every network is not taken, even with --force)") }
            if let old, !old.isEmpty {
                let change = abs(Double(networks.count - old.count)) / Double(old.count) * 100
                if change > settings.maxFeedChangePercent {
                    refusals.append("\(label) went from \(old.count) to \(networks.count) networks (\(Int(change.rounded()))%, refresh.max-feed-change: \(Int(settings.maxFeedChangePercent))%)")
                }
            }
            out.append(update)
        }
        if !refusals.isEmpty {
            if !force { throw RefreshError("refused by the sanity guard (--force to accept): " + refusals.joined(separator: "; ")) }
            logger.warning("--force: accepting although \(refusals.joined(separator: "; "))")
        }
        for u in out where u.changed { logger.info("\(u.summary)") }
        return out
    }

    /// The config with the feeds' new networks in place of the kept ones: what the
    /// sets of this refresh are planned from.
    func configWith(_ feeds: [FeedUpdate]) -> GeoGateConfig {
        guard !feeds.isEmpty else { return config }
        return config.replacingProfiles(config.profiles.map { p in
            let mine = feeds.filter { $0.profile == p.name }
            guard !mine.isEmpty else { return p }
            return p.with(allowLists: mine.filter { $0.feed.action == .allow }.flatMap(\.networks),
                          blockLists: mine.filter { $0.feed.action == .block }.flatMap(\.networks))
        })
    }

    /// The country data did not change, some feeds did: the sets (planned from the
    /// live trie and the new feeds), the kept networks and the daemon move
    /// together, or nothing does.
    func switchFeeds(_ feeds: [FeedUpdate], v4: RangeMap, v6: RangeMap) throws(RefreshError) {
        var sets: PreparedSets?
        if settings.applySets { sets = try prepareSets(v4: v4, v6: v6, config: configWith(feeds)) }
        if var transaction = sets {
            do { try transaction.switchIn() } catch { throw RefreshError("sets: \(error); the live sets, the feeds and the daemon were not changed") }
            sets = transaction
            for line in transaction.reportLines { logger.info("sets: \(line)") }
        }
        var files = KeptFeeds()
        do { try files.write(feeds, stateDirectory: config.stateDirectory) } catch {
            sets?.revert()
            throw RefreshError("\(error); everything was put back: the old sets, the old feeds")
        }
        if settings.reloadDaemon, let failure = reloadDaemon() {
            files.revert()
            sets?.revert()
            _ = reloadDaemon()
            throw RefreshError("daemon: \(failure); everything was put back: the old sets, the old feeds")
        }
        sets?.finish()
    }
}

/// The kept networks of the changed feeds, written (temp file, fsync, rename)
/// with what was there before remembered, so `revert` puts the old files back.
struct KeptFeeds {
    private var previous: [(path: String, bytes: [UInt8]?)] = []

    mutating func write(_ feeds: [FeedUpdate], stateDirectory: String) throws(RefreshError) {
        let changed = feeds.filter(\.changed)
        guard !changed.isEmpty else { return }
        do { try FaultInjection.check("feeds-write") } catch { throw RefreshError("feeds: \(error)") }
        do { try createDirectories(stateDirectory + "/feeds") } catch { throw RefreshError("\(stateDirectory)/feeds: \(error)") }
        for u in changed {
            let before = access(u.path, F_OK) == 0 ? try? readWholeFile(u.path, limit: 64 << 20) : nil
            do {
                try AtomicFile.write(NetworkList.text(u.networks, comment: "geogate feed \(u.profile)/\(u.feed.name), \(u.feed.action.rawValue)-lists: \(u.networks.count) networks"),
                                     to: u.path)
            } catch {
                revert()
                throw RefreshError("\(u.path): cannot keep the feed's networks: \(error)")
            }
            previous.append((u.path, before))
        }
    }

    mutating func revert() {
        for (path, bytes) in previous.reversed() {
            if let bytes { try? AtomicFile.write(bytes, to: path) } else { unlink(path) }
        }
        previous = []
    }
}
