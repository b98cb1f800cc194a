import CGeoGateSupport

/// How a node's sorted 16-bit run starts are searched, and the separator layers
/// that make large nodes fast.
///
/// Keys are compared 32 at a time (one 64-byte block, a cache line): the answer
/// "last key <= x" is the count of keys <= x, minus one. A node of up to
/// `linearLimit` keys is counted block by block (independent loads). A larger node
/// carries separators above its keys, so that a lookup waits for as few dependent
/// cache misses as possible:
/// - a flat *top layer* of up to `topBlocks` blocks: the first keys of the blocks
///   below it (all but the first), counted in one go — its blocks are independent
///   loads, so they cost one miss, not four;
/// - only when the blocks below outnumber what the top covers (more than
///   `topChildren` key blocks, n > 4,128), one *middle layer* in between: block j
///   holds the first keys of blocks 33j+1 ... 33j+32 below it (an S+-tree level).
/// One middle layer suffices for 16-bit keys (2,048 key blocks → 63 middle blocks).
/// Unused separator lanes hold 0xFFFF; child numbers are clamped so they can never
/// lead out of range.
public enum NodeSearch {
    public static let blockKeys = 32
    public static let blockShift = 5  // log2(blockKeys)
    public static let fanOut = blockKeys + 1
    public static let blockBytes = 2 * blockKeys
    public static let linearLimit = 64
    /// Blocks of the flat top layer, at most: 128 separators, 129 children.
    public static let topBlocks = 4
    public static let topChildren = topBlocks * blockKeys + 1
    /// Bytes the nodes section carries after its last node, so the block reads at the
    /// last keys (or values) never leave the section: one 64-byte block, or the two
    /// of a direct index's window.
    public static let sectionSlack = 2 * blockBytes

    /// Blocks per layer, bottom (the keys themselves) first, the flat top last.
    @inlinable
    public static func layerBlocks(count n: Int) -> [Int] {
        var layers = [(n + blockKeys - 1) / blockKeys]
        if n <= linearLimit { return layers }
        while layers.last! > topChildren { layers.append((layers.last! + fanOut - 1) / fanOut) }
        // The top holds a separator for every block below but the first.
        layers.append((layers.last! - 1 + blockKeys - 1) / blockKeys)
        return layers
    }

    /// The number of separator layers above the keys (0, 1 or 2).
    @inlinable
    public static func upperLayers(count n: Int) -> Int { layerBlocks(count: n).count - 1 }

    /// The separator blocks for sorted `keys`, top layer first (what the writer stores).
    public static func separators(for keys: [UInt16]) -> [UInt16] {
        let layers = layerBlocks(count: keys.count)
        guard layers.count > 1 else { return [] }
        func padded(_ values: [UInt16]) -> [UInt16] {
            values + repeatElement(0xFFFF, count: (blockKeys - values.count % blockKeys) % blockKeys)
        }
        // firsts = the smallest key under each block of the layer being built on.
        var firsts = stride(from: 0, to: keys.count, by: blockKeys).map { keys[$0] }
        var middle: [[UInt16]] = []
        for _ in 1..<(layers.count - 1) {
            var blocks: [UInt16] = []
            var next: [UInt16] = []
            for block in 0..<((firsts.count + fanOut - 1) / fanOut) {
                let firstChild = block * fanOut
                next.append(firsts[firstChild])
                for i in 1...blockKeys {
                    let child = firstChild + i
                    blocks.append(child < firsts.count ? firsts[child] : 0xFFFF)
                }
            }
            middle.append(blocks)
            firsts = next
        }
        let top = padded(Array(firsts.dropFirst()))
        return top + middle.reversed().flatMap { $0 }
    }

    /// Keys <= x among the 32 sorted keys at `p`: the run of set bits at the bottom
    /// of their mask (separator lanes past the end hold 0xFFFF; callers clamp).
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

    /// Byte offset of the keys within a node of n keys (after header and separators).
    @inlinable
    public static func keysOffset(count n: Int) -> Int {
        TrieFormat.nodeHeaderSize + blockBytes * layerBlocks(count: n).dropFirst().reduce(0, +)
    }

    /// Byte offset of the keys within a node of n keys, with a direct index or the
    /// separators its count implies.
    @inlinable
    public static func keysOffset(count n: Int, directIndex: Bool) -> Int {
        directIndex ? TrieFormat.nodeHeaderSize + TrieFormat.directIndexBytes : keysOffset(count: n)
    }

    /// Byte offset of the keys within a node, from its header.
    @inlinable
    public static func keysOffset(node: UnsafeRawPointer) -> Int {
        keysOffset(count: Int(UInt16(littleEndian: node.load(fromByteOffset: 2, as: UInt16.self))) + 1,
                   directIndex: node.load(fromByteOffset: 1, as: UInt8.self) == TrieFormat.directIndexLayout)
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

    /// Whether sorted `keys` (keys[0] == 0) can be searched through a direct index:
    /// more than `linearLimit` of them (below that a scan is as fast), and at most
    /// `directIndexBucketKeys` in each run of 256 key values.
    public static func fitsDirectIndex(_ keys: [UInt16]) -> Bool {
        guard keys.count > linearLimit else { return false }
        var bucket = -1, inBucket = 0
        for key in keys.dropFirst() {
            if Int(key >> 8) != bucket {
                bucket = Int(key >> 8)
                inBucket = 0
            }
            inBucket += 1
            if inBucket > TrieFormat.directIndexBucketKeys { return false }
        }
        return true
    }

    /// The direct index of sorted `keys`: entry b is the index of the last key <= b << 8.
    public static func directIndex(for keys: [UInt16]) -> [UInt16] {
        var entries: [UInt16] = []
        entries.reserveCapacity(TrieFormat.directIndexEntries)
        var j = 0
        for b in 0..<TrieFormat.directIndexEntries {
            while j + 1 < keys.count && Int(keys[j + 1]) <= b << 8 { j += 1 }
            entries.append(UInt16(j))
        }
        return entries
    }

    /// Index of the last key <= key in the node at `node` (keys[0] == 0), and the byte
    /// offset of the node's values (right after its keys).
    @inlinable @inline(__always)
    static func search(_ node: UnsafeRawPointer, key: UInt16) -> (index: Int, values: Int) {
        let n = Int(UInt16(littleEndian: node.load(fromByteOffset: 2, as: UInt16.self))) &+ 1
        let upper = Int(node.load(fromByteOffset: 1, as: UInt8.self))
        let x = key
        // Bytes per value: leaves8 has 1, the others 2 (mixed32's 4 are rare enough).
        let valueWidth = node.load(as: UInt8.self) == 1 ? 1 : 2
        if upper == Int(TrieFormat.directIndexLayout) {
            // The entry for x's high byte is the last key <= its bucket's start, so
            // <= x; the bucket's other keys are among the 63 after it.
            let entryAt = TrieFormat.nodeHeaderSize &+ Int(x &>> 8) &* 2
            let j = Int(UInt16(littleEndian: node.load(fromByteOffset: entryAt, as: UInt16.self)))
            let keysAt = TrieFormat.nodeHeaderSize &+ TrieFormat.directIndexBytes
            geogate_prefetch(node + (keysAt &+ n &* 2 &+ j &* valueWidth))
            let window = node + (keysAt &+ j &* 2)
            let valid = n &- j
            let count = countAtMost(window, x, valid: valid) &+ countAtMost(window + blockBytes, x, valid: max(valid &- blockKeys, 0))
            return (j &+ count &- 1, keysAt &+ n &* 2)
        }
        if upper == 0 {
            let keysAt = TrieFormat.nodeHeaderSize
            geogate_prefetch(node + (keysAt &+ n &* 2))
            let keys = node + keysAt
            var count = 0
            var block = 0
            while block < n {
                count &+= countAtMost(keys + block &* 2, x, valid: n &- block)
                block &+= blockKeys
            }
            return (count &- 1, keysAt &+ n &* 2)
        }
        // The flat top covers the key blocks, or the middle blocks when there is a
        // middle layer (upper == 2). The same sizes as layerBlocks(count:), without
        // allocating.
        let keyBlocks = (n &+ blockKeys &- 1) &>> blockShift
        let below = upper == 1 ? keyBlocks : (keyBlocks &+ fanOut &- 1) / fanOut
        let top = (below &+ blockKeys &- 2) &>> blockShift
        var offset = TrieFormat.nodeHeaderSize
        var c = countAtMost(node + offset, x)
        var b = 1
        while b < top {
            c &+= countAtMost(node + (offset &+ b &* blockBytes), x)
            b &+= 1
        }
        offset &+= top &* blockBytes
        var block = min(c, below &- 1)
        if upper == 2 {
            let c2 = countAtMost(node + (offset &+ block &* blockBytes), x)
            offset &+= below &* blockBytes
            block = min(block &* fanOut &+ c2, keyBlocks &- 1)
        }
        let base = block &* blockKeys
        geogate_prefetch(node + (offset &+ n &* 2 &+ base &* valueWidth))
        let index = base &+ countAtMost(node + (offset &+ base &* 2), x, valid: n &- base) &- 1
        return (index, offset &+ n &* 2)
    }
}
