import Foundation
import Testing
@testable import GeoGateCore
@testable import GeoGateTrie

/// Every code the validator accepts: enough to push country indexes past 255.
let allCodes: [CountryCode] = (CountryCode.assignedCodes + CountryCode.specialCodes.map(\.code)).map { CountryCode($0)! }

/// Seeded sampling for reproducible property tests.
struct Random {
    var generator: SplitMix64
    init(state: UInt64) { generator = SplitMix64(seed: state) }
    mutating func next() -> UInt64 { generator.next() }
    mutating func below(_ n: UInt64) -> UInt64 { next() % n }
    mutating func u128() -> UInt128 { UInt128(next()) << 64 | UInt128(next()) }
}

/// A random normalized map: `count` ranges whose boundaries fall on multiples of
/// 2^alignBits inside [base, base + span), with countries drawn from `codes`.
func randomMap(family: IPFamily, count: Int, base: UInt128 = 0, spanBits: Int, alignBits: Int,
               codes: [CountryCode], rng: inout Random) -> RangeMap {
    var points = Set<UInt128>()
    let unitBits = spanBits - alignBits
    precondition(unitBits >= 64 || count * 2 <= (1 << unitBits) * 15 / 16, "more points than the span holds")
    while points.count < count * 2 {
        let unit = unitBits >= 64 ? (rng.u128() >> UInt128(128 - unitBits)) : UInt128(rng.below(UInt64(1) << UInt64(unitBits)))
        points.insert(base + (unit << UInt128(alignBits)))
    }
    let sorted = points.sorted()
    var ranges: [AddressRange] = []
    for i in stride(from: 0, to: sorted.count - 1, by: 2) {
        let end = sorted[i + 1] - 1
        let cc = codes[Int(rng.below(UInt64(codes.count)))]
        RangeMap.appendCoalescing(AddressRange(start: sorted[i], end: end, country: cc), to: &ranges)
        // Sometimes make the next range touch this one.
        if rng.below(3) == 0, i + 2 < sorted.count, sorted[i + 1] < sorted[i + 2] {
            RangeMap.appendCoalescing(AddressRange(start: sorted[i + 1], end: sorted[i + 2] - 1,
                                                   country: codes[Int(rng.below(UInt64(codes.count)))]), to: &ranges)
        }
    }
    // Re-normalise (touching pieces may have merged oddly): rebuild through the builder.
    var b = RangeMapBuilder(family: family)
    var lastEnd: UInt128? = nil
    for r in ranges where lastEnd.map({ r.start > $0 }) ?? true {
        b.add(start: r.start, end: r.end, country: r.country, line: 0)
        lastEnd = r.end
    }
    return try! b.build()
}

func trie(v4: RangeMap = RangeMap(family: .v4), v6: RangeMap = RangeMap(family: .v6), time: Int64 = 0) throws -> TrieFile {
    let bytes = try TrieWriter.bytes(v4: v4, v6: v6, sources: [], buildTime: time)
    return try TrieFile(bytes: bytes)
}

/// Checks a trie against its maps at every boundary (start, end, start-1, end+1)
/// and at random addresses.
func expectAgrees(_ t: TrieFile, _ map: RangeMap, rng: inout Random, randomProbes: Int = 2_000) {
    let view = t.view
    func check(_ v: UInt128) {
        let ours = view.countryCode(index: map.family == .v4 ? view.countryIndex(ipv4: UInt32(v)) : view.countryIndex(ipv6: v))
        let expected = map.country(of: v)
        if map.family == .v6 && v >> 32 == 0xffff { return }  // answered as IPv4
        #expect(ours == expected, "\(IPAddress.format(v, family: map.family))")
    }
    for r in map.ranges {
        check(r.start)
        check(r.end)
        if r.start > 0 { check(r.start - 1) }
        if r.end < map.family.maxAddress { check(r.end + 1) }
    }
    for _ in 0..<randomProbes {
        check(map.family == .v4 ? UInt128(UInt32(truncatingIfNeeded: rng.next())) : rng.u128())
    }
}

@Suite struct TrieLookups {
    @Test func emptyTrieAnswersNoCountry() throws {
        let t = try trie()
        #expect(t.country(of: IPAddress("1.2.3.4")!) == nil)
        #expect(t.country(of: IPAddress("2001:db8::1")!) == nil)
        #expect(t.rangeMap(.v4).isEmpty && t.rangeMap(.v6).isEmpty)
    }

    @Test func wholeSpaceRanges() throws {
        let de = CountryCode("DE")!
        let t = try trie(v4: RangeMap(family: .v4, normalized: [AddressRange(start: 0, end: UInt128(UInt32.max), country: de)]),
                         v6: RangeMap(family: .v6, normalized: [AddressRange(start: 0, end: .max, country: de)]))
        #expect(t.country(of: IPAddress("255.255.255.255")!) == de)
        #expect(t.country(of: IPAddress("ffff::1")!) == de)
        #expect(t.rangeMap(.v6).ranges == [AddressRange(start: 0, end: .max, country: de)])
    }

    /// A node whose children lie further apart than its 16-bit values reach (20,000
    /// children of 16 bytes: 320 KB) is written with u32 slots (mixed32), and answers.
    @Test func childrenTooFarApartForMixed16UseMixed32() throws {
        let de = CountryCode("DE")!, fr = CountryCode("FR")!
        let base = UInt128(0x2001) << 112
        // In every other /32 of 2001::/16, its first half: a child node under the /16's node.
        let ranges = (0..<20_000).map { i in
            let start = base | UInt128(2 * i) << 96
            return AddressRange(start: start, end: start | (UInt128(1) << 95 - 1), country: i % 2 == 0 ? de : fr)
        }
        let v6 = RangeMap(family: .v6, normalized: ranges)
        let t = try trie(v6: v6)
        let slot = t.view.root6[1 + 1]  // the /16 2001::/16
        #expect(slot & TrieFormat.nodeFlag != 0)
        let kind = t.view.nodes.load(fromByteOffset: Int(slot & ~TrieFormat.nodeFlag) * 4, as: UInt8.self)
        #expect(kind == TrieFormat.NodeKind.mixed32.rawValue)
        for r in ranges.prefix(300) + ranges.suffix(300) {
            #expect(t.view.countryIndex(ipv6: r.start) == t.view.countryIndex(ipv6: r.end))
            #expect(t.country(of: IPAddress(family: .v6, value: r.end)) == r.country)
            #expect(t.country(of: IPAddress(family: .v6, value: r.end + 1)) == nil)
        }
        #expect(t.rangeMap(.v6).ranges == ranges)
    }

    @Test func singleAddressesAtTheEdges() throws {
        let us = CountryCode("US")!, fr = CountryCode("FR")!
        let v4 = RangeMap(family: .v4, normalized: [AddressRange(start: 0, end: 0, country: us),
                                                    AddressRange(start: UInt128(UInt32.max), end: UInt128(UInt32.max), country: fr)])
        let v6 = RangeMap(family: .v6, normalized: [AddressRange(start: 0, end: 0, country: us),
                                                    AddressRange(start: .max, end: .max, country: fr)])
        let t = try trie(v4: v4, v6: v6)
        var rng = Random(state: 1)
        expectAgrees(t, v4, rng: &rng)
        expectAgrees(t, v6, rng: &rng)
        #expect(t.rangeMap(.v4) == v4 && t.rangeMap(.v6) == v6)
    }

    /// Random maps of every shape: sparse and dense, boundaries at any bit, nodes
    /// large enough for fine indexes, more than 255 countries.
    @Test(arguments: [
        (4, 200, 32, 0), (4, 3_000, 32, 8), (4, 20_000, 20, 0), (4, 30_000, 16, 0),
        (6, 300, 128, 0), (6, 5_000, 64, 16), (6, 30_000, 48, 0), (6, 30_000, 32, 16), (6, 2_000, 128, 100),
    ])
    func randomMapsAgreeWithTheModel(family: Int, count: Int, spanBits: Int, alignBits: Int) throws {
        var rng = Random(state: UInt64(family * 1_000_003 + count + spanBits * 7 + alignBits))
        let f: IPFamily = family == 4 ? .v4 : .v6
        // Dense cases live in one corner (one /16 or one /80), so single nodes get huge.
        let base: UInt128 = f == .v4 ? (spanBits < 32 ? UInt128(0x5102_0000) : 0)
                                     : (spanBits < 128 ? UInt128(0x2a02_0000_0000) << 80 : 0)
        let map = randomMap(family: f, count: count, base: base, spanBits: spanBits, alignBits: alignBits,
                            codes: allCodes, rng: &rng)
        let t = try f == .v4 ? trie(v4: map) : trie(v6: map)
        expectAgrees(t, map, rng: &rng)
        #expect(t.rangeMap(f) == map, "export must reproduce the input exactly")
    }

    @Test func ipv4MappedAddressesAnswerAsIPv4() throws {
        var rng = Random(state: 7)
        let v4 = randomMap(family: .v4, count: 2_000, spanBits: 32, alignBits: 4, codes: allCodes, rng: &rng)
        let v6 = RangeMap(family: .v6, normalized: [AddressRange(start: 0, end: .max, country: CountryCode("ZZ")!)])
        let t = try trie(v4: v4, v6: v6)
        for _ in 0..<5_000 {
            let a = UInt32(truncatingIfNeeded: rng.next())
            let mapped = IPAddress(family: .v6, value: UInt128(0xffff) << 32 | UInt128(a))
            #expect(t.country(of: mapped) == v4.country(of: UInt128(a)))
        }
    }

    @Test func sameInputSameBytes() throws {
        var rng = Random(state: 3)
        let v4 = randomMap(family: .v4, count: 5_000, spanBits: 32, alignBits: 0, codes: allCodes, rng: &rng)
        let v6 = randomMap(family: .v6, count: 5_000, spanBits: 128, alignBits: 64, codes: allCodes, rng: &rng)
        let source = TrieMetadata.Source(name: "x.csv", sha256: Array(repeating: 7, count: 32), storedSize: 9, format: "tor")
        let a = try TrieWriter.bytes(v4: v4, v6: v6, sources: [source], buildTime: 1_700_000_000)
        let b = try TrieWriter.bytes(v4: v4, v6: v6, sources: [source], buildTime: 1_700_000_000)
        #expect(a == b)
        let t = try TrieFile(bytes: a)
        #expect(t.metadata.sources == [source])
        #expect(t.metadata.buildTime == 1_700_000_000)
        #expect(t.metadata.v4RangeCount == UInt64(v4.ranges.count))
        #expect(t.metadata.v6AddressCount == v6.addressCount)
    }
}

/// Docs/FORMAT.md describes the version this code writes: its title and the
/// header table's version field (both once said 2 for version-3 files).
@Suite struct FormatDocument {
    @Test func theDocumentNamesTheVersionTheWriterWrites() throws {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
        let text = try String(contentsOfFile: path + "/Docs/FORMAT.md", encoding: .utf8)
        #expect(text.hasPrefix("# The geogate trie file, version \(TrieFormat.version)\n"))
        #expect(text.contains("| 8 | u32 | format version: \(TrieFormat.version) "), "the header table's version row")
    }
}
