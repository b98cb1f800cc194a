import GeoGateCore
import GeoGateTrie

/// The trie validator on any bytes (a trie may come from another host), then,
/// for a file it accepts, everything a user can do with it: lookups of addresses
/// taken from the input and at every range's edges, metadata, and a full export;
/// each lookup must agree with the export.
///
/// The checksum is recomputed first: a mutation that only breaks it would stop at
/// the first check, and the fuzzer would never reach the node checks behind it.
let trieTarget = FuzzTarget("trie", "trie file: validator, lookups, metadata, export") { input throws(FuzzFailure) in
    var bytes = Array(input)
    if bytes.count >= 16 {
        let crc = TrieWriter.crc32Body(bytes)
        for i in 0..<4 { bytes[12 + i] = UInt8(truncatingIfNeeded: crc >> UInt32(8 * i)) }
    }
    let trie: TrieFile
    do throws(TrieError) {
        trie = try TrieFile(bytes: bytes, name: "fuzz.trie")
    } catch {
        try expectShownSafely(error.description, "the validator's error")
        return
    }
    let metadata = trie.metadata
    for source in metadata.sources {
        try expectShownSafely(source.name, limit: 1024, "a source name in the metadata")
        try expectShownSafely(source.format, limit: 1024, "a source format in the metadata")
    }
    for family in IPFamily.allCases {
        let map = trie.rangeMap(family)
        try expectNormalForm(map, "the export")
        var probes = addresses(from: input).filter { $0.family == family }.map(\.value)
        for r in map.ranges.prefix(256) {
            probes += [r.start, r.end]
            if r.start > 0 { probes.append(r.start - 1) }
            if r.end < family.maxAddress { probes.append(r.end + 1) }
        }
        for value in probes {
            let address = IPAddress(family: family, value: value)
            // The trie answers an IPv4-mapped IPv6 address as its IPv4 address.
            if family == .v6, address.unmappedIPv4 != nil { continue }
            let looked = trie.country(of: address)
            let exported = map.country(of: value)
            guard looked == exported else {
                throw FuzzFailure("lookup of \(address) says \(looked.map { "\($0)" } ?? "none"), the export \(exported.map { "\($0)" } ?? "none")")
            }
        }
    }
}
