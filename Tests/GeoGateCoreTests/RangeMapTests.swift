import Testing
@testable import GeoGateCore

/// A naive model: one country per address of a small space.
struct NaiveMap {
    var cells: [CountryCode?]
    init(size: Int) { cells = Array(repeating: nil, count: size) }

    mutating func paint(_ start: Int, _ end: Int, _ cc: CountryCode) {
        for i in start...end { cells[i] = cc }
    }

    /// The normal form the range map must produce.
    var ranges: [AddressRange] {
        var out: [AddressRange] = []
        var i = 0
        while i < cells.count {
            guard let cc = cells[i] else { i += 1; continue }
            var j = i
            while j + 1 < cells.count && cells[j + 1] == cc { j += 1 }
            out.append(AddressRange(start: UInt128(i), end: UInt128(j), country: cc))
            i = j + 1
        }
        return out
    }
}

let sampleCodes = ["DE", "FR", "CH", "IT", "US"].map { CountryCode($0)! }

@Suite struct RangeMaps {
    @Test func builderMergesTouchingAndOverlappingSameCountry() throws {
        var b = RangeMapBuilder(family: .v4)
        let de = CountryCode("DE")!
        b.add(start: 10, end: 19, country: de, line: 1)
        b.add(start: 0, end: 9, country: de, line: 2)
        b.add(start: 15, end: 30, country: de, line: 3)
        let map = try b.build()
        #expect(map.ranges == [AddressRange(start: 0, end: 30, country: de)])
    }

    @Test func builderRejectsConflictingOverlapWithBothLines() {
        var b = RangeMapBuilder(family: .v4)
        b.add(start: 0, end: 9, country: CountryCode("DE")!, line: 7)
        b.add(start: 5, end: 20, country: CountryCode("FR")!, line: 12)
        #expect(throws: RangeMapError.self) { try b.build() }
        do {
            _ = try b.build()
        } catch {
            guard case let .conflictingOverlap(firstLine, _, secondLine, _, _, start, end) = error else { return }
            #expect(firstLine == 7 && secondLine == 12)
            #expect(start == 5 && end == 9)
        }
    }

    /// Random non-conflicting inputs in random order give the naive model's ranges.
    @Test func builderMatchesNaiveModel() throws {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            var model = NaiveMap(size: 512)
            var entries: [(Int, Int, CountryCode)] = []
            // Disjoint pieces (some touching, some repeated) so no conflicts arise.
            var cursor = Int(rng.next() % 8)
            while cursor < 500 {
                let length = Int(rng.next() % 20)
                let end = min(cursor + length, 511)
                let cc = sampleCodes[Int(rng.next() % UInt64(sampleCodes.count))]
                entries.append((cursor, end, cc))
                if rng.next() % 4 == 0 { entries.append((cursor, end, cc)) }  // a duplicate line
                model.paint(cursor, end, cc)
                cursor = end + 1 + Int(rng.next() % 3)
            }
            entries.shuffle()
            var b = RangeMapBuilder(family: .v4)
            for (i, e) in entries.enumerated() { b.add(start: UInt128(e.0), end: UInt128(e.1), country: e.2, line: i + 1) }
            let map = try b.build()
            #expect(map.ranges == model.ranges)
            #expect(RangeMap.isNormalized(map.ranges))
            for probe in 0..<512 { #expect(map.country(of: UInt128(probe)) == model.cells[probe]) }
        }
    }

    /// overlaid(with:) is "later wins" on the naive model.
    @Test func overlayMatchesNaiveModel() throws {
        var rng = SystemRandomNumberGenerator()
        func randomMap(_ model: inout NaiveMap) throws -> RangeMap {
            var fresh = NaiveMap(size: 512)
            var cursor = Int(rng.next() % 30)
            while cursor < 500 {
                let end = min(cursor + Int(rng.next() % 40), 511)
                let cc = sampleCodes[Int(rng.next() % UInt64(sampleCodes.count))]
                fresh.paint(cursor, end, cc)
                cursor = end + 1 + Int(rng.next() % 50)
            }
            var b = RangeMapBuilder(family: .v4)
            for r in fresh.ranges { b.add(start: r.start, end: r.end, country: r.country, line: 0) }
            for (i, cell) in fresh.cells.enumerated() where cell != nil { model.cells[i] = cell }
            return try b.build()
        }
        for _ in 0..<300 {
            var model = NaiveMap(size: 512)
            let older = try randomMap(&model)
            let newer = try randomMap(&model)
            let merged = older.overlaid(with: newer)
            #expect(merged.ranges == model.ranges)
        }
    }

    /// removing(start:end:) clears exactly that block on the naive model.
    @Test func removingMatchesNaiveModel() throws {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            var model = NaiveMap(size: 512)
            var cursor = Int(rng.next() % 10)
            while cursor < 500 {
                let end = min(cursor + Int(rng.next() % 60), 511)
                model.paint(cursor, end, sampleCodes[Int(rng.next() % UInt64(sampleCodes.count))])
                cursor = end + 1 + Int(rng.next() % 20)
            }
            let map = RangeMap(family: .v4, normalized: model.ranges)
            let a = Int(rng.next() % 512), b = Int(rng.next() % 512)
            let (start, end) = (min(a, b), max(a, b))
            for i in start...end { model.cells[i] = nil }
            #expect(map.removing(start: UInt128(start), end: UInt128(end)).ranges == model.ranges)
        }
    }

    @Test func overlayAtTheTopOfTheAddressSpace() throws {
        let de = CountryCode("DE")!, fr = CountryCode("FR")!
        let older = RangeMap(family: .v6, normalized: [AddressRange(start: 0, end: .max, country: de)])
        let newer = RangeMap(family: .v6, normalized: [AddressRange(start: .max - 5, end: .max, country: fr)])
        let merged = older.overlaid(with: newer)
        #expect(merged.ranges == [AddressRange(start: 0, end: .max - 6, country: de),
                                  AddressRange(start: .max - 5, end: .max, country: fr)])
        #expect(merged.addressCount == .max)
    }
}
