import Foundation
import Testing
@testable import GeoGateCore
@testable import GeoGateImport

@Suite struct Formats {
    @Test func torRangeFiles() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let v4 = dir.write("geoip", "# IPFire export\n16777216,16777471,AU\n16777472,16778239,CN\n16778240,16778241,??\n")
        let v6 = dir.write("geoip6", "# comment\n2001:200::,2001:200:ffff:ffff:ffff:ffff:ffff:ffff,JP\n2001:4::,2001:4:ffff:ffff:ffff:ffff:ffff:ffff,??\n")
        let sources = try SourceLoader.load(paths: [v4, v6])
        #expect(sources.map(\.format) == [.tor, .tor])
        #expect(sources[0].v4.ranges == [AddressRange(start: 16777216, end: 16777471, country: cc("AU")),
                                         AddressRange(start: 16777472, end: 16778239, country: cc("CN"))])
        #expect(sources[0].unassignedRanges == 1)
        #expect(sources[1].v6.ranges == [AddressRange(start: ip("2001:200::"), end: ip("2001:200:ffff:ffff:ffff:ffff:ffff:ffff"), country: cc("JP"))])
    }

    @Test func dbipLiteCSVWithBothFamiliesAndQuotes() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let file = dir.write("dbip-country-lite-2026-11.csv",
                             "1.0.0.0,1.0.0.255,AU\n\"1.0.1.0\",\"1.0.3.255\",\"CN\"\n2001:200::,2001:200:ffff:ffff:ffff:ffff:ffff:ffff,JP\n")
        let s = try SourceLoader.load(paths: [file])[0]
        #expect(s.format == .dbipCSV)
        #expect(s.v4.ranges.count == 2 && s.v6.ranges.count == 1)
        #expect(s.v4.country(of: ip("1.0.2.9")) == cc("CN"))
    }

    @Test func maxmindCSVWithLocationsBeside() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        _ = dir.write("GeoLite2-Country-Locations-en.csv", """
            geoname_id,locale_code,continent_code,continent_name,country_iso_code,country_name,is_in_european_union
            2658434,en,EU,Europe,CH,Switzerland,0
            2635167,en,EU,Europe,GB,"United Kingdom",1
            7626844,en,NA,"North America",BQ,"Bonaire, Sint Eustatius, and Saba",0
            6255148,en,EU,Europe,,,0

            """)
        let blocks = dir.write("GeoLite2-Country-Blocks-IPv4.csv", """
            network,geoname_id,registered_country_geoname_id,represented_country_geoname_id,is_anonymous_proxy,is_satellite_provider,is_anycast
            81.2.69.0/24,2635167,2635167,,0,0,
            5.1.0.0/16,,2658434,,0,0,
            5.2.0.0/16,6255148,,,0,0,
            5.3.0.0/16,,,,1,0,
            5.4.0.0/16,,,,0,1,
            5.5.0.0/16,7626844,2658434,,0,0,

            """)
        let s = try SourceLoader.load(paths: [blocks])[0]
        #expect(s.format == .maxmindCSV)
        #expect(s.v4.country(of: ip("81.2.69.160")) == cc("GB"))
        #expect(s.v4.country(of: ip("5.1.2.3")) == cc("CH"))      // registered country
        #expect(s.v4.country(of: ip("5.2.2.3")) == nil)           // a continent, no country
        #expect(s.v4.country(of: ip("5.3.2.3")) == cc("A1"))      // anonymous proxy kept
        #expect(s.v4.country(of: ip("5.4.2.3")) == cc("A2"))      // satellite provider kept
        #expect(s.v4.country(of: ip("5.5.2.3")) == cc("BQ"))      // quoted name with commas
        // A geoname id missing from Locations names the line and field.
        let bad = dir.write("GeoLite2-Country-Blocks-IPv6.csv", "network,geoname_id,registered_country_geoname_id\n2001:db8::/32,999,\n")
        #expect(importError([bad])?.contains("GeoLite2-Country-Blocks-IPv6.csv:2: field 2: geoname_id '999' is not in the Locations file") == true)
    }

    /// Found by the maxmind-csv fuzz target: with a blank first line the header went
    /// unread and the first row indexed column -1 (a trap). The header is the first
    /// line that is not blank, in both files.
    @Test func maxmindHeadersAfterBlankLines() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        _ = dir.write("GeoLite2-Country-Locations-en.csv", "\n\ngeoname_id,locale_code,country_iso_code\n2658434,en,CH\n")
        let blocks = dir.write("GeoLite2-Country-Blocks-IPv4.csv", "\nnetwork,geoname_id,registered_country_geoname_id\n5.1.0.0/16,2658434,\n")
        let s = try SourceLoader.load(paths: [blocks])[0]
        #expect(s.v4.country(of: ip("5.1.2.3")) == cc("CH"))
        let noHeader = dir.write("GeoLite2-Country-Blocks-IPv6.csv", "\n\n2001:db8::/32,2658434,\n")
        #expect(importError([noHeader], format: .maxmindCSV)?.contains("GeoLite2-Country-Blocks-IPv6.csv:3: not a MaxMind Blocks header") == true)
    }

    @Test func rirDelegatedExtended() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let file = dir.write("delegated-ripencc-extended-latest", """
            2|ripencc|1763596799|150000|19830705|20251120|+0100
            ripencc|*|ipv4|*|80000|summary
            ripencc|*|asn|*|40000|summary
            ripencc|*|ipv6|*|30000|summary
            ripencc|FR|ipv4|2.0.0.0|1048576|20100712|allocated|abc
            ripencc|DE|ipv4|5.1.0.0|768|20120101|assigned|def
            ripencc||ipv4|5.2.0.0|256||available|
            ripencc|ZZ|ipv4|5.3.0.0|256||reserved|
            ripencc|CH|asn|3303|1|19930901|allocated|ghi
            ripencc|CH|ipv6|2001:620::|29|19990506|allocated|ghi

            """)
        let s = try SourceLoader.load(paths: [file])[0]
        #expect(s.format == .rir)
        #expect(s.v4.ranges == [AddressRange(start: ip("2.0.0.0"), end: ip("2.15.255.255"), country: cc("FR")),
                                AddressRange(start: ip("5.1.0.0"), end: ip("5.1.2.255"), country: cc("DE"))])  // 768: not a power of two
        #expect(s.v6.ranges == [AddressRange(start: ip("2001:620::"), end: ip("2001:627:ffff:ffff:ffff:ffff:ffff:ffff"), country: cc("CH"))])
        #expect(s.unassignedRanges == 2)
    }

    @Test func cidrListsTakeTheCountryFromTheName() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let zone = dir.write("ch.zone", "# ipdeny\n5.1.0.0/16\n2001:620::/29\n5.2.0.1-5.2.0.9\n")
        let s = try SourceLoader.load(paths: [zone])[0]
        #expect(s.format == .cidrList)
        #expect(s.v4.ranges.map(\.country) == [cc("CH"), cc("CH")])
        #expect(s.v6.ranges.count == 1)
        let anonymous = dir.write("list.txt", "10.0.0.0/8\n")
        #expect(importError([anonymous])?.contains("cannot tell this list's country") == true)
        var options = ImportOptions()
        options.listCountry = "it"
        #expect(try SourceLoader.load(paths: [anonymous], options: options)[0].v4.ranges.first?.country == cc("IT"))
    }

    @Test func compressedInputs() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let plain = dir.write("geoip", "16777216,16777471,AU\n")
        let copy = dir.write("geoip-copy", "16777216,16777471,AU\n")
        #expect(try run("/bin/gzip", ["-k", plain]) == 0)
        #expect(try run("/usr/bin/xz", ["-k", copy]) == 0)
        let gz = try SourceLoader.load(paths: [plain + ".gz"])[0]
        let xz = try SourceLoader.load(paths: [copy + ".xz"])[0]
        #expect(gz.v4 == xz.v4 && gz.v4.ranges.count == 1)
        // Truncated archives are errors that say so, not short data.
        let gzBytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: plain + ".gz")))
        let cut = dir.write("cut.gz", bytes: Array(gzBytes.dropLast(10)))
        #expect(importError([cut])?.contains("truncated gzip") == true)
        let xzBytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: copy + ".xz")))
        let cutXZ = dir.write("cut.xz", bytes: Array(xzBytes.dropLast(12)))
        #expect(importError([cutXZ])?.contains("xz data") == true)
        var garbage = gzBytes
        garbage[garbage.count - 8] ^= 0xFF  // the CRC-32 in the gzip trailer
        let bad = dir.write("bad.gz", bytes: garbage)
        #expect(importError([bad])?.contains("corrupt gzip data") == true)
    }

    @Test func laterInputsOverrideEarlierOnes() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let a = dir.write("a.csv", "10.0.0.0,10.0.0.255,DE\n")
        let b = dir.write("b.csv", "10.0.0.128,10.0.1.255,FR\n")
        let dataset = CountryDataset(sources: try SourceLoader.load(paths: [a, b], format: .dbipCSV))
        #expect(dataset.v4.ranges == [AddressRange(start: ip("10.0.0.0"), end: ip("10.0.0.127"), country: cc("DE")),
                                      AddressRange(start: ip("10.0.0.128"), end: ip("10.0.1.255"), country: cc("FR"))])
    }
}

@Suite struct BadInput {
    func check(_ text: String, name: String = "bad.csv", format: SourceFormat? = .dbipCSV, expect fragment: String) {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let file = dir.write(name, text)
        let message = importError([file], format: format)
        #expect(message?.contains(fragment) == true, "got: \(message ?? "no error")")
        #expect(message?.contains(name) == true, "the error names the file: \(message ?? "")")
    }

    @Test func unknownCountryCode() { check("1.0.0.0,1.0.0.255,AU\n2.0.0.0,2.0.0.255,UX\n", expect: ":2: field 3: unknown country code 'UX'") }
    @Test func invertedRange() { check("1.0.0.9,1.0.0.1,AU\n", expect: ":1: inverted range: start 1.0.0.9 is after end 1.0.0.1") }
    @Test func mixedFamilies() { check("1.0.0.0,::1,AU\n", expect: ":1: range mixes") }
    @Test func badAddress() { check("1.0.0.0,1.0.0.255,AU\n1.0.0,1.0.0.255,AU\n", expect: ":2: field 1: not an IP address: '1.0.0'") }
    @Test func wrongFieldCount() { check("1.0.0.0,1.0.0.255\n", expect: ":1: expected 3 fields") }
    @Test func tooLongPrefix() { check("10.0.0.0/33\n", name: "de.zone", format: nil, expect: ":1: prefix length /33 is longer than the family allows") }
    @Test func tooLongIPv6PrefixInRIR() {
        check("2|arin|x|1|2|3|4\narin|US|ipv6|2001:db8::|129|20200101|allocated\n", name: "delegated-arin", format: nil,
              expect: ":2: field 5: prefix length /129 is longer than IPv6 allows")
    }
    @Test func hostBitsInCIDR() { check("10.0.0.1/8\n", name: "de.zone", format: nil, expect: ":1: host bits set in '10.0.0.1/8'") }
    @Test func overlapWithDifferentCountries() {
        check("1.0.0.0,1.0.0.255,AU\n1.0.0.128,1.0.1.255,CN\n",
              expect: ":2: overlapping ranges with different countries: lines 1 (AU) and 2 (CN) both claim 1.0.0.128-1.0.0.255")
    }
    @Test func emptyInput() { check("# nothing here\n", format: .tor, expect: "empty input") }
    @Test func emptyFile() { check("", format: nil, expect: "empty input") }
    @Test func unknownFormat() { check("hello world\nthis is not data\n", format: nil, expect: "unknown format") }
    @Test func ipv4IntegerOutOfRange() { check("4294967296,4294967297,AU\n", format: .tor, expect: ":1: field 1: not an IP address") }

    @Test func corruptMMDB() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        // The metadata marker makes it look like an MMDB; the rest is garbage.
        var bytes = [UInt8](repeating: 0x41, count: 4096)
        bytes += [0xAB, 0xCD, 0xEF] + Array("MaxMind.com".utf8) + [0xE0]
        let file = dir.write("broken.mmdb", bytes: bytes)
        let message = importError([file])
        #expect(message?.contains("broken.mmdb: corrupt or unreadable MMDB") == true, "got \(message ?? "nil")")
    }

    @Test func skipInvalidCountsAndKeepsGoing() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let file = dir.write("mixed.csv", "1.0.0.0,1.0.0.255,AU\nnonsense\n2.0.0.0,2.0.0.255,UX\n3.0.0.0,3.0.0.255,US\n")
        #expect(importError([file], format: .dbipCSV) != nil)
        let s = try SourceLoader.load(paths: [file], format: .dbipCSV, options: ImportOptions(skipInvalid: true))[0]
        #expect(s.skippedLines == 2)
        #expect(s.v4.ranges.count == 2)
    }

    @Test func missingFile() {
        #expect(importError(["/nonexistent/geoip"])?.contains("/nonexistent/geoip: cannot open") == true)
    }
}

@Suite struct SmallMMDB {
    /// MaxMind's writer builds a small MMDB; geogate reads it plain, gzipped and xz'd
    /// (DB-IP ships .mmdb.gz), with IPv4 from the ::/96 tree and the aliases skipped.
    @Test func mmdbPlainAndCompressed() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let v4 = dir.write("geoip", "16777216,16777471,AU\n1358054656,1358055167,GB\n")  // 1.0.0.0/24, 80.241.0.0/23
        let v6 = dir.write("geoip6", "2001:620::,2001:627:ffff:ffff:ffff:ffff:ffff:ffff,CH\n2a02:8070::,2a02:8070:ffff:ffff:ffff:ffff:ffff:ffff,DE\n")
        let mmdb = dir.path + "/small.mmdb"
        try #require(try run("/usr/bin/perl", [repositoryRoot + "/Scripts/make-mmdb.pl", mmdb, v4, v6]) == 0)
        _ = try run("/bin/cp", [mmdb, dir.path + "/copy.mmdb"])
        #expect(try run("/bin/gzip", ["-k", mmdb]) == 0)
        #expect(try run("/usr/bin/xz", ["-k", dir.path + "/copy.mmdb"]) == 0)
        let text = CountryDataset(sources: try SourceLoader.load(paths: [v4, v6]))
        for path in [mmdb, mmdb + ".gz", dir.path + "/copy.mmdb.xz"] {
            let sources = try SourceLoader.load(paths: [path])
            #expect(sources.map(\.format) == [.mmdb], "\(path)")
            let dataset = CountryDataset(sources: sources)
            #expect(dataset.v4 == text.v4, "\(path)")
            #expect(dataset.v6 == text.v6, "\(path)")
        }
        // No temporary inflated copies are left in /tmp.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: "/tmp").filter { $0.hasPrefix("geogate-mmdb-") }
        #expect(leftovers.isEmpty)
    }
}

/// Edge inputs of issue 13 (findings 6 and 10): IPv4-mapped ranges, byte order
/// marks, control characters and huge fields in what reaches messages.
@Suite struct EdgeInputs {
    /// A range written as IPv4-mapped IPv6 is stored as IPv4, where lookups find it;
    /// a range that crosses into ::ffff:0:0/96 is split at its edges.
    @Test func ipv4MappedRangesAreStoredAsIPv4() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let file = dir.write("mapped.csv", "::ffff:1.0.0.0,::ffff:1.0.0.255,AU\n::fffe:ffff:fff0,::ffff:0.0.0.15,JP\n2001:db8::,2001:db8::ff,IT\n")
        let s = try SourceLoader.load(paths: [file])[0]
        #expect(s.v4.ranges == [AddressRange(start: 0, end: 15, country: cc("JP")),
                                AddressRange(start: ip("1.0.0.0"), end: ip("1.0.0.255"), country: cc("AU"))])
        #expect(s.v6.ranges == [AddressRange(start: ip("::fffe:ffff:fff0"), end: ip("::fffe:ffff:ffff"), country: cc("JP")),
                                AddressRange(start: ip("2001:db8::"), end: ip("2001:db8::ff"), country: cc("IT"))])
        let trie = dir.path + "/m.trie"
        #expect(try geogate(["compile", "-q", file, "-o", trie]).status == 0)
        let lookup = try geogate(["lookup", "--db", trie, "1.0.0.7", "::ffff:1.0.0.7", "::1.0.0.7", "2002:100:7::1"])
        #expect(lookup.stdout == "1.0.0.7 AU\n::ffff:1.0.0.7 AU\n::1.0.0.7 --\n2002:100:7::1 --\n", "IPv4-compatible and 6to4 forms are IPv6 addresses: \(lookup.stdout)")
    }

    /// A UTF-8 byte order mark at the start of a text input or of the config is skipped.
    @Test func aByteOrderMarkIsSkipped() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let file = dir.path + "/bom.csv"
        try Data([0xEF, 0xBB, 0xBF] + Array("1.0.0.0,1.0.0.255,AU\n".utf8)).write(to: URL(fileURLWithPath: file))
        let s = try SourceLoader.load(paths: [file])[0]
        #expect(s.format == .dbipCSV && s.v4.ranges.count == 1)
        let rir = dir.path + "/delegated"
        try Data([0xEF, 0xBB, 0xBF] + Array("2|apnic|20260101|1|19830613|20260101|+1000\napnic|AU|ipv4|1.0.0.0|256|20110811|assigned\n".utf8))
            .write(to: URL(fileURLWithPath: rir))
        #expect(try SourceLoader.load(paths: [rir])[0].v4.ranges.count == 1)
        let config = dir.path + "/geogate.conf"
        try Data([0xEF, 0xBB, 0xBF] + Array("profiles:\n  web:\n    scope: web-only\n    allow-countries: [IT]\n".utf8))
            .write(to: URL(fileURLWithPath: config))
        let trie = dir.path + "/b.trie"
        #expect(try geogate(["compile", "-q", file, "-o", trie]).status == 0)
        let check = try geogate(["check", "--config", config, "--db", trie, "--profile", "web", "1.0.0.1"])
        #expect(check.stdout == "DENY AU country-not-allowed\n", "\(check.stdout) \(check.stderr)")
    }

    /// Fields with control characters or of megabytes reach an error message
    /// escaped and cut; a file name with a newline is refused before it can reach
    /// the trie's metadata (and a trie holding one is refused when opened).
    @Test func textFromInputsIsEscapedAndCut() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let escape = dir.write("esc.csv", "1.0.0.0,1.0.0.255,AU\n1.0.1.0\u{1b}[2J\u{07}\u{0},1.0.1.255,AU\n")
        let r = try geogate(["compile", escape, "-o", dir.path + "/x.trie"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("esc.csv:2: field 1: not an IP address: '1.0.1.0\\x1b[2J\\x07\\x00'"), "\(r.stderr)")
        #expect(!r.stderr.utf8.contains(0x1B) && !r.stderr.utf8.contains(0x07) && !r.stderr.utf8.contains(0))
        let huge = dir.write("huge.csv", "1.0.0.0,1.0.0.255,AU\n" + String(repeating: "9", count: 10 << 20) + ",1.0.1.255,AU\n")
        let h = try geogate(["compile", huge, "-o", dir.path + "/x.trie"])
        #expect(h.status == 1 && h.stderr.count < 1000, "\(h.stderr.count) bytes")
        #expect(h.stderr.contains("(10485640 more bytes cut)"), "\(h.stderr.prefix(400))")

        let named = dir.write("evil\nALLOW IT country-allowed.csv", "1.0.0.0,1.0.0.255,AU\n")
        let n = try geogate(["compile", named, "-o", dir.path + "/x.trie"])
        #expect(n.status == 1)
        #expect(n.stderr.contains("evil\\nALLOW IT country-allowed.csv: the file name holds control characters"), "\(n.stderr)")
        #expect(n.stderr.split(separator: "\n").count == 1)
    }
}
