/// The normal form of one family's country data: sorted, disjoint ranges, with
/// adjacent ranges of the same country merged. Every importer produces one per
/// family; the trie builder, `export` and the set algebra consume it.
public struct RangeMap: Sendable, Equatable {
    public let family: IPFamily
    public private(set) var ranges: [AddressRange]

    public init(family: IPFamily) {
        self.family = family
        self.ranges = []
    }

    /// Wraps ranges that are already in normal form (checked with a precondition
    /// in debug builds only; use `RangeMapBuilder` for untrusted input).
    public init(family: IPFamily, normalized ranges: [AddressRange]) {
        self.family = family
        self.ranges = ranges
        assert(RangeMap.isNormalized(ranges), "ranges are not in normal form")
    }

    public static func isNormalized(_ ranges: [AddressRange]) -> Bool {
        for i in ranges.indices {
            if ranges[i].start > ranges[i].end { return false }
            if i > 0 {
                let p = ranges[i - 1]
                if p.end >= ranges[i].start { return false }
                if p.end + 1 == ranges[i].start && p.country == ranges[i].country { return false }
            }
        }
        return true
    }

    public var isEmpty: Bool { ranges.isEmpty }

    /// The country of one address, by binary search (the reference model for tests).
    public func country(of value: UInt128) -> CountryCode? {
        var low = 0, high = ranges.count
        while low < high {
            let mid = (low + high) / 2
            if ranges[mid].end < value { low = mid + 1 } else { high = mid }
        }
        guard low < ranges.count, ranges[low].start <= value else { return nil }
        return ranges[low].country
    }

    /// Addresses with a country, saturating at UInt128.max.
    public var addressCount: UInt128 {
        var total: UInt128 = 0
        for r in ranges {
            let (sum, overflow) = total.addingReportingOverflow(r.addressCount)
            total = overflow ? .max : sum
        }
        return total
    }

    /// Addresses per country.
    public func addressCountByCountry() -> [CountryCode: UInt128] {
        var counts: [CountryCode: UInt128] = [:]
        for r in ranges { counts[r.country, default: 0] &+= r.addressCount }
        return counts
    }

    /// The ranges of one country.
    public func ranges(of country: CountryCode) -> [AddressRange] {
        ranges.filter { $0.country == country }
    }

    /// This map without the addresses [start, end]: ranges inside are dropped, ranges
    /// that cross an edge are cut there.
    public func removing(start: UInt128, end: UInt128) -> RangeMap {
        var kept: [AddressRange] = []
        kept.reserveCapacity(ranges.count)
        for r in ranges {
            if r.start < start { kept.append(AddressRange(start: r.start, end: min(r.end, start - 1), country: r.country)) }
            if r.end > end { kept.append(AddressRange(start: max(r.start, end + 1), end: r.end, country: r.country)) }
        }
        return RangeMap(family: family, normalized: kept)
    }

    /// This map with `newer` laid over it: where both have a country, `newer` wins.
    /// This is the merge rule for several inputs (a later input overrides an earlier one).
    public func overlaid(with newer: RangeMap) -> RangeMap {
        precondition(newer.family == family)
        if newer.ranges.isEmpty { return self }
        if ranges.isEmpty { return newer }
        // The parts of our ranges that no newer range covers.
        var kept: [AddressRange] = []
        kept.reserveCapacity(ranges.count)
        var j = 0
        for r in ranges {
            var cursor = r.start
            var done = false
            while !done {
                while j < newer.ranges.count && newer.ranges[j].end < cursor { j += 1 }
                if j < newer.ranges.count && newer.ranges[j].start <= r.end {
                    let n = newer.ranges[j]
                    if n.start > cursor { kept.append(AddressRange(start: cursor, end: n.start - 1, country: r.country)) }
                    if n.end >= r.end { done = true } else { cursor = n.end + 1 }
                } else {
                    kept.append(AddressRange(start: cursor, end: r.end, country: r.country))
                    done = true
                }
            }
        }
        // Merge the two sorted, disjoint lists and coalesce.
        var merged: [AddressRange] = []
        merged.reserveCapacity(kept.count + newer.ranges.count)
        var a = 0, b = 0
        while a < kept.count || b < newer.ranges.count {
            let takeKept = b == newer.ranges.count || (a < kept.count && kept[a].start < newer.ranges[b].start)
            let next = takeKept ? kept[a] : newer.ranges[b]
            if takeKept { a += 1 } else { b += 1 }
            RangeMap.appendCoalescing(next, to: &merged)
        }
        return RangeMap(family: family, normalized: merged)
    }

    /// True when `range` starts right after `last` with the same country: one range.
    @inlinable
    public static func continues(_ last: AddressRange, with range: AddressRange) -> Bool {
        last.country == range.country && last.end != .max && last.end + 1 == range.start
    }

    /// Appends a range that starts after the last one, merging it into the last
    /// one when they touch and share a country.
    @inlinable
    public static func appendCoalescing(_ range: AddressRange, to list: inout [AddressRange]) {
        if let last = list.last, continues(last, with: range) {
            list[list.count - 1].end = range.end
        } else {
            list.append(range)
        }
    }
}

/// Why ranges could not form a range map. Lines are the source lines the ranges came
/// from (0 where a format has no lines, as in an MMDB).
public enum RangeMapError: Error, Equatable, Sendable {
    /// Two ranges of one source overlap with different countries.
    case conflictingOverlap(firstLine: Int, first: CountryCode, secondLine: Int, second: CountryCode,
                            family: IPFamily, start: UInt128, end: UInt128)
}

/// Collects one source's ranges in any order, then checks and normalizes them.
/// Overlaps with the same country are merged (sources repeat themselves); overlaps
/// with different countries are an error, because the source contradicts itself.
public struct RangeMapBuilder: Sendable {
    public let family: IPFamily
    @usableFromInline var entries: [AddressRange] = []
    @usableFromInline var lines: [Int32] = []
    @usableFromInline var sorted = true

    public init(family: IPFamily) { self.family = family }

    public var count: Int { entries.count }

    public mutating func reserveCapacity(_ n: Int) {
        entries.reserveCapacity(n)
        lines.reserveCapacity(n)
    }

    /// Adds a range. The caller has checked start <= end and the family's bounds.
    @inlinable
    public mutating func add(start: UInt128, end: UInt128, country: CountryCode, line: Int) {
        if let last = entries.last, last.start > start { sorted = false }
        entries.append(AddressRange(start: start, end: end, country: country))
        lines.append(Int32(truncatingIfNeeded: line))
    }

    /// Sorts (stable by line), checks overlaps and coalesces, in place: the ranges
    /// are never held twice (an input at the size limit would otherwise need a
    /// second copy of every range), and the builder is left empty.
    public mutating func build() throws(RangeMapError) -> RangeMap {
        if !sorted { sortInPlace() }
        var ranges = entries
        let lines = self.lines
        entries = []
        self.lines = []
        // Compaction: `kept` ranges at the front are the result so far.
        var kept = 0
        var lastLine = 0
        for i in ranges.indices {
            let r = ranges[i]
            let line = Int(lines[i])
            if kept > 0 && ranges[kept - 1].end >= r.start {
                // Overlap.
                let last = ranges[kept - 1]
                guard last.country == r.country else {
                    throw .conflictingOverlap(firstLine: lastLine, first: last.country, secondLine: line,
                                              second: r.country, family: family,
                                              start: r.start, end: min(last.end, r.end))
                }
                if r.end > last.end { ranges[kept - 1].end = r.end; lastLine = line }
                continue
            }
            if kept > 0 && RangeMap.continues(ranges[kept - 1], with: r) {
                ranges[kept - 1].end = r.end
            } else {
                ranges[kept] = r
                kept += 1
            }
            lastLine = line
        }
        ranges.removeLast(ranges.count - kept)
        return RangeMap(family: family, normalized: ranges)
    }

    /// Sorts the ranges and their lines together by (start, line): an index array
    /// (4 bytes a range) is sorted, then applied to both arrays by following its
    /// cycles, so no second copy of the ranges is made.
    mutating func sortInPlace() {
        var order = (0..<Int32(entries.count)).map { $0 }
        order.sort { (entries[Int($0)].start, lines[Int($0)]) < (entries[Int($1)].start, lines[Int($1)]) }
        // Position k takes the element at order[k]; done positions are marked -1.
        for start in order.indices where order[start] >= 0 {
            let savedRange = entries[start], savedLine = lines[start]
            var k = start
            while true {
                let from = Int(order[k])
                order[k] = -1
                if from == start {
                    entries[k] = savedRange
                    lines[k] = savedLine
                    break
                }
                entries[k] = entries[from]
                lines[k] = lines[from]
                k = from
            }
        }
        sorted = true
    }
}
