import CGeoGateSupport

/// How a node's sorted 16-bit run starts are searched, and the separator layers
/// that make large nodes fast.
///
/// Keys are compared 32 at a time (one 64-byte block, a cache line): the answer
/// "last key <= x" is the count of keys <= x, minus one. A node of up to
/// `linearLimit` keys is counted block by block (independent loads). A larger node
/// carries an S+-tree above its keys: layer 1 holds, for each group of 33 key
/// blocks, the first keys of blocks 2...33 (32 separators, one block); layer 2 does
/// the same over layer 1, and so on until one block. A lookup reads one block per
/// layer instead of doing ~log2(n) dependent binary-search steps, which is what
/// made IPv6 lookups in the large RIPE nodes slow. Unused separator lanes hold
/// 0xFFFF; the child number is clamped so they can never lead out of range.
public enum NodeSearch {
    public static let blockKeys = 32
    public static let fanOut = blockKeys + 1
    public static let blockBytes = 2 * blockKeys
    public static let linearLimit = 64
    /// Bytes the nodes section carries after its last node, so a 64-byte block read
    /// at the last keys (or values) never leaves the section.
    public static let sectionSlack = blockBytes

    /// Blocks per layer, bottom (the keys themselves) first.
    @inlinable
    public static func layerBlocks(count n: Int) -> [Int] {
        var layers = [(n + blockKeys - 1) / blockKeys]
        if n <= linearLimit { return layers }
        while layers.last! > 1 { layers.append((layers.last! + fanOut - 1) / fanOut) }
        return layers
    }

    /// The number of separator layers above the keys.
    @inlinable
    public static func upperLayers(count n: Int) -> Int { layerBlocks(count: n).count - 1 }

    /// The separator blocks for sorted `keys`, top layer first (what the writer stores).
    public static func separators(for keys: [UInt16]) -> [UInt16] {
        let layers = layerBlocks(count: keys.count)
        guard layers.count > 1 else { return [] }
        // firstKeys[k][j] = the smallest key under block j of layer k.
        var firstKeys: [[UInt16]] = [stride(from: 0, to: keys.count, by: blockKeys).map { keys[$0] }]
        var stored: [[UInt16]] = []
        for layer in 1..<layers.count {
            let below = firstKeys[layer - 1]
            var blocks: [UInt16] = []
            var firsts: [UInt16] = []
            for block in 0..<layers[layer] {
                let firstChild = block * fanOut
                firsts.append(below[firstChild])
                for i in 1...blockKeys {
                    let child = firstChild + i
                    blocks.append(child < below.count ? below[child] : 0xFFFF)
                }
            }
            stored.append(blocks)
            firstKeys.append(firsts)
        }
        return stored.reversed().flatMap { $0 }
    }

    /// Separators <= x among the 32 at `p` (unused lanes hold 0xFFFF; callers clamp).
    @inlinable @inline(__always)
    static func countAtMost(_ p: UnsafeRawPointer, _ x: SIMD16<UInt16>) -> Int {
        let low = p.loadUnaligned(as: SIMD16<UInt16>.self) .<= x
        let high = p.loadUnaligned(fromByteOffset: 32, as: SIMD16<UInt16>.self) .<= x
        return sumOfLanes(ones(low) &+ ones(high))
    }

    /// Keys <= x among the 32 at `p`, counting only the first `valid` lanes.
    @inlinable @inline(__always)
    static func countAtMost(_ p: UnsafeRawPointer, _ x: SIMD16<UInt16>, valid: Int) -> Int {
        countAtMost16(p, x, valid: valid) &+ countAtMost16(p + 32, x, valid: valid &- 16)
    }

    /// Keys <= x among the 16 at `p`, counting only the first `valid` lanes (valid may be <= 0).
    @inlinable @inline(__always)
    static func countAtMost16(_ p: UnsafeRawPointer, _ x: SIMD16<UInt16>, valid: Int) -> Int {
        let keys = p.loadUnaligned(as: SIMD16<UInt16>.self)
        let lanes = SIMD16<UInt16>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
        let limit = UInt16(truncatingIfNeeded: max(0, min(valid, 16)))
        return sumOfLanes(ones((keys .<= x) .& (lanes .< SIMD16<UInt16>(repeating: limit))))
    }

    /// A mask as lanes of 0 or 1.
    @inlinable @inline(__always)
    static func ones(_ mask: SIMDMask<SIMD16<Int16>>) -> SIMD16<UInt16> {
        unsafeBitCast(mask, to: SIMD16<UInt16>.self) & SIMD16<UInt16>(repeating: 1)
    }

    /// The sum of 16 small lanes (each sum must fit 16 bits), without the
    /// out-of-line generic wrappedSum: add the four 64-bit words lane-wise, then one
    /// multiply adds their four 16-bit lanes into the top one.
    @inlinable @inline(__always)
    static func sumOfLanes(_ v: SIMD16<UInt16>) -> Int {
        let words = unsafeBitCast(v, to: SIMD4<UInt64>.self)
        let lanesSum = words[0] &+ words[1] &+ words[2] &+ words[3]
        return Int(truncatingIfNeeded: (lanesSum &* 0x0001_0001_0001_0001) >> 48)
    }

    /// Byte offset of the keys within a node of n keys (after header and separators).
    @inlinable
    public static func keysOffset(count n: Int) -> Int {
        TrieFormat.nodeHeaderSize + blockBytes * layerBlocks(count: n).dropFirst().reduce(0, +)
    }

    /// Index of the last key <= key in the node at `node` (keys[0] == 0), and the byte
    /// offset of the node's values (right after its keys).
    @inlinable @inline(__always)
    static func search(_ node: UnsafeRawPointer, key: UInt16) -> (index: Int, values: Int) {
        let n = Int(UInt16(littleEndian: node.load(fromByteOffset: 2, as: UInt16.self))) &+ 1
        let upper = Int(node.load(fromByteOffset: 1, as: UInt8.self))
        let x = SIMD16<UInt16>(repeating: key)
        // Bytes per value: leaves8 has 1, the others 2 (mixed32's 4 are rare enough).
        let valueWidth = node.load(as: UInt8.self) == 1 ? 1 : 2
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
        // Blocks per layer, bottom first (at most 4 layers for 65,536 keys).
        // (The same sizes as layerBlocks(count:), computed without allocating.)
        let l0 = (n &+ blockKeys &- 1) / blockKeys
        let l1 = (l0 &+ fanOut &- 1) / fanOut
        let l2 = (l1 &+ fanOut &- 1) / fanOut
        let l3 = (l2 &+ fanOut &- 1) / fanOut
        var offset = TrieFormat.nodeHeaderSize
        var block = 0
        // Walk the separator layers from the top (layer `upper`) down to layer 1.
        var layer = upper
        while layer > 0 {
            let here = layer == 3 ? l3 : (layer == 2 ? l2 : l1)
            let below = layer == 3 ? l2 : (layer == 2 ? l1 : l0)
            let c = countAtMost(node + (offset &+ block &* blockBytes), x)
            block = min(block &* fanOut &+ c, below &- 1)
            offset &+= here &* blockBytes
            layer &-= 1
        }
        let base = block &* blockKeys
        geogate_prefetch(node + (offset &+ n &* 2 &+ base &* valueWidth))
        let index = base &+ countAtMost(node + (offset &+ base &* 2), x, valid: n &- base) &- 1
        return (index, offset &+ n &* 2)
    }
}
