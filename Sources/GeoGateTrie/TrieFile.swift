import GeoGateCore
#if canImport(Glibc)
import Glibc
#endif

/// Why a trie file was rejected.
public struct TrieError: Error, CustomStringConvertible, Sendable, Equatable {
    public let path: String
    public let reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { "\(path): \(reason)" }
}

/// An open trie file: the bytes mapped read-only (no parsing at open), checked by one
/// validation pass so that no lookup can read out of bounds or loop, whatever the
/// file holds. Lookups go through `view`.
public final class TrieFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    public let view: TrieView
    public let countries: [CountryCode]
    let base: UnsafeRawPointer
    let release: @Sendable (UnsafeRawPointer, Int) -> Void
    let sections: [TrieFormat.Section: (offset: Int, length: Int)]

    /// Maps and validates the file at `path`.
    public convenience init(path: String) throws(TrieError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw TrieError(path: path, reason: "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw TrieError(path: path, reason: "cannot stat: \(String(cString: strerror(errno)))") }
        let size = Int(info.st_size)
        guard size >= TrieFormat.headerSize else {
            throw TrieError(path: path, reason: "truncated: \(size) bytes is shorter than the \(TrieFormat.headerSize)-byte header")
        }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
            throw TrieError(path: path, reason: "cannot mmap: \(String(cString: strerror(errno)))")
        }
        try self.init(path: path, base: UnsafeRawPointer(mapped), size: size) { pointer, length in
            munmap(UnsafeMutableRawPointer(mutating: pointer), length)
        }
    }

    /// Validates a copy of `bytes` (tests, and files received whole).
    public convenience init(bytes: [UInt8], name: String = "<memory>") throws(TrieError) {
        let memory = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        bytes.withUnsafeBytes { memory.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        try self.init(path: name, base: UnsafeRawPointer(memory), size: bytes.count) { pointer, _ in
            UnsafeMutableRawPointer(mutating: pointer).deallocate()
        }
    }

    init(path: String, base: UnsafeRawPointer, size: Int,
         release: @escaping @Sendable (UnsafeRawPointer, Int) -> Void) throws(TrieError) {
        self.path = path
        self.base = base
        self.size = size
        self.release = release
        let validated: TrieValidator.Result
        do {
            validated = try TrieValidator(base: base, size: size).validate()
        } catch {
            release(base, size)
            throw TrieError(path: path, reason: error.reason)
        }
        self.sections = validated.sections
        self.countries = validated.countries
        self.view = validated.view
    }

    deinit { release(base, size) }

    /// The country of an address.
    public func country(of address: IPAddress) -> CountryCode? { view.country(of: address) }

    /// The metadata section, decoded (bounds were checked at open).
    public var metadata: TrieMetadata {
        let offset = sections[.metadata]!.offset
        let m = base + offset
        func u64(_ at: Int) -> UInt64 { UInt64(littleEndian: m.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
        func u32(_ at: Int) -> UInt32 { UInt32(littleEndian: m.loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
        var result = TrieMetadata(buildTime: Int64(bitPattern: u64(0)), v4RangeCount: u64(8), v6RangeCount: u64(16),
                                  v4AddressCount: u64(24), v6AddressCount: UInt128(u64(40)) << 64 | UInt128(u64(32)))
        let count = Int(u32(48))
        let poolStart = TrieFormat.metadataFixedSize + count * TrieFormat.sourceRecordSize
        for i in 0..<count {
            let r = TrieFormat.metadataFixedSize + i * TrieFormat.sourceRecordSize
            let sha = (0..<32).map { m.load(fromByteOffset: r + $0, as: UInt8.self) }
            let nameOffset = Int(u32(r + 40)), nameLength = Int(u32(r + 44))
            let format = Int(u32(r + 48))
            let nameBytes = UnsafeRawBufferPointer(start: m + poolStart + nameOffset, count: nameLength)
            result.sources.append(.init(name: String(decoding: nameBytes, as: UTF8.self), sha256: sha,
                                        storedSize: u64(r + 32),
                                        format: TrieFormat.formatIDs[format < TrieFormat.formatIDs.count ? format : 0]))
        }
        return result
    }

    /// The whole family as a range map, read back from the trie: what `export` prints.
    public func rangeMap(_ family: IPFamily) -> RangeMap {
        if family == .v4 {
            return RangeMap(family: .v4, normalized: runs(.v4, (0..<TrieFormat.ipv4RootSlots).map {
                (UInt32(littleEndian: view.root4[$0]), UInt128($0) << 16)
            }, remainingBits: 16))
        }
        // Lookups consult slot 0 only outside 2000::/3 and the direct slots inside it:
        // export exactly that.
        let outside = RangeMap(family: .v6, normalized: runs(.v6, [(UInt32(littleEndian: view.root6[0]), 0)], remainingBits: 128))
            .removing(start: TrieFormat.ipv6DirectFirst, end: TrieFormat.ipv6DirectLast)
        let inside = runs(.v6, (0..<TrieFormat.ipv6DirectSlots).map {
            (UInt32(littleEndian: view.root6[1 + $0]), TrieFormat.ipv6DirectFirst + UInt128($0) << 112)
        }, remainingBits: 112, end: TrieFormat.ipv6DirectLast)
        return outside.overlaid(with: RangeMap(family: .v6, normalized: inside))
    }

    /// The runs with a country under consecutive subtrees (slot, first address), each of
    /// 2^remainingBits addresses, up to `end` (default: the family's last address).
    func runs(_ family: IPFamily, _ subtrees: [(UInt32, UInt128)], remainingBits: Int, end: UInt128? = nil) -> [AddressRange] {
        var ranges: [AddressRange] = []
        var openStart: UInt128 = 0
        var openCountry: UInt16 = 0
        func emit(_ start: UInt128, _ country: UInt16) {
            if country == openCountry { return }
            if openCountry != 0 {
                ranges.append(AddressRange(start: openStart, end: start - 1, country: view.countryCode(index: openCountry)!))
            }
            openStart = start
            openCountry = country
        }
        func walk(_ slot: UInt32, low: UInt128, remainingBits: Int) {
            if slot & TrieFormat.nodeFlag == 0 {
                emit(low, UInt16(truncatingIfNeeded: slot))
                return
            }
            let node = view.nodes + Int(slot & ~TrieFormat.nodeFlag) * 4
            let count = Int(UInt16(littleEndian: node.load(fromByteOffset: 2, as: UInt16.self))) + 1
            let shift = UInt128(remainingBits - TrieFormat.strideBits)
            let keys = NodeSearch.keysOffset(node: node)
            for i in 0..<count {
                let key = UInt16(littleEndian: node.load(fromByteOffset: keys + 2 * i, as: UInt16.self))
                walk(view.valueSlot(node, i, values: keys + 2 * count), low: low + UInt128(key) << shift,
                     remainingBits: Int(shift))
            }
        }
        for (slot, low) in subtrees { walk(slot, low: low, remainingBits: remainingBits) }
        if openCountry != 0 {
            ranges.append(AddressRange(start: openStart, end: end ?? family.maxAddress, country: view.countryCode(index: openCountry)!))
        }
        return ranges
    }
}
