import CZlib
import GeoGateCore
#if canImport(Glibc)
import Glibc
#endif

/// What a trie file records about its inputs (the `info` command prints it).
public struct TrieMetadata: Sendable, Equatable {
    /// A source name the writer accepts and the validator lets through: valid
    /// UTF-8 without control characters (it is printed in logs and in INFO).
    public static func isPrintableName(_ bytes: some Collection<UInt8>) -> Bool {
        String(validating: bytes, as: UTF8.self) != nil && SafeText.isClean(String(decoding: bytes, as: UTF8.self))
    }

    public struct Source: Sendable, Equatable {
        public var name: String
        public var sha256: [UInt8]
        public var storedSize: UInt64
        public var format: String

        public init(name: String, sha256: [UInt8], storedSize: UInt64, format: String) {
            self.name = name
            self.sha256 = sha256
            self.storedSize = storedSize
            self.format = format
        }
    }

    /// Seconds since the Unix epoch.
    public var buildTime: Int64
    public var v4RangeCount: UInt64
    public var v6RangeCount: UInt64
    public var v4AddressCount: UInt64
    public var v6AddressCount: UInt128
    public var sources: [Source]

    public init(buildTime: Int64, v4RangeCount: UInt64 = 0, v6RangeCount: UInt64 = 0,
                v4AddressCount: UInt64 = 0, v6AddressCount: UInt128 = 0, sources: [Source] = []) {
        self.buildTime = buildTime
        self.v4RangeCount = v4RangeCount
        self.v6RangeCount = v6RangeCount
        self.v4AddressCount = v4AddressCount
        self.v6AddressCount = v6AddressCount
        self.sources = sources
    }
}

public struct TrieWriteError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// Builds the bytes of a trie file from two range maps. The same maps and metadata
/// always give the same bytes.
public enum TrieWriter {
    /// Trie nodes a compile may build (the embedded dataset needs about 20,000).
    public static let defaultMaximumNodes = 500_000

    public static func bytes(v4: RangeMap, v6: RangeMap, sources: [TrieMetadata.Source],
                             buildTime: Int64, maxNodes: Int = TrieWriter.defaultMaximumNodes) throws(TrieWriteError) -> [UInt8] {
        precondition(v4.family == .v4 && v6.family == .v6)
        for source in sources where !TrieMetadata.isPrintableName(source.name.utf8) {
            throw TrieWriteError(description: "source name \(SafeText.field(source.name)) holds control characters: refused (it would reach logs and protocol answers)")
        }
        // Countries numbered by range count, most first (ties by code): the common ones
        // get one-byte indexes. Deterministic for the same input.
        var rangeCount: [CountryCode: Int] = [:]
        for r in v4.ranges { rangeCount[r.country, default: 0] += 1 }
        for r in v6.ranges { rangeCount[r.country, default: 0] += 1 }
        let used = rangeCount.keys.sorted { (rangeCount[$0]!, $1.rawValue) > (rangeCount[$1]!, $0.rawValue) }
        guard used.count <= TrieFormat.maxCountries else {
            throw TrieWriteError(description: "\(used.count) distinct country codes; the format holds at most \(TrieFormat.maxCountries)")
        }
        var builder = TrieBuilder(countries: used)
        builder.maxNodes = maxNodes
        let root4 = builder.buildIPv4(v4)
        let root6 = builder.buildIPv6(v6)
        guard !builder.overNodeLimit else {
            throw TrieWriteError(description: "the data needs more than \(maxNodes) trie nodes (scattered networks, such as "
                + "many IPv6 host routes, need up to seven each): refused to stay within memory (--max-nodes, refresh.max-nodes)")
        }
        builder.nodes.append(contentsOf: repeatElement(0, count: NodeSearch.sectionSlack))
        guard builder.nodes.count / 4 < Int(TrieFormat.nodeFlag) else {
            throw TrieWriteError(description: "the nodes section exceeds the format's 8 GiB limit")
        }
        let metadata = TrieMetadata(buildTime: buildTime,
                                    v4RangeCount: UInt64(v4.ranges.count), v6RangeCount: UInt64(v6.ranges.count),
                                    v4AddressCount: UInt64(v4.addressCount), v6AddressCount: v6.addressCount,
                                    sources: sources)
        var countries = ByteWriter()
        for code in used {
            countries.append(UInt8(code.rawValue >> 8))
            countries.append(UInt8(code.rawValue & 0xFF))
        }
        var root4Bytes = ByteWriter()
        for slot in root4 { root4Bytes.appendLE(slot) }
        var root6Bytes = ByteWriter()
        for slot in root6 { root6Bytes.appendLE(slot) }
        let sections: [(TrieFormat.Section, [UInt8])] = [
            (.countries, countries.bytes),
            (.metadata, encode(metadata)),
            (.ipv4Root, root4Bytes.bytes),
            (.ipv6Root, root6Bytes.bytes),
            (.nodes, builder.nodes),
        ]
        return assemble(sections)
    }

    static func assemble(_ sections: [(TrieFormat.Section, [UInt8])]) -> [UInt8] {
        let tableEnd = TrieFormat.headerSize + sections.count * TrieFormat.sectionEntrySize
        var offsets: [Int] = []
        var cursor = align(tableEnd)
        for (_, bytes) in sections {
            offsets.append(cursor)
            cursor = align(cursor + bytes.count)
        }
        var out = ByteWriter()
        out.bytes.reserveCapacity(cursor)
        out.bytes.append(contentsOf: TrieFormat.magic)
        out.appendLE(TrieFormat.version)
        out.appendLE(UInt32(0))            // checksum, filled in below
        out.appendLE(UInt64(cursor))       // file size
        out.appendLE(UInt32(sections.count))
        out.pad(to: TrieFormat.headerSize)
        for (i, (kind, bytes)) in sections.enumerated() {
            out.appendLE(kind.rawValue)
            out.appendLE(UInt32(0))
            out.appendLE(UInt64(offsets[i]))
            out.appendLE(UInt64(bytes.count))
        }
        for (i, (_, bytes)) in sections.enumerated() {
            out.pad(to: offsets[i])
            out.bytes.append(contentsOf: bytes)
        }
        out.pad(to: cursor)
        let checksum = crc32Body(out.bytes)
        withUnsafeBytes(of: checksum.littleEndian) { raw in
            for i in 0..<4 { out.bytes[12 + i] = raw[i] }
        }
        return out.bytes
    }

    static func align(_ n: Int) -> Int { (n + TrieFormat.sectionAlignment - 1) / TrieFormat.sectionAlignment * TrieFormat.sectionAlignment }

    static func encode(_ m: TrieMetadata) -> [UInt8] {
        var pool = ByteWriter()
        var records = ByteWriter()
        for source in m.sources {
            let name = Array(source.name.utf8)
            precondition(source.sha256.count == 32)
            records.bytes.append(contentsOf: source.sha256)
            records.appendLE(source.storedSize)
            records.appendLE(UInt32(pool.bytes.count))
            records.appendLE(UInt32(name.count))
            records.appendLE(UInt32(TrieFormat.formatIDs.firstIndex(of: source.format) ?? 0))
            records.appendLE(UInt32(0))
            pool.bytes.append(contentsOf: name)
        }
        var out = ByteWriter()
        out.appendLE(m.buildTime)
        out.appendLE(m.v4RangeCount)
        out.appendLE(m.v6RangeCount)
        out.appendLE(m.v4AddressCount)
        out.appendLE(UInt64(truncatingIfNeeded: m.v6AddressCount))
        out.appendLE(UInt64(truncatingIfNeeded: m.v6AddressCount >> 64))
        out.appendLE(UInt32(m.sources.count))
        out.appendLE(UInt32(pool.bytes.count))
        out.bytes.append(contentsOf: records.bytes)
        out.bytes.append(contentsOf: pool.bytes)
        return out.bytes
    }

    /// CRC-32 (zlib's, the gzip/PNG polynomial) of bytes 16..<end: everything but the
    /// magic, the version and the checksum field itself.
    public static func crc32Body(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc = crc32(0, nil, 0)
        var offset = 16
        while offset < bytes.count {
            let n = min(bytes.count - offset, 1 << 30)
            crc = crc32(crc, bytes.baseAddress!.advanced(by: offset).assumingMemoryBound(to: UInt8.self), UInt32(n))
            offset += n
        }
        return UInt32(truncatingIfNeeded: crc)
    }

    public static func crc32Body(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { crc32Body($0) }
    }
}

/// A little-endian byte appender.
struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func append(_ byte: UInt8) { bytes.append(byte) }

    mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func pad(to length: Int) {
        if bytes.count < length { bytes.append(contentsOf: repeatElement(0, count: length - bytes.count)) }
    }
}
