import GeoGateCore
#if canImport(Glibc)
import Glibc
#endif

/// Loads sets into the kernel through libipset as one transaction, never leaving a
/// live set empty or partial, and never touching a set geogate did not create:
/// 1. `prepare`: every live set must be geogate's (recorded in the SetRegistry) or
///    adopted by the admin, and a hash:net of its family; a live set that already
///    holds exactly the new contents (its recorded digest and the kernel's entry
///    count agree) is left alone; each other new content is filled into a
///    temporary set whose name no other run can pick;
/// 2. `SetTransaction.switchIn`: each temporary set is swapped with its live set
///    (which works while iptables rules use it) or renamed to a missing one; a
///    failure on any set swaps the earlier ones back;
/// 3. `finish` destroys the old contents, or `revert` swaps them back in, so a
///    caller (refresh) can undo the sets when a later step of its own fails.
/// The caller holds the run lock (RunLock) throughout.
public struct SetLoader {
    public struct Change: Sendable, CustomStringConvertible {
        public let set: FirewallSet
        public let existed: Bool
        /// Entries (CIDRs) added and removed compared with the live set.
        public let added: Int
        public let removed: Int
        public var unchanged: Bool { existed && added == 0 && removed == 0 }
        public var description: String {
            unchanged ? "\(set.name): unchanged, \(set.cidrs.count) entries (\(set.origin))"
                : existed ? "\(set.name): \(set.cidrs.count) entries, +\(added) -\(removed) (\(set.origin))"
                : "\(set.name): new set, \(set.cidrs.count) entries (\(set.origin))"
        }
    }

    public struct LockoutRefusal: Error, CustomStringConvertible, Sendable {
        public let cutOff: [(Lockout.Connection, String)]
        public init(cutOff: [(Lockout.Connection, String)]) { self.cutOff = cutOff }
        public var description: String {
            "refusing to apply: these established connections would be cut off (use --force to apply anyway):\n"
                + cutOff.map { "  \($0.0) not in \($0.1)" }.joined(separator: "\n")
        }
    }

    let kernel: IPSetKernel
    var registry: SetRegistry
    /// Set names the admin lets geogate take over (`--adopt`, `adopt-sets:`).
    let adopt: Set<String>

    public init(kernel: IPSetKernel, registry: SetRegistry, adopt: Set<String> = []) {
        self.kernel = kernel
        self.registry = registry
        self.adopt = adopt
    }

    /// What `apply` would change, set by set, reading the live sets.
    public func changes(_ sets: [FirewallSet]) throws(IPSetError) -> [Change] {
        var out: [Change] = []
        for set in sets {
            guard try kernel.exists(set.name) else {
                out.append(Change(set: set, existed: false, added: set.cidrs.count, removed: 0))
                continue
            }
            let live = Set(try kernel.members(of: set.name))
            let new = Set(set.cidrs)
            out.append(Change(set: set, existed: true, added: new.subtracting(live).count, removed: live.subtracting(new).count))
        }
        return out
    }

    /// Established incoming connections whose peer a profile set would no longer match.
    public static func lockouts(_ sets: [FirewallSet], connections: [Lockout.Connection]) -> [(Lockout.Connection, String)] {
        var out: [(Lockout.Connection, String)] = []
        for c in connections {
            for set in sets where set.family == c.peer.family && set.kind == .profile {
                if !set.addresses.contains(c.peer.value) { out.append((c, set.name)) }
            }
        }
        return out
    }

    /// Refuses, naming each, the live sets geogate may not replace: not recorded as
    /// geogate's in this network namespace and not adopted, or not a hash:net of
    /// the set's family (the kernel could not swap those anyway).
    public func checkOwnership(_ sets: [FirewallSet]) throws(IPSetError) {
        var problems: [String] = []
        for set in sets {
            guard let live = try kernel.header(set.name) else { continue }
            let family = set.family == .v4 ? "inet" : "inet6"
            if live.type != "hash:net" || live.family != set.family {
                let liveFamily = live.family.map { $0 == .v4 ? "inet" : "inet6" } ?? "another family"
                problems.append("\(set.name) is a \(live.type) set of \(liveFamily), not geogate's hash:net of \(family): "
                                + "geogate will not replace it (destroy or rename it, or choose another set-name)")
            } else if !registry.owns(set.name, family: set.family) && !adopt.contains(set.name) {
                problems.append("\(set.name) exists but geogate did not create it (it is not in \(registry.path)): "
                                + "geogate will not replace it unless you say so (`--adopt \(set.name)`, or adopt-sets: in the config)")
            }
        }
        if !problems.isEmpty { throw IPSetError("refusing to touch sets that are not geogate's:\n  " + problems.joined(separator: "\n  ")) }
    }

    /// Step 1: checks ownership, clears temporary sets a killed run left, and fills
    /// a temporary set per new set. On failure nothing live has changed and no
    /// temporary set is left.
    public mutating func prepare(_ sets: [FirewallSet]) throws(IPSetError) -> SetTransaction {
        try checkOwnership(sets)
        try removeLeftovers()
        var transaction = SetTransaction(kernel: kernel, registry: registry)
        var changed: [FirewallSet] = []
        for set in sets {
            if try holdsAlready(set) { transaction.unchanged.append(set) } else { changed.append(set) }
        }
        let names = try temporaryNames(changed.count)
        do throws(IPSetError) {
            for (set, temporary) in zip(changed, names) {
                try transaction.registry.record(temporary, family: set.family, temporary: true)
                try kernel.createHashNet(temporary, family: set.family, hashSize: set.hashSize, maxElements: set.maxElements,
                                         withTimeout: set.expiries != nil)
                let existed = try kernel.exists(set.name)
                transaction.steps.append(.init(set: set, temporary: temporary, existed: existed,
                                               liveEntries: existed ? try kernel.count(set.name) : nil,
                                               oldDigest: registry.digest(of: set.name)))
                try kernel.add(set.cidrs, timeouts: set.timeouts(now: Int64(time(nil))), to: temporary)
                do { try FaultInjection.check("sets-fill") } catch { throw IPSetError("filling \(temporary): \(error)") }
            }
        } catch {
            transaction.discard()
            registry = transaction.registry
            throw error
        }
        registry = transaction.registry
        return transaction
    }

    /// True when the live set is geogate's and already holds exactly `set`: the
    /// digest recorded when geogate filled it matches, and the kernel's entry count
    /// too (a hand-made `ipset add`/`del` changes it; a full check is `apply --dry-run`).
    func holdsAlready(_ set: FirewallSet) throws(IPSetError) -> Bool {
        guard registry.owns(set.name, family: set.family), registry.digest(of: set.name) == set.contentDigest,
              try kernel.exists(set.name) else { return false }
        return try kernel.count(set.name) == set.cidrs.count
    }

    /// What a load did, set by set.
    public struct Report: Sendable {
        public var lines: [String] = []
    }

    /// prepare, switchIn, finish: what `apply` does.
    @discardableResult
    public mutating func load(_ sets: [FirewallSet]) throws(IPSetError) -> Report {
        var transaction = try prepare(sets)
        try transaction.switchIn()
        let report = transaction.report
        transaction.finish()
        registry = transaction.registry
        return report
    }

    /// Temporary sets recorded in this namespace by a run that did not finish.
    mutating func removeLeftovers() throws(IPSetError) {
        let stale = registry.leftovers
        guard !stale.isEmpty else { return }
        for entry in stale where try kernel.exists(entry.name) {
            do { try kernel.destroy(entry.name) } catch {
                throw IPSetError("a temporary set left by an interrupted run, \(entry.name), cannot be destroyed: \(error)")
            }
        }
        try registry.forget(stale.map(\.name))
    }

    /// "gg-<pid>-<random>-<i>": unique to this run (the pid while it lives, 24
    /// random bits across runs), checked free in the kernel.
    func temporaryNames(_ count: Int) throws(IPSetError) -> [String] {
        while true {
            let tag = String(UInt32.random(in: 0..<(1 << 24)), radix: 16)
            let names = (0..<count).map { "gg-\(getpid())-\(tag)-\($0)" }
            var free = true
            for name in names where try kernel.exists(name) { free = false }
            if free { return names }
        }
    }
}

/// The sets of one load, between filling and the end: `switchIn` puts the new
/// contents live; then `finish` destroys the old, or `revert` puts them back.
public struct SetTransaction {
    struct Step {
        let set: FirewallSet
        let temporary: String
        let existed: Bool
        /// The live set's entries before the swap, when the kernel says.
        var liveEntries: Int? = nil
        /// What the registry said the live set held before, put back by revert.
        var oldDigest: String? = nil
    }

    let kernel: IPSetKernel
    var registry: SetRegistry
    var steps: [Step] = []
    /// Sets whose live contents are already the new ones: not touched.
    public internal(set) var unchanged: [FirewallSet] = []
    /// How many steps are live (swapped or renamed in).
    var switched = 0

    init(kernel: IPSetKernel, registry: SetRegistry) {
        self.kernel = kernel
        self.registry = registry
    }

    /// One line per set: replaced (with the entry counts), created, or unchanged.
    public var report: SetLoader.Report {
        var r = SetLoader.Report()
        for step in steps {
            let s = step.set
            r.lines.append(step.existed
                ? "\(s.name): replaced, \(s.cidrs.count) entries (was \(step.liveEntries.map(String.init) ?? "?")) (\(s.origin))"
                : "\(s.name): created, \(s.cidrs.count) entries (\(s.origin))")
        }
        for s in unchanged { r.lines.append("\(s.name): unchanged, \(s.cidrs.count) entries, not reloaded (\(s.origin))") }
        return r
    }

    /// Swaps every new set in; a failure at any set undoes the ones before it.
    public mutating func switchIn() throws(IPSetError) {
        do throws(IPSetError) {
            for step in steps {
                if switched > 0 {
                    do { try FaultInjection.check("sets-switch") } catch { throw IPSetError("swapping \(step.set.name): \(error)") }
                }
                if step.existed {
                    try kernel.swap(step.temporary, step.set.name)
                } else {
                    try kernel.rename(step.temporary, to: step.set.name)
                }
                switched += 1
                try registry.record(step.set.name, family: step.set.family, temporary: false, digest: step.set.contentDigest)
            }
        } catch {
            revert()
            throw error
        }
    }

    /// Destroys the old contents (best effort: a leftover is recorded and cleared
    /// by the next run).
    public mutating func finish() {
        var gone: [String] = []
        for step in steps where step.existed && (try? kernel.destroy(step.temporary)) != nil { gone.append(step.temporary) }
        for step in steps where !step.existed { gone.append(step.temporary) }
        try? registry.forget(gone)
        steps = []
    }

    /// Puts the old contents back (swap again; a set that did not exist is
    /// destroyed), then clears the temporary sets.
    public mutating func revert() {
        for step in steps.prefix(switched).reversed() {
            if step.existed {
                try? kernel.swap(step.temporary, step.set.name)
                try? registry.record(step.set.name, family: step.set.family, temporary: false, digest: step.oldDigest)
            } else if (try? kernel.destroy(step.set.name)) != nil {
                try? registry.forget([step.set.name])
            }
        }
        switched = 0
        discard()
    }

    /// Destroys the temporary sets of a transaction that was not switched in: every
    /// temporary set in the record is this run's (prepare cleared older ones).
    mutating func discard() {
        var gone: [String] = []
        for entry in registry.leftovers {
            if (try? kernel.exists(entry.name)) == true && (try? kernel.destroy(entry.name)) == nil { continue }
            gone.append(entry.name)
        }
        try? registry.forget(gone)
        steps = []
    }
}
