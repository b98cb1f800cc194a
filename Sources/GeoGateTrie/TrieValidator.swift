import GeoGateCore

/// The one pass that makes a mapped file safe to read: header, checksum, section
/// bounds, the country table, and a walk over every node reachable from the roots
/// that checks each node lies inside its section, is reached exactly once (so the
/// structure is a tree and lookups cannot loop), has sorted keys starting at 0, and
/// holds only valid country indexes and child references at legal depths.
struct TrieValidator {
    struct Failure: Error { let reason: String }

    struct Result {
        var sections: [TrieFormat.Section: (offset: Int, length: Int)]
        var countries: [CountryCode]
        var view: TrieView
    }

    let base: UnsafeRawPointer
    let size: Int

    func u16(_ at: Int) -> UInt16 { UInt16(littleEndian: base.loadUnaligned(fromByteOffset: at, as: UInt16.self)) }
    func u32(_ at: Int) -> UInt32 { UInt32(littleEndian: base.loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
    func u64(_ at: Int) -> UInt64 { UInt64(littleEndian: base.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }

    func validate() throws(Failure) -> Result {
        guard size >= TrieFormat.headerSize else { throw Failure(reason: "truncated: shorter than the header") }
        for (i, byte) in TrieFormat.magic.enumerated() where base.load(fromByteOffset: i, as: UInt8.self) != byte {
            throw Failure(reason: "not a geogate trie file (bad magic)")
        }
        let version = u32(8)
        guard version == TrieFormat.version else {
            throw Failure(reason: "unsupported format version \(version) (this geogate reads version \(TrieFormat.version); compile the file again with this geogate)")
        }
        let declared = u64(16)
        guard declared == UInt64(size) else {
            throw Failure(reason: declared > UInt64(size) ? "truncated: the header says \(declared) bytes, the file has \(size)"
                                                         : "trailing bytes: the header says \(declared) bytes, the file has \(size)")
        }
        let stored = u32(12)
        let actual = TrieWriter.crc32Body(UnsafeRawBufferPointer(start: base, count: size))
        guard stored == actual else {
            throw Failure(reason: "checksum mismatch (stored \(hex(stored)), computed \(hex(actual))): the file is corrupt")
        }
        let sections = try readSections()
        let countries = try readCountries(sections[.countries]!)
        try checkMetadata(sections[.metadata]!)

        let root4 = sections[.ipv4Root]!
        guard root4.length == TrieFormat.ipv4RootSlots * 4 else { throw Failure(reason: "IPv4 root has \(root4.length) bytes, expected \(TrieFormat.ipv4RootSlots * 4)") }
        let root6 = sections[.ipv6Root]!
        guard root6.length == TrieFormat.ipv6RootSlots * 4 else { throw Failure(reason: "IPv6 root has \(root6.length) bytes, expected \(TrieFormat.ipv6RootSlots * 4)") }
        let nodes = sections[.nodes]!
        guard nodes.length % 4 == 0 else { throw Failure(reason: "nodes section length is not a multiple of 4") }
        var walker = NodeWalker(validator: self, nodesOffset: nodes.offset, nodesLength: nodes.length,
                                countryCount: countries.count)
        for top in 0..<TrieFormat.ipv4RootSlots {
            try walker.check(slot: u32(root4.offset + top * 4), remainingBits: 16, context: "IPv4 root slot \(top)")
        }
        try walker.check(slot: u32(root6.offset), remainingBits: 128, context: "IPv6 root")
        for i in 0..<TrieFormat.ipv6DirectSlots {
            try walker.check(slot: u32(root6.offset + 4 + i * 4), remainingBits: 112, context: "IPv6 root slot for 2000::/3 block \(i)")
        }

        let view = TrieView(countries: (base + sections[.countries]!.offset).assumingMemoryBound(to: UInt8.self),
                            countryCount: countries.count,
                            root4: (base + root4.offset).assumingMemoryBound(to: UInt32.self),
                            root6: (base + root6.offset).assumingMemoryBound(to: UInt32.self),
                            nodes: base + nodes.offset)
        return Result(sections: sections, countries: countries, view: view)
    }

    func hex(_ v: UInt32) -> String { "0x" + String(v, radix: 16) }

    func readSections() throws(Failure) -> [TrieFormat.Section: (offset: Int, length: Int)] {
        let count = Int(u32(24))
        guard count == TrieFormat.Section.allCases.count else { throw Failure(reason: "expected \(TrieFormat.Section.allCases.count) sections, header says \(count)") }
        let tableEnd = TrieFormat.headerSize + count * TrieFormat.sectionEntrySize
        guard tableEnd <= size else { throw Failure(reason: "truncated: the section table runs past the end") }
        var result: [TrieFormat.Section: (offset: Int, length: Int)] = [:]
        for i in 0..<count {
            let entry = TrieFormat.headerSize + i * TrieFormat.sectionEntrySize
            guard let kind = TrieFormat.Section(rawValue: u32(entry)) else { throw Failure(reason: "section \(i) has unknown kind \(u32(entry))") }
            guard result[kind] == nil else { throw Failure(reason: "section \(kind) appears twice") }
            let offset = u64(entry + 8), length = u64(entry + 16)
            guard offset % UInt64(TrieFormat.sectionAlignment) == 0, offset >= UInt64(tableEnd),
                  offset <= UInt64(size), length <= UInt64(size) - offset else {
                throw Failure(reason: "section \(kind) (offset \(offset), length \(length)) lies outside the file")
            }
            result[kind] = (Int(offset), Int(length))
        }
        return result
    }

    func readCountries(_ section: (offset: Int, length: Int)) throws(Failure) -> [CountryCode] {
        guard section.length % 2 == 0, section.length / 2 <= TrieFormat.maxCountries else {
            throw Failure(reason: "country table has a bad length (\(section.length))")
        }
        var codes: [CountryCode] = []
        var seen: Set<CountryCode> = []
        for i in 0..<(section.length / 2) {
            let a = base.load(fromByteOffset: section.offset + 2 * i, as: UInt8.self)
            let b = base.load(fromByteOffset: section.offset + 2 * i + 1, as: UInt8.self)
            guard let code = CountryCode.validated(a, b), code.rawValue == UInt16(a) << 8 | UInt16(b),
                  !seen.contains(code) else {
                throw Failure(reason: "country table entry \(i + 1) is not a known, distinct code")
            }
            seen.insert(code)
            codes.append(code)
        }
        return codes
    }

    func checkMetadata(_ section: (offset: Int, length: Int)) throws(Failure) {
        guard section.length >= TrieFormat.metadataFixedSize else { throw Failure(reason: "metadata section is truncated") }
        let count = Int(u32(section.offset + 48)), poolLength = Int(u32(section.offset + 52))
        let needed = TrieFormat.metadataFixedSize + count * TrieFormat.sourceRecordSize + poolLength
        guard count <= 1 << 20, needed <= section.length else { throw Failure(reason: "metadata section is truncated (\(count) sources)") }
        for i in 0..<count {
            let r = section.offset + TrieFormat.metadataFixedSize + i * TrieFormat.sourceRecordSize
            let nameOffset = Int(u32(r + 40)), nameLength = Int(u32(r + 44))
            guard nameOffset <= poolLength, nameLength <= poolLength - nameOffset else {
                throw Failure(reason: "metadata source \(i + 1) has a name outside the string pool")
            }
            // A name reaches logs and the daemon's one-line INFO answer: printable UTF-8 only.
            let pool = section.offset + TrieFormat.metadataFixedSize + count * TrieFormat.sourceRecordSize
            let name = UnsafeRawBufferPointer(start: base + pool + nameOffset, count: nameLength)
            guard TrieMetadata.isPrintableName(name) else {
                throw Failure(reason: "metadata source \(i + 1) has a name with control characters or invalid UTF-8")
            }
        }
    }

    /// The recursive node check, with a bitmap of visited nodes (by 4-byte unit).
    struct NodeWalker {
        let validator: TrieValidator
        let nodesOffset: Int
        let nodesLength: Int
        let countryCount: Int
        var visited: [UInt64]

        init(validator: TrieValidator, nodesOffset: Int, nodesLength: Int, countryCount: Int) {
            self.validator = validator
            self.nodesOffset = nodesOffset
            self.nodesLength = nodesLength
            self.countryCount = countryCount
            self.visited = [UInt64](repeating: 0, count: nodesLength / 4 / 64 + 1)
        }

        mutating func check(slot: UInt32, remainingBits: Int, context: @autoclosure () -> String) throws(Failure) {
            if slot & TrieFormat.nodeFlag == 0 {
                guard slot <= UInt32(countryCount) else { throw Failure(reason: "\(context()): bad leaf value \(slot) (\(countryCount) countries)") }
                return
            }
            guard remainingBits >= TrieFormat.strideBits else {
                throw Failure(reason: "\(context()): a node below the last address bit")
            }
            let unit = Int(slot & ~TrieFormat.nodeFlag)
            let start = unit * 4
            guard start + TrieFormat.nodeHeaderSize <= nodesLength else { throw Failure(reason: "\(context()): node offset \(start) outside the nodes section") }
            let word = unit / 64, bit = UInt64(1) << UInt64(unit % 64)
            guard visited[word] & bit == 0 else { throw Failure(reason: "\(context()): node at \(start) is referenced twice") }
            visited[word] |= bit
            let at = nodesOffset + start
            let kindByte = validator.base.load(fromByteOffset: at, as: UInt8.self)
            guard let kind = TrieFormat.NodeKind(rawValue: kindByte) else {
                throw Failure(reason: "node at \(start): unknown kind \(kindByte)")
            }
            // At the last 16 bits only leaf values make sense, and lookups read them as u8.
            guard remainingBits > TrieFormat.strideBits || !kind.hasChildren else {
                throw Failure(reason: "node at \(start): kind \(kind) at the last 16 address bits")
            }
            let count = Int(validator.u16(at + 2)) + 1
            let shift = Int(validator.base.load(fromByteOffset: at + 1, as: UInt8.self))
            guard (1...NodeSearch.noIndexShift).contains(shift) else {
                throw Failure(reason: "node at \(start): index shift \(shift) outside 1...16")
            }
            let keysStart = NodeSearch.keysOffset(shift: shift)
            let valuesStart = keysStart + count * 2
            let end = NodeSearch.valuesEnd(kind: kind, keysOffset: keysStart, count: count)
            // A search reads a window of two 32-key blocks from any key: those reads
            // must stay in the section too (its slack covers the last node's).
            let windowEnd = keysStart + 2 * (count - 1) + 2 * NodeSearch.blockBytes
            guard start + max(end, windowEnd) <= nodesLength else { throw Failure(reason: "node at \(start): runs past the nodes section") }
            // Keys: start at 0, strictly increasing.
            var keys: [UInt16] = []
            keys.reserveCapacity(count)
            for i in 0..<count {
                let key = validator.u16(at + keysStart + 2 * i)
                guard i == 0 ? key == 0 : key > keys[i - 1] else { throw Failure(reason: "node at \(start): keys not sorted from 0 (entry \(i))") }
                keys.append(key)
            }
            // The index: exactly the one the writer derives from the keys, so every
            // window reaches its answer.
            guard shift == NodeSearch.indexShift(for: keys) else {
                throw Failure(reason: "node at \(start): index shift \(shift), expected \(NodeSearch.indexShift(for: keys)) for its \(count) keys")
            }
            for (b, entry) in NodeSearch.index(for: keys, shift: shift).enumerated()
            where validator.u16(at + TrieFormat.nodeHeaderSize + 2 * b) != entry {
                throw Failure(reason: "node at \(start): index entry \(b) does not match the keys")
            }
            let childBits = remainingBits - TrieFormat.strideBits
            switch kind {
            case .leaves8, .leaves16:
                for i in 0..<count {
                    let v = kind == .leaves8 ? Int(validator.base.load(fromByteOffset: at + valuesStart + i, as: UInt8.self))
                                             : Int(validator.u16(at + valuesStart + 2 * i))
                    guard v <= countryCount else { throw Failure(reason: "node at \(start): bad country index \(v)") }
                }
            case .mixed16:
                for i in 0..<count {
                    let v = validator.u16(at + valuesStart + 2 * i)
                    if v & TrieFormat.mixed16ChildFlag == 0 {
                        guard Int(v) <= countryCount else { throw Failure(reason: "node at \(start): bad country index \(v)") }
                        continue
                    }
                    // The slot exactly as a lookup computes it; `check` then proves it a
                    // node of its own inside the section.
                    let slot = TrieView.childSlot(validator.base + at, step: v)
                    try check(slot: slot, remainingBits: childBits, context: "node at \(start), entry \(i)")
                }
            case .mixed32:
                let aligned = (valuesStart + 3) & ~3
                for i in 0..<count {
                    try check(slot: validator.u32(at + aligned + 4 * i), remainingBits: childBits, context: "node at \(start), entry \(i)")
                }
            }
        }
    }
}
