/// A set of addresses of one family: sorted, disjoint, non-adjacent closed
/// intervals. The set algebra behind firewall sets (countries ∪ allowed − blocked,
/// trusted added): each operation is one linear merge of two sorted lists, exact
/// for any ranges, and the result stays in normal form, so equal sets compare equal
/// and the CIDR cover of a set is minimal.
public struct AddressSet: Sendable, Equatable {
    public struct Interval: Sendable, Equatable {
        public var first: UInt128
        public var last: UInt128
        @inlinable public init(first: UInt128, last: UInt128) {
            self.first = first
            self.last = last
        }
    }

    public let family: IPFamily
    public private(set) var intervals: [Interval]

    public init(family: IPFamily) {
        self.family = family
        self.intervals = []
    }

    /// Any intervals (overlapping, unsorted); normalised here.
    public init(family: IPFamily, intervals: [Interval]) {
        self.family = family
        // Callers mostly pass sorted lists (from a range map): sort only if needed.
        var isSorted = true
        for i in intervals.indices.dropFirst() where intervals[i - 1].first > intervals[i].first { isSorted = false; break }
        var sorted = isSorted ? intervals : intervals.sorted { $0.first < $1.first }
        var out: [Interval] = []
        out.reserveCapacity(sorted.count)
        for i in sorted.indices {
            precondition(sorted[i].first <= sorted[i].last && sorted[i].last <= family.maxAddress, "bad interval")
            AddressSet.append(sorted[i], to: &out)
        }
        sorted.removeAll()
        self.intervals = out
    }

    public init(family: IPFamily, cidrs: [CIDR]) {
        self.init(family: family, intervals: cidrs.filter { $0.family == family }.map { Interval(first: $0.first, last: $0.last) })
    }

    public static func all(_ family: IPFamily) -> AddressSet {
        AddressSet(family: family, intervals: [Interval(first: 0, last: family.maxAddress)])
    }

    public var isEmpty: Bool { intervals.isEmpty }

    public func contains(_ value: UInt128) -> Bool {
        var lo = 0, hi = intervals.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if intervals[mid].last < value { lo = mid + 1 } else { hi = mid }
        }
        return lo < intervals.count && intervals[lo].first <= value
    }

    /// How many addresses (saturating at UInt128.max for the whole IPv6 space).
    public var addressCount: UInt128 {
        var total: UInt128 = 0
        for i in intervals {
            let (size, overflow) = (i.last - i.first).addingReportingOverflow(1)
            if overflow { return .max }
            let (sum, o2) = total.addingReportingOverflow(size)
            if o2 { return .max }
            total = sum
        }
        return total
    }

    public func union(_ other: AddressSet) -> AddressSet {
        precondition(family == other.family)
        var out: [Interval] = []
        out.reserveCapacity(intervals.count + other.intervals.count)
        var i = 0, j = 0
        while i < intervals.count || j < other.intervals.count {
            let takeMine = j == other.intervals.count || (i < intervals.count && intervals[i].first <= other.intervals[j].first)
            if takeMine { AddressSet.append(intervals[i], to: &out); i += 1 } else { AddressSet.append(other.intervals[j], to: &out); j += 1 }
        }
        return AddressSet(family: family, normalized: out)
    }

    public func subtracting(_ other: AddressSet) -> AddressSet {
        precondition(family == other.family)
        var out: [Interval] = []
        out.reserveCapacity(intervals.count + other.intervals.count)
        var j = 0
        for var piece in intervals {
            // Skip removals entirely before this interval.
            while j < other.intervals.count && other.intervals[j].last < piece.first { j += 1 }
            var k = j
            var alive = true
            while k < other.intervals.count && other.intervals[k].first <= piece.last {
                let cut = other.intervals[k]
                if cut.first > piece.first { out.append(Interval(first: piece.first, last: cut.first - 1)) }
                if cut.last >= piece.last { alive = false; break }
                piece.first = cut.last + 1
                k += 1
            }
            if alive { out.append(piece) }
        }
        return AddressSet(family: family, normalized: out)
    }

    public func intersection(_ other: AddressSet) -> AddressSet {
        subtracting(AddressSet.all(family).subtracting(other))
    }

    /// The minimal list of CIDR networks covering exactly this set.
    public func cidrs() -> [CIDR] {
        var out: [CIDR] = []
        for i in intervals { CIDR.cover(start: i.first, end: i.last, family: family) { out.append($0) } }
        return out
    }

    private init(family: IPFamily, normalized: [Interval]) {
        self.family = family
        self.intervals = normalized
    }

    /// Appends keeping normal form; `interval` must not start before the last one.
    private static func append(_ interval: Interval, to list: inout [Interval]) {
        if let last = list.last, last.last == UInt128.max || interval.first <= last.last + 1 {
            if interval.last > last.last { list[list.count - 1].last = interval.last }
            return
        }
        list.append(interval)
    }
}
