import GeoGateCore
import GeoGatePolicy
#if canImport(Glibc)
import Glibc
#endif

/// One change of run-time entries (`geogate allow|block|unlist`, or the daemon's
/// ALLOW, BLOCK and UNLIST), all or nothing, under the run lock:
/// 1. the entries file is read and changed in memory (cap checked);
/// 2. the profile's run-time sets are built aside and swapped in (full-server
///    profiles whose sets geogate loaded here; RuntimeSets);
/// 3. the entries file is written (temp file, fsync, rename);
/// 4. a running daemon reloads it (unless the daemon itself is the caller).
/// A failure at any step puts back what the steps before it changed: the old
/// sets swapped back, the old file in place, nothing else touched.
public enum EntryUpdate {
    public enum Change: Sendable, Equatable {
        case put(RuntimeEntry)
        case remove(profile: String, network: CIDR)

        var profile: String {
            switch self {
            case .put(let e): e.profile
            case .remove(let p, _): p
            }
        }
    }

    public struct Outcome: Sendable {
        /// Every entry after the change (all profiles).
        public let entries: RuntimeEntries
        /// What was done, one line: "block full 203.0.113.7/32 for 600 s (uid 0: ...)".
        public let summary: String
        /// What happened in the kernel, one line per set (empty: no kernel sets).
        public let kernel: [String]
    }

    /// `lockWaitSeconds`: how long to wait for another holder of the run lock (the
    /// daemon does not wait: it answers `busy`). `reloadDaemon`: tell a running
    /// daemon (false when the daemon is the caller and swaps its own data).
    public static func apply(_ change: Change, config: GeoGateConfig, lockWaitSeconds: Int, command: String,
                             reloadDaemon: Bool, now: Int64 = Int64(time(nil)),
                             waiting: (String) -> Void = { _ in }) throws(EntryError) -> Outcome {
        guard let profile = config.profile(named: change.profile) else {
            throw EntryError(.badRequest, "no profile \"\(SafeText.field(change.profile, limit: 32))\" in \(config.path) (profiles: \(config.profiles.map(\.name).joined(separator: ", ")))")
        }
        let cap = config.entries.maxPerProfile
        guard cap > 0 else { throw EntryError(.badRequest, "run-time entries are off in \(config.path) (entries.max-per-profile: 0)") }
        if profile.scope == .fullServer && profile.runtimeSetName(.block, .v4) == nil {
            throw EntryError(.badRequest, "profile \(profile.name): its set-name \(profile.setName) is too long for the run-time sets "
                             + "(\(profile.setName)-rt-block-v4 is over ipset's \(GeoGateConfig.maxSetNameLength) characters): choose a shorter set-name")
        }
        if case .put(let entry) = change {
            guard entry.network.prefixLength > 0 else { throw EntryError(.badRequest, "\(entry.network) is every address: name a network") }
            if let e = entry.expires, e - now > RuntimeEntries.maxDurationSeconds || e <= now {
                throw EntryError(.badRequest, "a run-time entry lasts from 1 s to \(RuntimeEntries.maxDurationSeconds / 86400) days (or, without a time, until unlisted)")
            }
        }

        let lock: RunLock
        do {
            try createDirectories(config.runtimeDirectory)
            lock = try RunLock(path: config.lockFile, waitSeconds: lockWaitSeconds, command: command, waiting: waiting)
        } catch { throw EntryError(.busy, "\(error)") }
        defer { lock.release() }

        // 1. The new entries, in memory.
        var entries = try RuntimeEntries.load(path: config.entriesFile)
        let before = entries
        let summary: String
        switch change {
        case .put(let entry):
            let replaced = try entries.put(entry, cap: cap, now: now)
            summary = entry.summary(now: now) + (replaced.map { " (replaces \($0.action.rawValue) \($0.network))" } ?? "")
        case .remove(let name, let network):
            guard let gone = entries.remove(profile: name, network: network, now: now) else {
                throw EntryError(.notFound, "profile \(name) has no live run-time entry for \(network) (`geogate entries` lists them)")
            }
            summary = "unlisted \(gone.action.rawValue) \(name) \(network)"
        }
        entries.prune(now: now, profiles: Set(config.profiles.map(\.name)))

        // 2. The kernel sets: element by element where the run-time sets are live
        //    (ipset), else built aside and swapped in.
        var prepared: PreparedSets?
        var elementwise: RuntimeSetChange?
        var kernel: [String] = []
        if profile.scope == .fullServer {
            let network = switch change {
            case .put(let e): e.network
            case .remove(_, let n): n
            }
            let family = network.family
            let live = try liveState(profile, family: family, config: config)
            if case .notLoaded = live {
                kernel = ["the sets of profile \(profile.name) are not loaded here: `geogate apply` loads the entries with them"]
            } else {
                let policy = config.policy(profile)
                let open = OpenFilter.isOpen(config)
                do {
                    if case .elementwise(let ipset) = live {
                        let operations = RuntimeSetChange.plan(policy: policy, network: network, old: before.entries, new: entries.entries,
                                                               now: now, blockSetOpen: open)
                        var c = RuntimeSetChange(kernel: ipset.kernel)
                        try c.apply(operations, now: now)
                        elementwise = c
                        // What the record said these sets hold is no longer known: the next apply reloads them.
                        var registry = ipset.registry
                        for action in RuntimeEntry.Action.allCases {
                            if let name = profile.runtimeSetName(action, family), registry.digest(of: name) != nil {
                                try? registry.record(name, family: family, temporary: false, digest: nil)
                            }
                        }
                        kernel = operations.isEmpty ? ["run-time sets: already as planned"]
                            : operations.map { "\($0.operation.set): \($0.operation.add ? "added" : "deleted") \($0.operation.cidr)" }
                    } else {
                        let planned = RuntimeSets.plan(config: config, profile: profile, policy: policy, entries: entries, now: now)
                            .filter { $0.family == family }
                        let sets = open ? OpenFilter.opened(planned) : planned
                        var p = try PreparedSets.prepare(sets, backend: config.backend) { () throws(IPSetError) in try LiveState.loader(config) }
                        try p.switchIn()
                        prepared = p
                        kernel = p.reportLines
                    }
                } catch { throw EntryError(.failed, "kernel sets: \(error); nothing was changed") }
            }
        }
        func revertKernel() {
            prepared?.revert()
            elementwise?.revert(now: now)
        }

        // 3. The file.
        let oldFile = try? readWholeFile(config.entriesFile, limit: 64 << 20)
        do {
            try FaultInjection.check("entries-save")
            try createDirectories(config.stateDirectory)
            try entries.save(path: config.entriesFile)
        } catch {
            revertKernel()
            throw EntryError(.failed, "\(config.entriesFile): cannot write the entries: \(error); the kernel sets were put back, nothing changed")
        }

        // 4. The daemon.
        if reloadDaemon, let failure = Self.reloadDaemon(config) {
            revertKernel()
            if let oldFile { try? AtomicFile.write(oldFile, to: config.entriesFile) } else { unlink(config.entriesFile) }
            // It may have read the new file before it failed: once more with the old one.
            _ = Self.reloadDaemon(config)
            throw EntryError(.failed, "daemon: \(failure); the kernel sets and the entries file were put back, nothing changed")
        }
        prepared?.finish()
        return Outcome(entries: entries, summary: summary, kernel: kernel)
    }

    /// How the profile's run-time sets of a family can change here.
    enum LiveRuntimeSets {
        /// The profile's sets are not live here (geogate did not load them in this
        /// namespace): nothing to enforce entries with yet; `apply` loads them later.
        case notLoaded
        /// Both run-time sets are geogate's live hash:net sets: element by element.
        case elementwise(kernel: IPSetKernel, registry: SetRegistry)
        /// Built aside and swapped in (nft, or sets an older release never created).
        case rebuild
    }

    /// One look at the record and the kernel (one libipset session) per change.
    static func liveState(_ profile: Profile, family: IPFamily, config: GeoGateConfig) throws(EntryError) -> LiveRuntimeSets {
        let profileSet = "\(profile.setName)-v4"
        if config.backend == "nft" { return SetInspector.nftElements(profileSet, family: .v4) != nil ? .rebuild : .notLoaded }
        do {
            let registry = try SetRegistry(path: config.setRecordFile)
            guard registry.owns(profileSet, family: .v4) else { return .notLoaded }
            let kernel = try IPSetKernel()
            guard try kernel.exists(profileSet) else { return .notLoaded }
            for action in RuntimeEntry.Action.allCases {
                guard let name = profile.runtimeSetName(action, family), registry.owns(name, family: family),
                      let header = try kernel.header(name), header.type == "hash:net" else { return .rebuild }
            }
            return .elementwise(kernel: kernel, registry: registry)
        } catch { throw EntryError(.failed, "kernel sets: \(error); nothing was changed") }
    }

    /// RELOAD on the daemon's socket: nil when it took the new entries or is not
    /// running (it reads them when it starts), else why not.
    static func reloadDaemon(_ config: GeoGateConfig) -> String? {
        do {
            try FaultInjection.check("daemon-reload")
            let answer = try UnixSocketClient.ask(config.daemon.socket, "RELOAD entries", timeoutSeconds: 30)
            return answer.hasPrefix("OK") ? nil : "the daemon at \(config.daemon.socket) refused the reload: \(SafeText.field(answer))"
        } catch let failure as UnixSocketClient.Failure where failure.daemonIsDown {
            return nil
        } catch {
            return "\(error)"
        }
    }
}
