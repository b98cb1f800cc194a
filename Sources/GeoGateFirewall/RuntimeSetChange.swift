import GeoGateCore
import GeoGatePolicy

/// One run-time entry change applied to the live run-time sets element by element
/// (ipset `-exist add|del`), instead of rebuilding them: with thousands of entries
/// a rebuild costs tens of milliseconds, this a few element operations. Only the
/// changed network's subtree is recomputed: the widest entry holding it (or the
/// network itself) and every entry inside that, before and after; their elements
/// (Policy.runtimeElements) are compared and the differences sent. Each operation
/// done is remembered with its inverse, so a failure, here or at a later step of
/// the transaction, puts the old elements back.
struct RuntimeSetChange {
    struct Operation {
        var set: String
        var cidr: CIDR
        var add: Bool
        var expires: Int64?
    }

    let kernel: IPSetKernel
    /// The inverses of the operations done, newest last.
    private(set) var undo: [Operation] = []

    init(kernel: IPSetKernel) { self.kernel = kernel }

    /// The operations that turn the elements of `old` entries into those of `new`
    /// for the sets of `network`'s family (block set and allow set), with the
    /// inverse of each. `blockSetOpen`: the filter is switched open, its block
    /// sets stay empty, so they are left alone.
    static func plan(policy: Policy, network: CIDR, old: [RuntimeEntry], new: [RuntimeEntry], now: Int64,
                     blockSetOpen: Bool) -> [(operation: Operation, inverse: Operation)] {
        let profile = policy.profile
        var out: [(operation: Operation, inverse: Operation)] = []
        for action in [RuntimeEntry.Action.block, .allow] {
            guard let name = profile.runtimeSetName(action, network.family), !(action == .block && blockSetOpen) else { continue }
            func mine(_ e: RuntimeEntry) -> Bool { e.profile == profile.name && e.action == action && e.network.family == network.family }
            func holds(_ a: CIDR, _ b: CIDR) -> Bool { a.first <= b.first && b.last <= a.last }
            // The subtree's root: the widest entry of either list holding the network.
            var root = network
            for e in old + new where mine(e) && holds(e.network, network) && e.network.prefixLength < root.prefixLength { root = e.network }
            let before = policy.runtimeElements(action, network.family, entries: old.filter { mine($0) && holds(root, $0.network) }, now: now)
            let after = policy.runtimeElements(action, network.family, entries: new.filter { mine($0) && holds(root, $0.network) }, now: now)
            var was: [CIDR: Int64?] = [:]
            for e in before { was[e.cidr] = e.expires }
            var stays = Set<CIDR>()
            for e in after {
                stays.insert(e.cidr)
                if let old = was[e.cidr] {
                    guard old != e.expires else { continue }
                    out.append((Operation(set: name, cidr: e.cidr, add: true, expires: e.expires),
                                Operation(set: name, cidr: e.cidr, add: true, expires: old)))
                } else {
                    out.append((Operation(set: name, cidr: e.cidr, add: true, expires: e.expires),
                                Operation(set: name, cidr: e.cidr, add: false, expires: nil)))
                }
            }
            for e in before where !stays.contains(e.cidr) {
                out.append((Operation(set: name, cidr: e.cidr, add: false, expires: nil),
                            Operation(set: name, cidr: e.cidr, add: true, expires: e.expires)))
            }
        }
        return out
    }

    /// Sends the operations; on a failure, puts back what it sent, and throws.
    mutating func apply(_ operations: [(operation: Operation, inverse: Operation)], now: Int64) throws(IPSetError) {
        for (operation, inverse) in operations {
            do {
                // The tests' failure points: before the first element, and before each later one.
                try FaultInjection.check(undo.isEmpty ? "sets-fill" : "sets-switch")
                try send(operation, now: now)
            } catch {
                revert(now: now)
                throw IPSetError("\(error)")
            }
            undo.append(inverse)
        }
    }

    /// Puts the old elements back (best effort, newest first).
    mutating func revert(now: Int64) {
        for operation in undo.reversed() { try? send(operation, now: now) }
        undo = []
    }

    private func send(_ o: Operation, now: Int64) throws(IPSetError) {
        try kernel.change(o.cidr, in: o.set, add: o.add, timeout: o.add ? o.expires.map { UInt32(clamping: max(1, $0 - now)) } ?? 0 : nil)
    }
}
