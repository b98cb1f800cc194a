import Testing
@testable import GeoGateCore
@testable import GeoGateTrie

/// A small but complete trie: both families, large nodes with indexes,
/// mixed nodes with children, countries past index 255.
func smallTrieBytes() throws -> [UInt8] {
    var rng = Random(state: 42)
    let v4 = randomMap(family: .v4, count: 600, base: UInt128(0x0a00_0000), spanBits: 24, alignBits: 0, codes: allCodes, rng: &rng)
    let v6 = randomMap(family: .v6, count: 400, base: UInt128(0x2001_0db8) << 96, spanBits: 64, alignBits: 24, codes: allCodes, rng: &rng)
    return try TrieWriter.bytes(v4: v4, v6: v6, sources: [
        .init(name: "a.csv", sha256: Array(repeating: 1, count: 32), storedSize: 3, format: "dbip-csv")], buildTime: 5)
}

/// Reads a file that passed validation in every way a user can: lookups across
/// both families, metadata, export. None of it may crash or read out of bounds.
func exercise(_ t: TrieFile) {
    var rng = Random(state: 9)
    var sink = 0
    for _ in 0..<300 {
        sink &+= Int(t.view.countryIndex(ipv4: UInt32(truncatingIfNeeded: rng.next())))
        sink &+= Int(t.view.countryIndex(ipv6: UInt128(0x2001_0db8) << 96 | UInt128(rng.next())))
        sink &+= Int(t.view.countryIndex(ipv6: rng.u128()))
    }
    sink &+= t.rangeMap(.v4).ranges.count &+ t.rangeMap(.v6).ranges.count &+ t.metadata.sources.count
    _ = sink
}

func fixChecksum(_ bytes: inout [UInt8]) {
    guard bytes.count >= 16 else { return }
    let crc = TrieWriter.crc32Body(bytes)
    for i in 0..<4 { bytes[12 + i] = UInt8(truncatingIfNeeded: crc >> UInt32(8 * i)) }
}

@Suite struct Corruption {
    @Test func everyTruncationIsRejected() throws {
        let bytes = try smallTrieBytes()
        #expect(bytes.count > 200_000)  // includes the 256 KiB IPv4 root
        #expect(throws: Never.self) { _ = try TrieFile(bytes: bytes) }
        // Every length, including 0, validated in place (no copy per length): the
        // reader sees exactly `length` bytes.
        try bytes.withUnsafeBytes { buffer in
            var accepted = 0
            for length in 0..<bytes.count {
                if (try? TrieFile(path: "cut", base: buffer.baseAddress!, size: length, release: { _, _ in })) != nil {
                    accepted += 1
                }
            }
            #expect(accepted == 0)
            _ = try TrieFile(path: "whole", base: buffer.baseAddress!, size: bytes.count, release: { _, _ in })
        }
    }

    @Test func truncationWithConsistentHeaderIsRejected() throws {
        let bytes = try smallTrieBytes()
        // Cut and make the header agree, so only the section checks can notice.
        for length in stride(from: 64, to: bytes.count, by: 997) {
            var cut = Array(bytes[0..<length])
            withUnsafeBytes(of: UInt64(length).littleEndian) { for i in 0..<8 { cut[16 + i] = $0[i] } }
            fixChecksum(&cut)
            #expect(throws: TrieError.self) { _ = try TrieFile(bytes: cut) }
        }
    }

    @Test func randomByteFlipsAreCaughtByTheChecksum() throws {
        let bytes = try smallTrieBytes()
        var rng = Random(state: 11)
        for _ in 0..<1_000 {
            var copy = bytes
            let at = Int(rng.below(UInt64(copy.count)))
            copy[at] ^= UInt8(1 + rng.below(255))
            #expect(throws: TrieError.self) { _ = try TrieFile(bytes: copy) }
        }
    }

    /// With the checksum recomputed, flips reach the structural checks: each file
    /// must be rejected, or read safely everywhere. Flips aim at the structure
    /// (header, section table, nodes, IPv6 root) as well as anywhere.
    @Test func byteFlipsWithFixedChecksumNeverCrash() throws {
        let bytes = try smallTrieBytes()
        let clean = try TrieFile(bytes: bytes)
        let nodes = clean.sections[.nodes]!, root6 = clean.sections[.ipv6Root]!
        var rng = Random(state: 12)
        var rejected = 0, accepted = 0
        for i in 0..<2_000 {
            var copy = bytes
            let at: Int
            switch i % 4 {
            case 0: at = Int(rng.below(UInt64(200)))                                       // header, table
            case 1: at = nodes.offset + Int(rng.below(UInt64(nodes.length)))               // nodes
            case 2: at = root6.offset + Int(rng.below(UInt64(root6.length)))              // IPv6 root
            default: at = Int(rng.below(UInt64(copy.count)))
            }
            copy[at] ^= UInt8(1 + rng.below(255))
            fixChecksum(&copy)
            if let t = try? TrieFile(bytes: copy) {
                accepted += 1
                exercise(t)
            } else {
                rejected += 1
            }
        }
        // Most structural flips must be caught (values that stay in range, e.g. a
        // country index changed to another valid one, are legitimately accepted).
        #expect(rejected > 300)
        #expect(accepted + rejected == 2_000)
    }

    /// A node's index shift and entries are exactly what its keys imply: a node of
    /// 300 keys (one per /24 of 10.1.0.0/16) claiming no index, a finer or coarser
    /// one, or an index entry off by one, is refused before any lookup.
    @Test func indexShiftAndEntriesMustMatchTheKeys() throws {
        let codes = [CountryCode("DE")!, CountryCode("FR")!]
        var ranges: [AddressRange] = []
        for i in 0..<300 {
            let start = UInt128(0x0a01_0000 + i * 256)
            ranges.append(AddressRange(start: start, end: start + 255, country: codes[i % 2]))
        }
        let bytes = try TrieWriter.bytes(v4: RangeMap(family: .v4, normalized: ranges), v6: RangeMap(family: .v6),
                                         sources: [], buildTime: 0)
        let clean = try TrieFile(bytes: bytes)
        let slot = clean.view.root4[0x0a01]
        #expect(slot & TrieFormat.nodeFlag != 0)
        let node = clean.sections[.nodes]!.offset + Int(slot & ~TrieFormat.nodeFlag) * 4
        let shift = Int(bytes[node + 1])
        #expect(shift < NodeSearch.noIndexShift)
        for wrong in [NodeSearch.noIndexShift, shift - 1, shift + 1, 0, 17] {
            var copy = bytes
            copy[node + 1] = UInt8(wrong)
            fixChecksum(&copy)
            #expect(throws: TrieError.self, "shift \(wrong) for \(shift)") { _ = try TrieFile(bytes: copy) }
        }
        var copy = bytes
        copy[node + TrieFormat.nodeHeaderSize + 2] &+= 1  // entry 1, low byte
        fixChecksum(&copy)
        do {
            _ = try TrieFile(bytes: copy)
            Issue.record("a wrong index entry was accepted")
        } catch {
            #expect(error.reason.contains("index entry 1"), "\(error.reason)")
        }
    }

    @Test func rejectsWrongMagicAndVersion() throws {
        var bytes = try smallTrieBytes()
        bytes[0] = UInt8(ascii: "X")
        #expect(throws: TrieError.self) { _ = try TrieFile(bytes: bytes) }
        // An older file (version 2 searched through separators) and a newer one: refused, with the fix.
        for version: UInt8 in [2, 4] {
            bytes = try smallTrieBytes()
            bytes[8] = version
            fixChecksum(&bytes)
            do {
                _ = try TrieFile(bytes: bytes)
                Issue.record("version \(version) accepted")
            } catch {
                #expect(error.reason.contains("version \(version)") && error.reason.contains("compile the file again"))
            }
        }
    }

    /// A source name with a control character is refused by the writer, and a
    /// file that holds one (a valid checksum over it) is refused when opened: such
    /// a name would reach logs and the daemon's one-line INFO answer.
    @Test func sourceNamesWithControlCharactersAreRefused() throws {
        let v4 = RangeMap(family: .v4, normalized: [AddressRange(start: 0x0100_0000, end: 0x0100_00ff, country: CountryCode("AU")!)])
        #expect(throws: TrieWriteError.self) {
            _ = try TrieWriter.bytes(v4: v4, v6: RangeMap(family: .v6), sources: [
                .init(name: "a\nALLOW IT.csv", sha256: Array(repeating: 1, count: 32), storedSize: 3, format: "dbip-csv")], buildTime: 5)
        }
        var bytes = try smallTrieBytes()
        let name = Array("a.csv".utf8)
        let at = try #require((0...(bytes.count - name.count)).last { bytes[$0..<$0 + name.count].elementsEqual(name) })
        bytes[at + 1] = 0x0A
        fixChecksum(&bytes)
        do {
            _ = try TrieFile(bytes: bytes)
            Issue.record("a name with a newline was accepted")
        } catch {
            #expect(error.reason.contains("metadata source 1 has a name with control characters"), "\(error.reason)")
        }
    }
}
