import CMaxMindDB
import Foundation
import Testing
@testable import GeoGateCore
@testable import GeoGateImport
@testable import GeoGateTrie

/// The embedded dataset compiled once for the tests that need it.
struct EmbeddedDataset: Sendable {
    let sources: [ImportedSource]
    let dataset: CountryDataset
    let trie: TrieFile
    let files: [SourceFile]

    static let shared: EmbeddedDataset = {
        let paths = [repositoryRoot + "/Data/geoip.gz", repositoryRoot + "/Data/geoip6.gz"]
        let sources = try! SourceLoader.load(paths: paths)
        let dataset = CountryDataset(sources: sources)
        let bytes = try! TrieWriter.bytes(v4: dataset.v4, v6: dataset.v6, sources: [], buildTime: 0)
        return EmbeddedDataset(sources: sources, dataset: dataset, trie: try! TrieFile(bytes: bytes),
                               files: paths.map { try! SourceFile.read(path: $0) })
    }()
}

@Suite(.serialized) struct RealData {
    /// Reads the Tor lines with a deliberately naive parser (Foundation strings), so
    /// the importer's fast path is checked against something independent.
    func naiveLines(_ file: SourceFile) -> [(IPAddress, IPAddress, String)] {
        String(decoding: file.content, as: UTF8.self).split(separator: "\n").compactMap { line in
            if line.hasPrefix("#") { return nil }
            let f = line.split(separator: ",")
            func address(_ s: Substring) -> IPAddress {
                if let n = UInt32(s) { return IPAddress(v4: n) }
                return IPAddress(String(s))!
            }
            return (address(f[0]), address(f[1]), String(f[2]))
        }
    }

    @Test func everyRangeOfTheEmbeddedDatasetAnswersRight() {
        let data = EmbeddedDataset.shared
        let view = data.trie.view
        var checked = 0
        for file in data.files {
            let lines = naiveLines(file)
            #expect(lines.count > 250_000)
            for (start, end, code) in lines {
                let expected = code == "??" ? nil : CountryCode(code)
                #expect(view.country(of: start) == expected)
                #expect(view.country(of: end) == expected)
                // Neighbours answer as the merged data says (another line, or nothing).
                let map = data.dataset.map(for: start.family)
                if start.value > 0 {
                    let before = IPAddress(family: start.family, value: start.value - 1)
                    if start.family == .v4 || before.unmappedIPv4 == nil { #expect(view.country(of: before) == map.country(of: before.value)) }
                }
                if end.value < start.family.maxAddress {
                    let after = IPAddress(family: end.family, value: end.value + 1)
                    if end.family == .v4 || after.unmappedIPv4 == nil { #expect(view.country(of: after) == map.country(of: after.value)) }
                }
                checked += 1
            }
        }
        #expect(checked == 385_372 + 2_246 + 276_389 + 257 || checked > 660_000)
    }

    @Test func exportingEveryCountryReproducesTheMergedInput() {
        let data = EmbeddedDataset.shared
        for family in IPFamily.allCases {
            let exported = data.trie.rangeMap(family)
            #expect(exported == data.dataset.map(for: family))
            // And per country, the CIDR cover of the exported ranges rebuilds the same map.
            var builder = RangeMapBuilder(family: family)
            for r in exported.ranges {
                CIDR.cover(start: r.start, end: r.end, family: family) { builder.add(start: $0.first, end: $0.last, country: r.country, line: 0) }
            }
            #expect(try! builder.build() == exported)
        }
    }

    @Test func knownAddresses() {
        let t = EmbeddedDataset.shared.trie
        #expect(t.country(of: IPAddress("81.2.69.160")!)?.description == "GB")
        #expect(t.country(of: IPAddress("::ffff:81.2.69.160")!)?.description == "GB")
        #expect(t.country(of: IPAddress("10.1.2.3")!) == nil)
    }
}

/// libmaxminddb answering the way geogate-bench measures it.
final class LibMaxMindDB {
    var db = MMDB_s()

    init(path: String) {
        let status = MMDB_open(path, UInt32(MMDB_MODE_MMAP), &db)
        precondition(status == MMDB_SUCCESS, "\(path): \(String(cString: MMDB_strerror(status)))")
    }

    deinit { MMDB_close(&db) }

    func country(_ a: IPAddress) -> CountryCode? {
        var storage = a.socketAddress
        var error: Int32 = 0
        var result = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { MMDB_lookup_sockaddr(&db, $0, &error) }
        }
        precondition(error == MMDB_SUCCESS)
        guard result.found_entry else { return nil }
        var data = MMDB_entry_data_s()
        let status: Int32 = "country".withCString { c in
            "iso_code".withCString { i in
                var path: [UnsafePointer<CChar>?] = [c, i, nil]
                return path.withUnsafeMutableBufferPointer { MMDB_aget_value(&result.entry, &data, $0.baseAddress) }
            }
        }
        guard status == MMDB_SUCCESS, data.has_data else { return nil }
        return CountryCode.validated(UInt8(bitPattern: data.utf8_string[0]), UInt8(bitPattern: data.utf8_string[1]))
    }
}

/// geogate against libmaxminddb on an MMDB that MaxMind's own writer built from the
/// same data (Scripts/make-mmdb.pl): both the trie compiled from the text files and
/// the trie compiled from that MMDB must answer exactly as libmaxminddb does.
///
/// Documented differences are excluded: 2001::/32 (Teredo) and 2002::/16 (6to4),
/// which a GeoLite2-style MMDB aliases to the IPv4 tree (geogate answers them from
/// the data as given), and ::/96, which is the MMDB's IPv4 tree itself.
@Suite(.serialized) struct DifferentialAgainstLibMaxMindDB {
    /// The batch API on the real trie: a million addresses of both families (inside
    /// ranges, uniform, IPv4-mapped), one batch, each answer equal to a single lookup.
    @Test func aMillionBatchedLookupsEqualSingleLookups() {
        let view = EmbeddedDataset.shared.trie.view
        let v4 = EmbeddedDataset.shared.dataset.v4.ranges, v6 = EmbeddedDataset.shared.dataset.v6.ranges
        var rng = SystemRandomNumberGenerator()
        var addresses: [IPAddress] = []
        addresses.reserveCapacity(1_000_000)
        for i in 0..<1_000_000 {
            let r = i % 2 == 0 ? v4[Int(rng.next() % UInt64(v4.count))] : v6[Int(rng.next() % UInt64(v6.count))]
            let random = UInt128(rng.next()) << 64 | UInt128(rng.next())
            switch i % 8 {
            case 0, 2: addresses.append(IPAddress(family: .v4, value: r.start + random % (r.end - r.start + 1)))
            case 1, 3: addresses.append(IPAddress(family: .v6, value: r.end - r.start == .max ? random : r.start + random % (r.end - r.start + 1)))
            case 4: addresses.append(IPAddress(v4: UInt32(truncatingIfNeeded: rng.next())))
            case 5: addresses.append(IPAddress(family: .v6, value: random >> 3 | UInt128(1) << 125))
            case 6: addresses.append(IPAddress(family: .v6, value: UInt128(0xffff) << 32 | UInt128(UInt32(truncatingIfNeeded: rng.next()))))
            default: addresses.append(IPAddress(family: .v6, value: random))
            }
        }
        var answers = [UInt16](repeating: 0, count: addresses.count)
        addresses.withUnsafeBufferPointer { list in answers.withUnsafeMutableBufferPointer { view.countryIndexes(of: list, into: $0) } }
        var wrong = 0, withCountry = 0
        for i in addresses.indices {
            if answers[i] != 0 { withCountry += 1 }
            if answers[i] != view.countryIndex(of: addresses[i]) {
                wrong += 1
                if wrong <= 5 { Issue.record("\(addresses[i]): batch \(answers[i]), single \(view.countryIndex(of: addresses[i]))") }
            }
        }
        #expect(wrong == 0)
        #expect(withCountry > 400_000, "too few addresses with a country to mean much")
    }

    @Test func millionsOfAddressesAnswerAsLibMaxMindDB() throws {
        let data = EmbeddedDataset.shared
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let v4 = dir.write("geoip", bytes: data.files[0].content)
        let v6 = dir.write("geoip6", bytes: data.files[1].content)
        let mmdbPath = dir.path + "/reference.mmdb"
        let status = try run("/usr/bin/perl", [repositoryRoot + "/Scripts/make-mmdb.pl", mmdbPath, v4, v6])
        try #require(status == 0, "MaxMind's writer (libmaxmind-db-writer-perl) must be installed: Scripts/install-deps.sh")
        let reference = LibMaxMindDB(path: mmdbPath)

        let fromMMDB = try SourceLoader.load(paths: [mmdbPath])
        #expect(fromMMDB.map(\.format) == [.mmdb])
        let mmdbDataset = CountryDataset(sources: fromMMDB)
        let mmdbTrie = try TrieFile(bytes: try TrieWriter.bytes(v4: mmdbDataset.v4, v6: mmdbDataset.v6, sources: [], buildTime: 0))
        let textView = data.trie.view, mmdbView = mmdbTrie.view

        var rng = SystemRandomNumberGenerator()
        for family in IPFamily.allCases {
            let ranges = data.dataset.map(for: family).ranges
            var compared = 0, excluded = 0, withCountry = 0
            for i in 0..<1_000_000 {
                let value: UInt128
                switch i % 4 {
                case 0, 1:  // inside a range: uniform over ranges, then inside the range
                    let r = ranges[Int(rng.next() % UInt64(ranges.count))]
                    let span = r.end - r.start
                    let random = UInt128(rng.next()) << 64 | UInt128(rng.next())
                    value = r.start + (span == .max ? random : random % (span + 1))
                case 2:     // uniform over the family (for IPv6: over 2000::/3, where data is)
                    value = family == .v4 ? UInt128(UInt32(truncatingIfNeeded: rng.next()))
                                          : (UInt128(rng.next()) << 64 | UInt128(rng.next())) >> 3 | UInt128(1) << 125
                default:    // uniform over the whole family
                    value = family == .v4 ? UInt128(UInt32(truncatingIfNeeded: rng.next()))
                                          : UInt128(rng.next()) << 64 | UInt128(rng.next())
                }
                let address = IPAddress(family: family, value: value)
                if address.isInIPv4TunnelPrefix { excluded += 1; continue }
                if family == .v6 && value >> 32 == 0 { excluded += 1; continue }  // ::/96 is MMDB's IPv4 tree
                let expected = reference.country(address)
                let text = textView.countryCode(index: textView.countryIndex(of: address))
                let mmdb = mmdbView.countryCode(index: mmdbView.countryIndex(of: address))
                if text != expected || mmdb != expected {
                    Issue.record("\(address): libmaxminddb \(expected?.description ?? "--"), from text \(text?.description ?? "--"), from MMDB \(mmdb?.description ?? "--")")
                    if compared > 100 { return }
                }
                compared += 1
                if expected != nil { withCountry += 1 }
            }
            #expect(compared >= 999_000, "\(family): \(compared) compared, \(excluded) excluded")
            #expect(withCountry > 400_000, "\(family): too few addresses with a country to mean much")
        }
        // IPv4-mapped IPv6 answers as IPv4 on both sides.
        for _ in 0..<10_000 {
            let a = UInt32(truncatingIfNeeded: rng.next())
            let mapped = IPAddress(family: .v6, value: UInt128(0xffff) << 32 | UInt128(a))
            #expect(textView.country(of: mapped) == reference.country(mapped))
        }
        // The two compiles agree everywhere but in the aliased networks.
        func firstDifference(_ a: [AddressRange], _ b: [AddressRange]) -> String? {
            for i in 0..<max(a.count, b.count) where i >= a.count || i >= b.count || a[i] != b[i] {
                return "range \(i): \(i < a.count ? "\(a[i])" : "none") vs \(i < b.count ? "\(b[i])" : "none")"
            }
            return nil
        }
        #expect(firstDifference(mmdbDataset.v4.ranges, data.dataset.v4.ranges) == nil)
        let textV6 = data.dataset.v6.ranges.filter { !IPAddress(family: .v6, value: $0.start).isInIPv4TunnelPrefix }
        #expect(firstDifference(mmdbDataset.v6.ranges, textV6) == nil)
    }
}
