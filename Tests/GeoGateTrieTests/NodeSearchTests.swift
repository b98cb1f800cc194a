import CGeoGateSupport
import Testing
@testable import GeoGateCore
@testable import GeoGateTrie

/// The node search on its own: every separator shape (none, a flat top of 1-4
/// blocks, top + middle layer) against a binary search over the same keys.
struct NodeSearchTests {
    /// A node as the writer lays it out (header, separators, keys, u8 values) plus
    /// the section's slack, in an 8-byte-aligned buffer.
    func node(keys: [UInt16]) -> [UInt8] {
        var bytes: [UInt8] = [TrieFormat.NodeKind.leaves8.rawValue, UInt8(NodeSearch.upperLayers(count: keys.count))]
        func le(_ v: UInt16) { bytes.append(UInt8(v & 0xFF)); bytes.append(UInt8(v >> 8)) }
        le(UInt16(keys.count - 1))
        bytes += [0, 0, 0, 0]
        for s in NodeSearch.separators(for: keys) { le(s) }
        #expect(bytes.count == NodeSearch.keysOffset(count: keys.count))
        for k in keys { le(k) }
        bytes += keys.indices.map { UInt8(truncatingIfNeeded: $0) }
        bytes += [UInt8](repeating: 0xEE, count: NodeSearch.sectionSlack)
        return bytes
    }

    func expected(_ keys: [UInt16], _ x: UInt16) -> Int {
        var lo = 0, hi = keys.count  // first index with key > x
        while lo < hi {
            let mid = (lo + hi) / 2
            if keys[mid] <= x { lo = mid + 1 } else { hi = mid }
        }
        return lo - 1
    }

    @Test(arguments: [1, 2, 31, 32, 33, 63, 64, 65, 96, 97, 1_000, 4_096, 4_097, 4_128, 4_129, 4_160, 4_161,
                      10_000, 40_000, 65_535, 65_536])
    func searchAgreesWithBinarySearch(count: Int) {
        var rng = SplitMix64(seed: UInt64(count))
        // `count` distinct keys from 0, drawn from the whole 16-bit range.
        var chosen = Set<UInt16>([0])
        while chosen.count < count { chosen.insert(UInt16(truncatingIfNeeded: rng.next())) }
        let keys = chosen.sorted()
        let layers = NodeSearch.layerBlocks(count: count)
        #expect(layers.count == 1 + (count <= 64 ? 0 : (count <= 4_128 ? 1 : 2)))
        if layers.count > 1 { #expect(layers.last! <= NodeSearch.topBlocks) }
        let bytes = node(keys: keys)
        bytes.withUnsafeBytes { raw in
            var probes: [UInt16] = [0, 1, 0xFFFE, 0xFFFF]
            for k in keys.prefix(200) + keys.suffix(200) { probes += [k, k &- 1, k &+ 1] }
            for _ in 0..<5_000 { probes.append(UInt16(truncatingIfNeeded: rng.next())) }
            for x in probes {
                let (index, values) = NodeSearch.search(raw.baseAddress!, key: x)
                #expect(index == expected(keys, x), "n=\(count) x=\(x)")
                #expect(values == NodeSearch.keysOffset(count: count) + 2 * count)
            }
        }
    }

    /// A node with a direct index (what IPv6 nodes get when their keys allow it),
    /// against the same binary search: keys spread thin, keys crowding one bucket up
    /// to the limit of 63, keys sitting on bucket starts.
    @Test(arguments: [0, 1, 2, 3])
    func directIndexSearchAgreesWithBinarySearch(shape: Int) {
        var rng = SplitMix64(seed: UInt64(100 + shape))
        var chosen = Set<UInt16>([0])
        switch shape {
        case 0: while chosen.count < 2_000 { chosen.insert(UInt16(truncatingIfNeeded: rng.next())) }
        case 1: for b in stride(from: 0, to: 256, by: 3) { for i in 0..<63 { chosen.insert(UInt16(b << 8 | (i * 4 + 1))) } }
        case 2: for b in 0..<256 { chosen.insert(UInt16(b << 8)); chosen.insert(UInt16(b << 8 | 0xFF)) }
        default: for i in 1...63 { chosen.insert(UInt16(0x7F00 + i)) }; for i in 0..<10 { chosen.insert(UInt16(i * 7 + 3)) }
        }
        let keys = chosen.sorted()
        #expect(NodeSearch.fitsDirectIndex(keys))
        var bytes: [UInt8] = [TrieFormat.NodeKind.leaves8.rawValue, TrieFormat.directIndexLayout]
        func le(_ v: UInt16) { bytes.append(UInt8(v & 0xFF)); bytes.append(UInt8(v >> 8)) }
        le(UInt16(keys.count - 1))
        bytes += [0, 0, 0, 0]
        for entry in NodeSearch.directIndex(for: keys) { le(entry) }
        for k in keys { le(k) }
        bytes += keys.indices.map { UInt8(truncatingIfNeeded: $0) }
        bytes += [UInt8](repeating: 0xEE, count: NodeSearch.sectionSlack)
        bytes.withUnsafeBytes { raw in
            #expect(NodeSearch.keysOffset(node: raw.baseAddress!) == TrieFormat.nodeHeaderSize + TrieFormat.directIndexBytes)
            for x in 0...UInt16.max {
                let (index, values) = NodeSearch.search(raw.baseAddress!, key: x)
                let valuesAt = TrieFormat.nodeHeaderSize + TrieFormat.directIndexBytes + 2 * keys.count
                if index != expected(keys, x) || values != valuesAt {
                    Issue.record("shape \(shape) x=\(x): \(index) (values at \(values)), expected \(expected(keys, x)) (\(valuesAt))")
                    return
                }
            }
        }
        // One key too many in a bucket, or too few keys overall: no direct index.
        #expect(!NodeSearch.fitsDirectIndex([0] + (1...64).map { UInt16(0x4000 + $0) }))
        #expect(!NodeSearch.fitsDirectIndex(Array(0..<64).map { UInt16($0 * 512) }))
    }

    /// The SSE2 mask against the portable loop, on random and sorted blocks.
    @Test func atMostMaskMatchesThePortableDefinition() {
        var rng = SplitMix64(seed: 42)
        var block = [UInt16](repeating: 0, count: 32)
        for round in 0..<20_000 {
            for i in 0..<32 { block[i] = UInt16(truncatingIfNeeded: rng.next()) }
            if round % 2 == 0 { block.sort() }
            let x: UInt16 = round % 7 == 0 ? block[Int(rng.next() % 32)] : UInt16(truncatingIfNeeded: rng.next())
            block.withUnsafeBytes { p in
                #expect(geogate_at_most_mask32(p.baseAddress!, x) == geogate_at_most_mask32_scalar(p.baseAddress!, x))
            }
        }
    }
}
