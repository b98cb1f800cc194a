import CGeoGateSupport
import GeoGateCore

/// Batched lookups: a group of addresses advances level by level, each lookup
/// prefetching what its next step reads before any of the group reads it.
///
/// One lookup at a time, the CPU waits for each cache miss in turn (root slot, node
/// header, key window, value, next node...) and cannot overlap one lookup's misses
/// with the next, because it mispredicts where each lookup ends. Here every step is
/// a pass over the group: the first pass starts the loads of all the group's root
/// slots, the next reads them (by then in cache) and starts the loads of their
/// nodes, and so on, so up to a group's worth of misses are in flight at once
/// (group prefetching, as in PlanB, NSDI '26). Lookups that reach a leaf leave the
/// group's active list; the others go on to the next level. Answers equal
/// `countryIndex(of:)`'s for every address (the tests compare a million of each).
extension TrieView {
    /// Lookups advancing together: enough to cover the memory latency with the
    /// loads of the others, few enough that their lines stay in L1 between passes.
    public static let batchGroupSize = 32

    /// The country index (0 = none) of each of `addresses` into `indexes`, which holds
    /// at least as many. Mixed families are fine; IPv4-mapped IPv6 addresses answer
    /// as their IPv4 address. No allocation: the group's state lives on the stack.
    @inlinable
    public func countryIndexes(of addresses: UnsafeBufferPointer<IPAddress>, into indexes: UnsafeMutableBufferPointer<UInt16>) {
        inGroups(addresses.count, into: indexes) { first, n, answers, state in
            lookUpGroup(count: n, into: answers, state: state) { k in
                let address = addresses[first &+ k]
                if address.family == .v4 || address.value >> 32 == 0xffff {
                    let v4 = UInt32(truncatingIfNeeded: address.value)
                    return (root4 + Int(v4 >> 16), UInt128(v4) << 112)
                }
                return rootSlot(ipv6: address.value)
            }
        }
    }

    /// The batch form of `countryIndex(ipv6:)`: 16-byte addresses, a quarter of the
    /// memory `IPAddress` streams.
    @inlinable
    public func countryIndexes(ipv6 addresses: UnsafeBufferPointer<UInt128>, into indexes: UnsafeMutableBufferPointer<UInt16>) {
        inGroups(addresses.count, into: indexes) { first, n, answers, state in
            lookUpGroup(count: n, into: answers, state: state) { k in
                let address = addresses[first &+ k]
                if address >> 32 == 0xffff {
                    let v4 = UInt32(truncatingIfNeeded: address)
                    return (root4 + Int(v4 >> 16), UInt128(v4) << 112)
                }
                return rootSlot(ipv6: address)
            }
        }
    }

    /// The batch form of `countryIndex(ipv4:)`. IPv4 lookups end one node below the
    /// root (validation guarantees it): a pass reads the group's root slots and starts
    /// loading their nodes' first three lines (a whole small node: header, keys, most
    /// values), the next searches them.
    @inlinable
    public func countryIndexes(ipv4 addresses: UnsafeBufferPointer<UInt32>, into indexes: UnsafeMutableBufferPointer<UInt16>) {
        inGroups(addresses.count, into: indexes) { first, n, answers, state in
            var active = 0
            for k in 0..<n {
                let address = addresses[first &+ k]
                let slot = UInt32(littleEndian: root4[Int(address >> 16)])
                if slot & TrieFormat.nodeFlag == 0 {
                    answers[k] = UInt16(truncatingIfNeeded: slot)
                    continue
                }
                let node = nodes + Int(slot & ~TrieFormat.nodeFlag) &* 4
                geogate_prefetch(node)
                geogate_prefetch(node + 64)
                geogate_prefetch(node + 128)
                state[active] = BatchedLookup(rest: UInt128(address), at: node, answer: k)
                active &+= 1
            }
            for i in 0..<active {
                let node = state[i].at
                let (index, values) = NodeSearch.search(node, key: UInt16(truncatingIfNeeded: state[i].rest))
                answers[Int(state[i].answer)] = TrieView.leafValue(node, index, values: values)
            }
        }
    }

    /// The root slot of an IPv6 address that is not IPv4-mapped, and the bits after it.
    @inlinable @inline(__always)
    func rootSlot(ipv6 address: UInt128) -> (UnsafePointer<UInt32>, UInt128) {
        if address >> 125 == TrieFormat.ipv6DirectTopBits {
            return (root6 + (1 &+ Int(truncatingIfNeeded: (address >> 112) & 0x1FFF)), address << 16)
        }
        return (root6, address)
    }

    /// Runs `body` on each group of a batch of `count`: its first index, its length,
    /// where its answers go, and the stack space for its state.
    @inlinable @inline(__always)
    func inGroups(_ count: Int, into indexes: UnsafeMutableBufferPointer<UInt16>,
                  _ body: (Int, Int, UnsafeMutablePointer<UInt16>, UnsafeMutablePointer<BatchedLookup>) -> Void) {
        precondition(indexes.count >= count, "room for every answer")
        guard count > 0, let answers = indexes.baseAddress else { return }
        withUnsafeTemporaryAllocation(of: BatchedLookup.self, capacity: TrieView.batchGroupSize) { group in
            var done = 0
            while done < count {
                let n = min(TrieView.batchGroupSize, count &- done)
                body(done, n, answers + done, group.baseAddress!)
                done &+= n
            }
        }
    }

    /// One group of at most `batchGroupSize` lookups; `start(k)` gives lookup k's
    /// root slot and the key bits after it.
    @inlinable @inline(__always)
    func lookUpGroup(count n: Int, into answers: UnsafeMutablePointer<UInt16>, state: UnsafeMutablePointer<BatchedLookup>,
                     start: (Int) -> (UnsafePointer<UInt32>, UInt128)) {
        // Pass 1: each lookup's root slot, whose load starts now. The key of the next
        // level is always the top 16 bits of `rest`, for both families.
        for k in 0..<n {
            let (slotAt, rest) = start(k)
            geogate_prefetch(slotAt)
            state[k] = BatchedLookup(rest: rest, at: UnsafeRawPointer(slotAt), answer: k)
        }
        // Pass 2: the slots. A leaf is the answer; a node joins the active list (kept
        // in place at the front of `state`) with its header's load started. No branch
        // on which: every lookup's answer and state are written (an unfinished answer
        // is overwritten when its lookup ends), and only a node advances the list.
        var active = 0
        for k in 0..<n {
            let slot = UInt32(littleEndian: state[k].at.load(as: UInt32.self))
            answers[k] = UInt16(truncatingIfNeeded: slot)
            let node = nodes + Int(slot & ~TrieFormat.nodeFlag) &* 4
            geogate_prefetch(node)  // (a prefetch never faults, even for a leaf's nonsense)
            state[active] = BatchedLookup(rest: state[k].rest, at: node, answer: k)
            active &+= Int(truncatingIfNeeded: slot >> 31)
        }
        // One level a round, two passes: find each node's window (its header is in by
        // now) and start loading it and its likely value, then count every window and
        // take its value.
        while active > 0 {
            for i in 0..<active {
                // The header read once: the window's place and the values' are kept
                // for the second pass.
                let node = state[i].at
                let n = Int(UInt16(littleEndian: node.load(fromByteOffset: 2, as: UInt16.self))) &+ 1
                let keysAt = NodeSearch.keysOffset(node: node)
                let j = NodeSearch.windowStart(node, key: UInt16(truncatingIfNeeded: state[i].rest >> 112))
                let windowAt = keysAt &+ j &* 2
                let values = keysAt &+ n &* 2
                geogate_prefetch(node + windowAt)
                geogate_prefetch(node + (windowAt &+ 64))
                geogate_prefetch(node + (windowAt &+ 127))
                let valueWidth = node.load(as: UInt8.self) == TrieFormat.NodeKind.leaves8.rawValue ? 1 : 2
                geogate_prefetch(node + (values &+ j &* valueWidth))
                state[i].first = Int32(truncatingIfNeeded: j)
                state[i].valid = Int32(truncatingIfNeeded: n &- j)
                state[i].windowAt = Int32(truncatingIfNeeded: windowAt)
                state[i].values = Int32(truncatingIfNeeded: values)
            }
            var next = 0
            for i in 0..<active {
                let lookup = state[i]
                let key = UInt16(truncatingIfNeeded: lookup.rest >> 112)
                let count = NodeSearch.countWindow(lookup.at + Int(lookup.windowAt), key: key, valid: Int(lookup.valid))
                let slot = TrieView.valueSlotWithoutBranches(lookup.at, Int(lookup.first) &+ count &- 1, values: Int(lookup.values))
                answers[Int(lookup.answer)] = UInt16(truncatingIfNeeded: slot)
                let child = nodes + Int(slot & ~TrieFormat.nodeFlag) &* 4
                geogate_prefetch(child)
                state[next] = BatchedLookup(rest: lookup.rest << 16, at: child, answer: Int(lookup.answer))
                next &+= Int(truncatingIfNeeded: slot >> 31)
            }
            active = next
        }
    }
}

/// One lookup of a batch between passes: the key bits still to consume (the next
/// level's at the top), what it reads next (its root slot, then its node), where
/// its answer goes, and, between a level's two passes, its node's window (first
/// key, keys of the node from there, byte offset) and values' offset.
@usableFromInline
struct BatchedLookup {
    @usableFromInline var rest: UInt128
    @usableFromInline var at: UnsafeRawPointer
    @usableFromInline var answer: Int32
    @usableFromInline var first: Int32 = 0
    @usableFromInline var valid: Int32 = 0
    @usableFromInline var windowAt: Int32 = 0
    @usableFromInline var values: Int32 = 0

    @inlinable @inline(__always)
    init(rest: UInt128, at: UnsafeRawPointer, answer: Int) {
        self.rest = rest
        self.at = at
        self.answer = Int32(truncatingIfNeeded: answer)
    }
}
