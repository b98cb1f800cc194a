import CGeoGateSupport

/// How a node's sorted 16-bit run starts are searched: one way for every node.
///
/// Keys are compared 32 at a time (one 64-byte block): the answer "last key <= x" is
/// the count of keys <= x, minus one. A lookup counts one *window* of 64 keys (two
/// blocks, independent loads) and needs no other step: every search runs the same
/// instructions, with no branch on the node's size (format 2's separate paths for
/// small, indexed and separator nodes made IPv6 lookups about 9% slower). A node of
/// at most 64 keys is its own window. A larger node carries an
/// *index* in front of its keys: its keys split into buckets of 2^shift key values,
/// and entry b is the last key <= b << shift, where the window for any x in bucket b
/// starts. The builder picks the largest shift (the smallest index) under which no
/// bucket holds more than 63 keys after its start, so the window always reaches the
/// answer. Header byte 1 holds the shift; 16 means no index, and then the entry read
/// at the index's place is key 0, which is 0: the same code serves both.
public enum NodeSearch {
    public static let blockKeys = 32
    public static let blockBytes = 2 * blockKeys
    /// Keys one search counts from its index entry.
    public static let windowKeys = 2 * blockKeys
    /// The shift of a node without an index (at most `windowKeys` keys).
    public static let noIndexShift = 16
    /// Bytes the nodes section carries after its last node, so the window read at its
    /// last key never leaves the section.
    public static let sectionSlack = 2 * blockBytes

    /// The index shift for sorted `keys` (keys[0] == 0): 16 when one window holds them
    /// all, else the largest shift under which every bucket holds at most 63 keys
    /// after its start (a key on the start itself is where the window begins).
    public static func indexShift(for keys: [UInt16]) -> Int {
        guard keys.count > windowKeys else { return noIndexShift }
        var shift = noIndexShift - 1
        while shift > 0 && !bucketsFit(keys, shift: shift) { shift -= 1 }
        return shift
    }

    /// Whether no bucket of 2^shift key values holds more than 63 of `keys` after its start.
    static func bucketsFit(_ keys: [UInt16], shift: Int) -> Bool {
        var bucket = -1, inBucket = 0
        for key in keys.dropFirst() {
            if Int(key) >> shift != bucket {
                bucket = Int(key) >> shift
                inBucket = 0
            }
            if Int(key) & ((1 << shift) - 1) == 0 { continue }  // on the bucket's start
            inBucket += 1
            if inBucket > windowKeys - 1 { return false }
        }
        return true
    }

    /// The index of sorted `keys` at `shift`: entry b is the index of the last key <= b << shift.
    public static func index(for keys: [UInt16], shift: Int) -> [UInt16] {
        guard shift < noIndexShift else { return [] }
        var entries: [UInt16] = []
        entries.reserveCapacity(1 << (16 - shift))
        var j = 0
        for b in 0..<(1 << (16 - shift)) {
            while j + 1 < keys.count && Int(keys[j + 1]) <= b << shift { j += 1 }
            entries.append(UInt16(j))
        }
        return entries
    }

    /// Bytes of the index at `shift` (none at 16). Also what lookups compute, without
    /// a branch: 2^(17-shift) is 2 at shift 16, and clearing that bit leaves 0.
    @inlinable @inline(__always)
    public static func indexBytes(shift: Int) -> Int { (0x20000 &>> shift) & ~2 }

    /// Byte offset of the keys within a node whose index has `shift`.
    @inlinable @inline(__always)
    public static func keysOffset(shift: Int) -> Int { TrieFormat.nodeHeaderSize &+ indexBytes(shift: shift) }

    /// Byte offset of the keys within a node, from its header.
    @inlinable
    public static func keysOffset(node: UnsafeRawPointer) -> Int {
        keysOffset(shift: Int(node.load(fromByteOffset: 1, as: UInt8.self)))
    }

    /// Byte offset of the end of a node's values (before padding), from where its
    /// keys start.
    public static func valuesEnd(kind: TrieFormat.NodeKind, keysOffset: Int, count n: Int) -> Int {
        let values = keysOffset + 2 * n
        switch kind {
        case .leaves8: return values + n
        case .leaves16, .mixed16: return values + 2 * n
        case .mixed32: return ((values + 3) & ~3) + 4 * n
        }
    }

    /// Keys <= x among the 32 sorted keys at `p`: the run of set bits at the bottom
    /// of their mask (callers clamp it to the lanes that hold the node's keys).
    @inlinable @inline(__always)
    static func countAtMost(_ p: UnsafeRawPointer, _ x: UInt16) -> Int {
        (~UInt64(geogate_at_most_mask32(p, x))).trailingZeroBitCount
    }

    /// Keys <= x among the first `valid` keys at `p` (the lanes after them may hold
    /// anything: values, the next node). Sorted keys make the set bits a prefix, so
    /// the garbage can only lengthen a prefix that already covers every valid key.
    @inlinable @inline(__always)
    static func countAtMost(_ p: UnsafeRawPointer, _ x: UInt16, valid: Int) -> Int {
        min(countAtMost(p, x), valid)
    }

    /// Index of the last key <= key in the node at `node` (keys[0] == 0), and the byte
    /// offset of the node's values (right after its keys). The validator has checked
    /// the shift byte (1...16), the index entries and that every read stays inside the
    /// nodes section.
    @inlinable @inline(__always)
    static func search(_ node: UnsafeRawPointer, key x: UInt16) -> (index: Int, values: Int) {
        let j = windowStart(node, key: x)
        prefetchValue(node, from: j)
        return count(node, key: x, from: j)
    }

    /// The first of the keys one search counts: the index entry of x's bucket (key 0
    /// without an index). The first half of `search`, which batched lookups run for
    /// a whole group before the second, so the groups' window loads overlap.
    @inlinable @inline(__always)
    static func windowStart(_ node: UnsafeRawPointer, key x: UInt16) -> Int {
        let shift = Int(node.load(fromByteOffset: 1, as: UInt8.self))
        let entryAt = TrieFormat.nodeHeaderSize &+ (Int(x) &>> shift) &* 2
        return Int(UInt16(littleEndian: node.load(fromByteOffset: entryAt, as: UInt16.self)))
    }

    /// Starts loading the value a window starting at key j most likely ends on (its
    /// first: the windows of most searches hold a single run start) while its keys
    /// are still compared.
    @inlinable @inline(__always)
    static func prefetchValue(_ node: UnsafeRawPointer, from j: Int) {
        let n = Int(UInt16(littleEndian: node.load(fromByteOffset: 2, as: UInt16.self))) &+ 1
        let keysAt = keysOffset(shift: Int(node.load(fromByteOffset: 1, as: UInt8.self)))
        // Bytes per value: leaves8 has 1, the others 2 (mixed32's 4 are rare enough).
        let valueWidth = node.load(as: UInt8.self) == TrieFormat.NodeKind.leaves8.rawValue ? 1 : 2
        geogate_prefetch(node + (keysAt &+ n &* 2 &+ j &* valueWidth))
    }

    /// The second half of `search`: counts the window from key j.
    @inlinable @inline(__always)
    static func count(_ node: UnsafeRawPointer, key x: UInt16, from j: Int) -> (index: Int, values: Int) {
        let n = Int(UInt16(littleEndian: node.load(fromByteOffset: 2, as: UInt16.self))) &+ 1
        let keysAt = keysOffset(shift: Int(node.load(fromByteOffset: 1, as: UInt8.self)))
        return (j &+ countWindow(node + (keysAt &+ j &* 2), key: x, valid: n &- j) &- 1, keysAt &+ n &* 2)
    }

    /// Keys <= x in the window at `window` (two blocks), of which `valid` are the node's.
    @inlinable @inline(__always)
    static func countWindow(_ window: UnsafeRawPointer, key x: UInt16, valid: Int) -> Int {
        countAtMost(window, x, valid: valid) &+ countAtMost(window + blockBytes, x, valid: max(valid &- blockKeys, 0))
    }
}
