import GeoGateCore

/// Turns range maps into the trie's sections. The input is first flattened into
/// "boundaries": the sorted starts of maximal runs of one country index (0 = none)
/// that together cover the whole family. Each node then records, for its 16-bit
/// chunk of the address, where runs start and what they hold.
struct TrieBuilder {
    /// Country code → index (1-based; 0 = none), in the order given.
    let countryIndex: [CountryCode: UInt16]
    var nodes: [UInt8] = []
    var childTable: [UInt32] = []

    init(countries: [CountryCode]) {
        var index: [CountryCode: UInt16] = [:]
        for (i, code) in countries.enumerated() { index[code] = UInt16(i + 1) }
        self.countryIndex = index
    }

    /// Run starts and their country index, covering the family from address 0.
    struct Boundaries {
        var starts: [UInt128] = []
        var countries: [UInt16] = []

        init(_ map: RangeMap, countryIndex: [CountryCode: UInt16]) {
            starts.reserveCapacity(map.ranges.count * 2 + 1)
            countries.reserveCapacity(map.ranges.count * 2 + 1)
            push(0, TrieFormat.noCountry)
            for r in map.ranges {
                push(r.start, countryIndex[r.country]!)
                if r.end != map.family.maxAddress { push(r.end + 1, TrieFormat.noCountry) }
            }
        }

        mutating func push(_ start: UInt128, _ country: UInt16) {
            if let last = starts.last, last == start {
                countries[countries.count - 1] = country
                if countries.count >= 2 && countries[countries.count - 2] == country {
                    starts.removeLast()
                    countries.removeLast()
                }
                return
            }
            if let last = countries.last, last == country { return }
            starts.append(start)
            countries.append(country)
        }
    }

    /// The IPv4 root: one slot per /16.
    mutating func buildIPv4(_ map: RangeMap) -> [UInt32] {
        let b = Boundaries(map, countryIndex: countryIndex)
        return directSlots(b, firstLow: 0, count: TrieFormat.ipv4RootSlots, remainingBits: 16)
    }

    /// The IPv6 root: the tree outside 2000::/3, then one slot per /16 of 2000::/3.
    mutating func buildIPv6(_ map: RangeMap) -> [UInt32] {
        // Slot 0: the map with 2000::/3 cleared.
        let outside = map.removing(start: TrieFormat.ipv6DirectFirst, end: TrieFormat.ipv6DirectLast)
        let rest = Boundaries(outside, countryIndex: countryIndex)
        var slots = [subtree(rest, low: 0, remainingBits: 128, range: 1..<rest.starts.count, countryAtLow: rest.countries[0])]
        let b = Boundaries(map, countryIndex: countryIndex)
        slots += directSlots(b, firstLow: TrieFormat.ipv6DirectFirst, count: TrieFormat.ipv6DirectSlots, remainingBits: 112)
        return slots
    }

    /// Slots for `count` consecutive blocks of 2^remainingBits addresses from `firstLow`.
    mutating func directSlots(_ b: Boundaries, firstLow: UInt128, count: Int, remainingBits: Int) -> [UInt32] {
        var slots = [UInt32](repeating: 0, count: count)
        let size = UInt128(1) << UInt128(remainingBits)
        // The boundary in force at firstLow, and the next one after it.
        var k = 0
        while k + 1 < b.starts.count && b.starts[k + 1] <= firstLow { k += 1 }
        var current = b.countries[k]
        k += 1
        for i in 0..<count {
            let low = firstLow + UInt128(i) * size
            let high = low + size
            if k < b.starts.count && b.starts[k] == low {
                current = b.countries[k]
                k += 1
            }
            var end = k
            while end < b.starts.count && b.starts[end] < high { end += 1 }
            slots[i] = subtree(b, low: low, remainingBits: remainingBits, range: k..<end, countryAtLow: current)
            if end > k { current = b.countries[end - 1] }
            k = end
        }
        return slots
    }

    enum Value {
        case leaf(UInt16)
        case child(UInt32)  // a slot
    }

    /// Builds the block [low, low + 2^remainingBits) whose inner boundaries are `range`.
    mutating func subtree(_ b: Boundaries, low: UInt128, remainingBits: Int, range: Range<Int>,
                          countryAtLow: UInt16) -> UInt32 {
        if range.isEmpty { return UInt32(countryAtLow) }
        let shift = UInt128(remainingBits - TrieFormat.strideBits)
        var keys: [UInt16] = [0]
        var values: [Value] = [.leaf(countryAtLow)]
        func set(_ key: UInt16, _ value: Value) {
            if keys.last == key {
                keys.removeLast()
                values.removeLast()
            }
            if case .leaf(let c) = value, case .leaf(let previous)? = values.last, previous == c { return }
            keys.append(key)
            values.append(value)
        }
        var current = countryAtLow
        var k = range.lowerBound
        while k < range.upperBound {
            let chunk = (b.starts[k] - low) >> shift
            let chunkLow = low + chunk << shift
            var m = k
            while m < range.upperBound && (b.starts[m] - low) >> shift == chunk { m += 1 }
            var atChunkLow = current
            var first = k
            if b.starts[k] == chunkLow {
                atChunkLow = b.countries[k]
                first = k + 1
            }
            if first == m {
                set(UInt16(chunk), .leaf(atChunkLow))
            } else {
                let child = subtree(b, low: chunkLow, remainingBits: Int(shift), range: first..<m,
                                    countryAtLow: atChunkLow)
                set(UInt16(chunk), .child(child))
                if chunk < 0xFFFF { set(UInt16(chunk + 1), .leaf(b.countries[m - 1])) }
            }
            current = b.countries[m - 1]
            k = m
        }
        return emitNode(keys: keys, values: values)
    }

    /// Appends a node to the nodes section and returns its slot.
    mutating func emitNode(keys: [UInt16], values: [Value]) -> UInt32 {
        let children = values.filter { if case .child = $0 { return true } else { return false } }.count
        let kind: TrieFormat.NodeKind
        if children == 0 {
            let wide = values.contains { if case .leaf(let c) = $0 { return c > 0xFF } else { return false } }
            kind = wide ? .leaves16 : .leaves8
        } else {
            kind = children <= TrieFormat.maxMixed16Children ? .mixed16 : .mixed32
        }
        let offset = nodes.count
        precondition(offset % 4 == 0 && offset / 4 < Int(TrieFormat.nodeFlag), "nodes section too large")
        let n = keys.count
        var firstChild: UInt32 = 0
        if kind == .mixed16 {
            firstChild = UInt32(childTable.count)
            for case .child(let slot) in values { childTable.append(slot) }
        }
        nodes.append(kind.rawValue)
        nodes.append(UInt8(NodeSearch.upperLayers(count: n)))
        appendLE(UInt16(n - 1))
        appendLE(firstChild)
        for separator in NodeSearch.separators(for: keys) { appendLE(separator) }
        for key in keys { appendLE(key) }
        switch kind {
        case .leaves8:
            for case .leaf(let c) in values { nodes.append(UInt8(c)) }
        case .leaves16:
            for case .leaf(let c) in values { appendLE(c) }
        case .mixed16:
            var childNumber: UInt16 = 0
            for value in values {
                switch value {
                case .leaf(let c): appendLE(c)
                case .child:
                    appendLE(TrieFormat.mixed16ChildFlag | childNumber)
                    childNumber += 1
                }
            }
        case .mixed32:
            while (nodes.count - offset) % 4 != 0 { nodes.append(0) }
            for value in values {
                switch value {
                case .leaf(let c): appendLE(UInt32(c))
                case .child(let slot): appendLE(slot)
                }
            }
        }
        while nodes.count % 4 != 0 { nodes.append(0) }
        return TrieFormat.nodeFlag | UInt32(offset / 4)
    }

    mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { nodes.append(contentsOf: $0) }
    }
}
