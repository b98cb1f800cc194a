import GeoGateCore

/// Turns range maps into the trie's sections. The input is first flattened into
/// "boundaries": the sorted starts of maximal runs of one country index (0 = none)
/// that together cover the whole family. Each node then records, for its 16-bit
/// chunk of the address, where runs start and what they hold. A family's nodes are
/// built in memory first, then laid out breadth first, so that the children of a
/// node form one group right where a 16-bit value can reach them.
struct TrieBuilder {
    /// Country code → index (1-based; 0 = none), in the order given.
    let countryIndex: [CountryCode: UInt16]
    var nodes: [UInt8] = []
    /// The nodes of the family being built, before layout.
    var pending: [PendingNode] = []
    /// Nodes built so far, both families: a builder node costs a few hundred bytes
    /// before layout, so their number is capped (scattered IPv6 host routes need up
    /// to seven each). Past the cap the builder stops descending and says so here.
    var nodesBuilt = 0
    var maxNodes = Int.max
    var overNodeLimit = false

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
        let roots = directSlots(b, firstLow: 0, count: TrieFormat.ipv4RootSlots, remainingBits: 16)
        return layOut(roots)
    }

    /// The IPv6 root: the tree outside 2000::/3, then one slot per /16 of 2000::/3.
    mutating func buildIPv6(_ map: RangeMap) -> [UInt32] {
        // Slot 0: the map with 2000::/3 cleared.
        let outside = map.removing(start: TrieFormat.ipv6DirectFirst, end: TrieFormat.ipv6DirectLast)
        let rest = Boundaries(outside, countryIndex: countryIndex)
        var roots = [subtree(rest, low: 0, remainingBits: 128, range: 1..<rest.starts.count, countryAtLow: rest.countries[0])]
        let b = Boundaries(map, countryIndex: countryIndex)
        roots += directSlots(b, firstLow: TrieFormat.ipv6DirectFirst, count: TrieFormat.ipv6DirectSlots, remainingBits: 112)
        return layOut(roots)
    }

    /// Values for `count` consecutive blocks of 2^remainingBits addresses from `firstLow`.
    mutating func directSlots(_ b: Boundaries, firstLow: UInt128, count: Int, remainingBits: Int) -> [Value] {
        var slots = [Value](repeating: .leaf(0), count: count)
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
        case node(Int)  // index into `pending`
    }

    /// A node's run starts and values, before it has a place in the file.
    struct PendingNode {
        var keys: [UInt16]
        var values: [Value]
        var children: Int
    }

    /// Builds the block [low, low + 2^remainingBits) whose inner boundaries are `range`.
    mutating func subtree(_ b: Boundaries, low: UInt128, remainingBits: Int, range: Range<Int>,
                          countryAtLow: UInt16) -> Value {
        if range.isEmpty { return .leaf(countryAtLow) }
        if nodesBuilt >= maxNodes {
            overNodeLimit = true
            return .leaf(countryAtLow)
        }
        nodesBuilt += 1
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
                set(UInt16(chunk), child)
                if chunk < 0xFFFF { set(UInt16(chunk + 1), .leaf(b.countries[m - 1])) }
            }
            current = b.countries[m - 1]
            k = m
        }
        let children = values.reduce(0) { if case .node = $1 { $0 + 1 } else { $0 } }
        pending.append(PendingNode(keys: keys, values: values, children: children))
        return .node(pending.count - 1)
    }

    /// How one pending node is written.
    struct Shape {
        var kind: TrieFormat.NodeKind
        var indexShift: Int
        var size: Int
    }

    /// Lays the pending nodes out breadth first from `roots`, appends them to
    /// `nodes`, and returns the root slots. A node whose children spread further
    /// than a 16-bit value reaches becomes mixed32, and the layout is redone.
    mutating func layOut(_ roots: [Value]) -> [UInt32] {
        var order: [Int] = []
        order.reserveCapacity(pending.count)
        for case .node(let n) in roots { order.append(n) }
        let rootNodes = order.count
        var next = 0
        while next < order.count {
            for case .node(let child) in pending[order[next]].values { order.append(child) }
            next += 1
        }
        var wide = Set<Int>()
        while true {
            var shapes = [Shape](repeating: Shape(kind: .leaves8, indexShift: NodeSearch.noIndexShift, size: 0), count: pending.count)
            var offsets = [Int](repeating: 0, count: pending.count)
            var at = nodes.count
            for (position, n) in order.enumerated() {
                let shape = self.shape(pending[n], wide: wide.contains(n))
                // Children (everything after the roots) start on 8 bytes: a parent's
                // 16-bit value counts 8-byte steps.
                at = align(at, position < rootNodes ? 4 : TrieFormat.childAlignment)
                shapes[n] = shape
                offsets[n] = at
                at += shape.size
            }
            // Children too far from their parent's first child for a 16-bit step.
            var tooFar: [Int] = []
            for n in order where shapes[n].kind == .mixed16 {
                let kids = pending[n].values.compactMap { if case .node(let c) = $0 { offsets[c] } else { nil } }
                if (kids.last! - kids.first!) / TrieFormat.childAlignment > TrieFormat.maxMixed16ChildStep { tooFar.append(n) }
            }
            if !tooFar.isEmpty {
                wide.formUnion(tooFar)
                continue
            }
            for n in order { emit(pending[n], shape: shapes[n], at: offsets[n], offsets: offsets) }
            pending.removeAll()
            return roots.map { value in
                switch value {
                case .leaf(let c): UInt32(c)
                case .node(let n): TrieFormat.nodeFlag | UInt32(offsets[n] / 4)
                }
            }
        }
    }

    func align(_ offset: Int, _ alignment: Int) -> Int { (offset + alignment - 1) / alignment * alignment }

    /// The kind, index and byte size of a node.
    func shape(_ node: PendingNode, wide: Bool) -> Shape {
        let n = node.keys.count
        let kind: TrieFormat.NodeKind
        if node.children == 0 {
            let rare = node.values.contains { if case .leaf(let c) = $0 { return c > 0xFF } else { return false } }
            kind = rare ? .leaves16 : .leaves8
        } else {
            kind = wide ? .mixed32 : .mixed16
        }
        let shift = NodeSearch.indexShift(for: node.keys)
        let end = NodeSearch.valuesEnd(kind: kind, keysOffset: NodeSearch.keysOffset(shift: shift), count: n)
        return Shape(kind: kind, indexShift: shift, size: align(end, 4))
    }

    /// Writes one node at `offset` (the bytes before it are padding).
    mutating func emit(_ node: PendingNode, shape: Shape, at offset: Int, offsets: [Int]) {
        precondition(offset % 4 == 0 && offset / 4 < Int(TrieFormat.nodeFlag), "nodes section too large")
        nodes.append(contentsOf: repeatElement(0, count: offset - nodes.count))
        let n = node.keys.count
        let kids = node.values.compactMap { if case .node(let c) = $0 { offsets[c] } else { nil } }
        let childBase = shape.kind == .mixed16 ? kids.first! : 0
        nodes.append(shape.kind.rawValue)
        nodes.append(UInt8(shape.indexShift))
        appendLE(UInt16(n - 1))
        appendLE(UInt32(childBase / 4))
        for entry in NodeSearch.index(for: node.keys, shift: shape.indexShift) { appendLE(entry) }
        for key in node.keys { appendLE(key) }
        switch shape.kind {
        case .leaves8:
            for case .leaf(let c) in node.values { nodes.append(UInt8(c)) }
        case .leaves16:
            for case .leaf(let c) in node.values { appendLE(c) }
        case .mixed16:
            for value in node.values {
                switch value {
                case .leaf(let c): appendLE(c)
                case .node(let c): appendLE(TrieFormat.mixed16ChildFlag | UInt16((offsets[c] - childBase) / TrieFormat.childAlignment))
                }
            }
        case .mixed32:
            nodes.append(contentsOf: repeatElement(0, count: align(nodes.count, 4) - nodes.count))
            for value in node.values {
                switch value {
                case .leaf(let c): appendLE(UInt32(c))
                case .node(let c): appendLE(TrieFormat.nodeFlag | UInt32(offsets[c] / 4))
                }
            }
        }
        nodes.append(contentsOf: repeatElement(0, count: align(nodes.count, 4) - nodes.count))
        precondition(nodes.count == offset + shape.size)
    }

    mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { nodes.append(contentsOf: $0) }
    }
}
