import CGeoGateSupport
import Testing
@testable import GeoGateCore
@testable import GeoGateTrie

/// The node search on its own: nodes without an index and with indexes of every
/// shift the data calls for, against a binary search over the same keys.
struct NodeSearchTests {
    /// A node as the writer lays it out (header, index, keys, u8 values) plus the
    /// section's slack.
    func node(keys: [UInt16]) -> [UInt8] {
        let shift = NodeSearch.indexShift(for: keys)
        var bytes: [UInt8] = [TrieFormat.NodeKind.leaves8.rawValue, UInt8(shift)]
        func le(_ v: UInt16) { bytes.append(UInt8(v & 0xFF)); bytes.append(UInt8(v >> 8)) }
        le(UInt16(keys.count - 1))
        bytes += [0, 0, 0, 0]
        for entry in NodeSearch.index(for: keys, shift: shift) { le(entry) }
        #expect(bytes.count == NodeSearch.keysOffset(shift: shift))
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

    /// Every x of the 16-bit range against the binary search; the values offset too.
    func checkEveryKey(_ keys: [UInt16], _ label: String) {
        let bytes = node(keys: keys)
        let valuesAt = NodeSearch.keysOffset(shift: NodeSearch.indexShift(for: keys)) + 2 * keys.count
        bytes.withUnsafeBytes { raw in
            for x in 0...UInt16.max {
                let (index, values) = NodeSearch.search(raw.baseAddress!, key: x)
                if index != expected(keys, x) || values != valuesAt {
                    Issue.record("\(label) x=\(x): \(index) (values at \(values)), expected \(expected(keys, x)) (\(valuesAt))")
                    return
                }
            }
        }
    }

    /// Random keys drawn from the whole range, from one key to every value: up to 64
    /// keys need no index, more get the largest shift their buckets allow.
    @Test(arguments: [1, 2, 31, 32, 33, 63, 64, 65, 96, 97, 1_000, 4_096, 10_000, 40_000, 65_535, 65_536])
    func searchAgreesWithBinarySearch(count: Int) {
        var rng = SplitMix64(seed: UInt64(count))
        var chosen = Set<UInt16>([0])
        while chosen.count < count { chosen.insert(UInt16(truncatingIfNeeded: rng.next())) }
        let keys = chosen.sorted()
        let shift = NodeSearch.indexShift(for: keys)
        if count <= NodeSearch.windowKeys {
            #expect(shift == NodeSearch.noIndexShift)
        } else {
            #expect(shift < NodeSearch.noIndexShift && NodeSearch.bucketsFit(keys, shift: shift))
            #expect(shift == NodeSearch.noIndexShift - 1 || !NodeSearch.bucketsFit(keys, shift: shift + 1), "the largest shift that fits")
        }
        checkEveryKey(keys, "n=\(count)")
    }

    /// Shapes at the edges of the index: a bucket at the limit of 63 keys after its
    /// start (with and without a key on the start), keys on bucket starts, one crowded
    /// bucket among sparse ones (a fine index), and every value a key.
    @Test(arguments: [0, 1, 2, 3, 4])
    func indexSearchAgreesWithBinarySearch(shape: Int) {
        var rng = SplitMix64(seed: UInt64(100 + shape))
        var chosen = Set<UInt16>([0])
        switch shape {
        case 0: for b in stride(from: 0, to: 256, by: 3) { for i in 0..<63 { chosen.insert(UInt16(b << 8 | (i * 4 + 1))) } }
        case 1: for b in stride(from: 0, to: 256, by: 5) { for i in 0...63 { chosen.insert(UInt16(b << 8 | i)) } }
        case 2: for b in 0..<256 { chosen.insert(UInt16(b << 8)); chosen.insert(UInt16(b << 8 | 0xFF)) }
        case 3: for i in 1...200 { chosen.insert(UInt16(0x7F00 + i)) }; while chosen.count < 1_000 { chosen.insert(UInt16(truncatingIfNeeded: rng.next())) }
        default: for x in 0...UInt16.max { chosen.insert(x) }
        }
        let keys = chosen.sorted()
        let shift = NodeSearch.indexShift(for: keys)
        #expect(shift < NodeSearch.noIndexShift && NodeSearch.bucketsFit(keys, shift: shift) && !NodeSearch.bucketsFit(keys, shift: shift + 1))
        if shape == 1 { #expect(shift == 8, "a key on the start and 63 after it still fit a 256-value bucket") }
        if shape == 4 { #expect(shift == 6, "64 values a bucket: 63 keys after its start") }
        checkEveryKey(keys, "shape \(shape)")
        // One key more than a window holds after a bucket's start: that bucket needs a finer shift.
        let crowded: [UInt16] = [0] + (1...64).map { UInt16(0x4000 + $0) }
        #expect(!NodeSearch.bucketsFit(crowded, shift: 8) && NodeSearch.bucketsFit(crowded, shift: 6))
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
