import Testing
@testable import GeoGateCore
@testable import GeoGateTrie

/// Batched lookups must answer exactly as single lookups, for every family, shape
/// and batch length (groups cut anywhere, lookups ending at different levels).
@Suite struct BatchedLookups {
    /// Addresses of every kind a caller may pass: at and around every range edge of
    /// both maps, random in both families and outside 2000::/3, IPv4-mapped IPv6, and
    /// IPv6 addresses below 2^32 (IPv4-compatible, which are not IPv4).
    func probes(_ v4: RangeMap, _ v6: RangeMap, random: Int, rng: inout Random) -> [IPAddress] {
        var list: [IPAddress] = []
        for (family, map) in [(IPFamily.v4, v4), (.v6, v6)] {
            for r in map.ranges {
                for v in [r.start, r.end, r.start &- 1, r.end &+ 1] where v <= family.maxAddress {
                    list.append(IPAddress(family: family, value: v))
                }
            }
        }
        for i in 0..<random {
            switch i % 5 {
            case 0: list.append(IPAddress(v4: UInt32(truncatingIfNeeded: rng.next())))
            case 1: list.append(IPAddress(family: .v6, value: rng.u128() >> 3 | UInt128(1) << 125))
            case 2: list.append(IPAddress(family: .v6, value: rng.u128()))
            case 3: list.append(IPAddress(family: .v6, value: UInt128(0xffff) << 32 | UInt128(UInt32(truncatingIfNeeded: rng.next()))))
            default: list.append(IPAddress(family: .v6, value: UInt128(UInt32(truncatingIfNeeded: rng.next()))))
            }
        }
        // Shuffled, so each group mixes families and depths.
        for i in stride(from: list.count - 1, to: 0, by: -1) { list.swapAt(i, Int(rng.below(UInt64(i + 1)))) }
        return list
    }

    func expectBatchEqualsSingle(_ view: TrieView, _ addresses: [IPAddress]) {
        // Every length around the group size, then the whole list at once.
        var lengths = Array(0...(2 * TrieView.batchGroupSize + 1))
        lengths.append(addresses.count)
        for length in lengths where length <= addresses.count {
            var answers = [UInt16](repeating: 0xFFFF, count: length + 1)
            addresses.withUnsafeBufferPointer { list in
                answers.withUnsafeMutableBufferPointer { out in
                    view.countryIndexes(of: UnsafeBufferPointer(rebasing: list[0..<length]), into: out)
                }
            }
            #expect(answers[length] == 0xFFFF, "nothing written past the batch")
            // The one-family forms over the same addresses, where they apply.
            let slice = addresses[0..<length]
            if slice.allSatisfy({ $0.family == .v4 }) {
                var v4Answers = [UInt16](repeating: 0xFFFF, count: length)
                slice.map { UInt32(truncatingIfNeeded: $0.value) }.withUnsafeBufferPointer { list in
                    v4Answers.withUnsafeMutableBufferPointer { view.countryIndexes(ipv4: list, into: $0) }
                }
                let wrong = (0..<length).first { v4Answers[$0] != answers[$0] }
                #expect(wrong == nil, "countryIndexes(ipv4:), batch of \(length): first differs at \(wrong ?? -1)")
            }
            if slice.allSatisfy({ $0.family == .v6 }) {
                var v6Answers = [UInt16](repeating: 0xFFFF, count: length)
                slice.map(\.value).withUnsafeBufferPointer { list in
                    v6Answers.withUnsafeMutableBufferPointer { view.countryIndexes(ipv6: list, into: $0) }
                }
                let wrong = (0..<length).first { v6Answers[$0] != answers[$0] }
                #expect(wrong == nil, "countryIndexes(ipv6:), batch of \(length): first differs at \(wrong ?? -1)")
            }
            var wrong = 0
            for i in 0..<length where answers[i] != view.countryIndex(of: addresses[i]) {
                wrong += 1
                if wrong <= 5 { Issue.record("\(addresses[i]): batch \(answers[i]), single \(view.countryIndex(of: addresses[i])) (batch of \(length))") }
            }
            if wrong > 0 { return }
        }
    }

    @Test(arguments: [(200, 300, 32, 128), (20_000, 30_000, 20, 48), (3_000, 5_000, 32, 64)])
    func randomMapsBothFamilies(v4Count: Int, v6Count: Int, v4Span: Int, v6Span: Int) throws {
        var rng = Random(state: UInt64(v4Count * 31 + v6Count))
        let v4Base: UInt128 = v4Span < 32 ? UInt128(0x5102_0000) : 0
        let v6Base: UInt128 = v6Span < 128 ? UInt128(0x2a02_0000_0000) << 80 : 0
        let v4 = randomMap(family: .v4, count: v4Count, base: v4Base, spanBits: v4Span, alignBits: 0, codes: allCodes, rng: &rng)
        let v6 = randomMap(family: .v6, count: v6Count, base: v6Base, spanBits: v6Span, alignBits: 0, codes: allCodes, rng: &rng)
        let t = try trie(v4: v4, v6: v6)
        let all = probes(v4, v6, random: 200_000, rng: &rng)
        expectBatchEqualsSingle(t.view, all)
        // One family at a time, through the one-family forms as well.
        expectBatchEqualsSingle(t.view, all.filter { $0.family == .v4 })
        expectBatchEqualsSingle(t.view, all.filter { $0.family == .v6 })
    }

    @Test func wholeSpaceAndEmptyTries() throws {
        var rng = Random(state: 3)
        let everything = try trie(v4: RangeMap(family: .v4, normalized: [AddressRange(start: 0, end: UInt128(UInt32.max), country: CountryCode("IT")!)]),
                                  v6: RangeMap(family: .v6, normalized: [AddressRange(start: 0, end: .max, country: CountryCode("CH")!)]))
        let empty = try trie()
        for t in [everything, empty] {
            expectBatchEqualsSingle(t.view, probes(RangeMap(family: .v4), RangeMap(family: .v6), random: 1_000, rng: &rng))
        }
    }
}
