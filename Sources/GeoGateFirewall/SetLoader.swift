import GeoGateCore

/// Loads sets into the kernel through libipset, never leaving a live set empty or
/// partial: each set is built as a temporary twin, then swapped with the live one
/// (which works while iptables rules reference it), and the old contents destroyed.
/// Any failure leaves every live set as it was.
public struct SetLoader {
    public struct Change: Sendable, CustomStringConvertible {
        public let set: FirewallSet
        public let existed: Bool
        /// Entries (CIDRs) added and removed compared with the live set.
        public let added: Int
        public let removed: Int
        public var description: String {
            existed ? "\(set.name): \(set.cidrs.count) entries, +\(added) -\(removed) (\(set.origin))"
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

    public init(kernel: IPSetKernel) { self.kernel = kernel }

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
            for set in sets where set.family == c.peer.family && !set.origin.hasPrefix("country") {
                if !set.addresses.contains(c.peer.value) { out.append((c, set.name)) }
            }
        }
        return out
    }

    /// Replaces each live set with the new contents (creating it when missing).
    public func load(_ sets: [FirewallSet]) throws(IPSetError) {
        for set in sets {
            let temporary = set.temporaryName
            // A twin left by an interrupted run is stale: start clean.
            if try kernel.exists(temporary) { try kernel.destroy(temporary) }
            try kernel.createHashNet(temporary, family: set.family, hashSize: set.hashSize, maxElements: set.maxElements)
            do {
                try kernel.add(set.cidrs, to: temporary)
                if try kernel.exists(set.name) {
                    try kernel.swap(temporary, set.name)
                    try kernel.destroy(temporary)
                } else {
                    try kernel.rename(temporary, to: set.name)
                }
            } catch {
                try? kernel.destroy(temporary)
                throw error
            }
        }
    }
}
