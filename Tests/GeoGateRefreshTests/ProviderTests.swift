import Foundation
import GeoGateTestSupport
import Testing

/// The built-in providers' URL patterns, archive layouts and checksums, served
/// from the loopback test server through `base-url`: what geogate asks for, and
/// what it makes of the answer, must match what the provider publishes.
@Suite(.serialized) struct ProviderTests {
    /// Runs a bash script in `directory` (test data: tar, zip, MaxMind's writer).
    func shell(_ script: String, in directory: String) throws {
        let log = directory + "/shell.log"
        let status = run("/bin/bash", ["-c", "set -eu; cd \(directory); " + script], stderr: log)
        try #require(status == 0, "\(script): \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
    }

    /// Each address answers with its country from the live trie.
    func expectLookups(_ s: RefreshScratch, _ answers: KeyValuePairs<String, String>,
                       sourceLocation: SourceLocation = #_sourceLocation) {
        for (address, country) in answers {
            #expect(s.lookup(address) == "\(address) \(country)", sourceLocation: sourceLocation)
        }
    }

    /// A refresh fails with `reason` in its log and the live trie as it was.
    func expectRefused(_ s: RefreshScratch, _ reason: String, live: Data?, sourceLocation: SourceLocation = #_sourceLocation) {
        let (status, log) = s.refresh()
        #expect(status == 1 && log.contains(reason), "\(log)", sourceLocation: sourceLocation)
        #expect(s.liveBytes == live, sourceLocation: sourceLocation)
    }

    func bytes(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    func scratch(_ source: String) throws -> RefreshScratch {
        // The base-url needs the server's port: make the scratch, then write its sources.
        let s = try RefreshScratch(minRanges: 1)
        let text = try String(contentsOfFile: s.configPath, encoding: .utf8)
            .replacingOccurrences(of: "    - url: \(s.server.url("/dbip.csv"))", with: source.replacingOccurrences(of: "BASE", with: s.server.url("")))
        try text.write(toFile: s.configPath, atomically: true, encoding: .utf8)
        return s
    }

    /// GeoLite2-Country: `<base>/<edition>/download?suffix=tar.gz` with HTTP basic
    /// auth (account id, license key), a `.sha256` sidecar beside it; the .mmdb is
    /// found inside the dated directory. The key never reaches the log.
    @Test func maxmindMMDBInATarGzWithItsSidecar() throws {
        let s = try scratch("""
                - provider: maxmind
                  account-id: "123456"
                  license-key: s3cret-key
                  base-url: BASE
            """)
        try shell("""
            mkdir GeoLite2-Country_20261117
            printf '1359103232,1359103487,GB\\n83951616,84017151,CH\\n' > v4
            printf '2001:620::,2001:627:ffff:ffff:ffff:ffff:ffff:ffff,CH\\n' > v6
            perl \(repositoryRoot)/Scripts/make-mmdb.pl GeoLite2-Country_20261117/GeoLite2-Country.mmdb v4 v6 > /dev/null
            echo license > GeoLite2-Country_20261117/LICENSE.txt
            tar czf GeoLite2-Country_20261117.tar.gz GeoLite2-Country_20261117
            sha256sum GeoLite2-Country_20261117.tar.gz > sidecar
            """, in: s.directory)
        let archive = "/GeoLite2-Country/download?suffix=tar.gz"
        s.server.plan(archive, [.init(body: try bytes(s.directory + "/GeoLite2-Country_20261117.tar.gz"), etag: "\"m1\"")])
        s.server.plan(archive + ".sha256", [.init(body: try bytes(s.directory + "/sidecar"))])
        let (status, log) = s.refresh()
        #expect(status == 0, "\(log)")
        #expect(log.contains("SHA-256 verified") && log.contains("unpacked GeoLite2-Country.mmdb"), "\(log)")
        expectLookups(s, ["81.2.69.160": "GB", "5.1.2.3": "CH", "2001:620::1": "CH"])
        let auth = "Basic " + Data("123456:s3cret-key".utf8).base64EncodedString()
        #expect(s.server.requests(archive).map(\.authorization) == [auth])
        #expect(s.server.requests(archive + ".sha256").map(\.authorization) == [auth])
        #expect(!log.contains("s3cret-key"), "the license key is not logged: \(log)")

        // A new release whose sidecar does not match: refused, nothing changed.
        let before = s.liveBytes
        var changed = try bytes(s.directory + "/GeoLite2-Country_20261117.tar.gz")
        changed[changed.count - 1] ^= 1
        s.server.plan(archive, [.init(body: changed, etag: "\"m2\"")])
        expectRefused(s, "maxmind-GeoLite2-Country: checksum mismatch", live: before)
    }

    /// GeoLite2-Country-CSV: a zip whose Blocks and English Locations files are the inputs.
    @Test func maxmindCSVInAZip() throws {
        let s = try scratch("""
                - provider: maxmind
                  edition: GeoLite2-Country-CSV
                  account-id: "123456"
                  license-key: s3cret-key
                  base-url: BASE
            """)
        try shell("""
            d=GeoLite2-Country-CSV_20261117; mkdir $d
            printf 'geoname_id,locale_code,continent_code,continent_name,country_iso_code,country_name,is_in_european_union\\n2658434,en,EU,Europe,CH,Switzerland,0\\n3175395,en,EU,Europe,IT,Italy,1\\n' > $d/GeoLite2-Country-Locations-en.csv
            printf 'geoname_id,locale_code\\n' > $d/GeoLite2-Country-Locations-de.csv
            h=network,geoname_id,registered_country_geoname_id,represented_country_geoname_id,is_anonymous_proxy,is_satellite_provider,is_anycast
            printf "$h\\n5.1.0.0/16,2658434,2658434,,0,0,\\n2.32.0.0/13,3175395,3175395,,0,0,\\n" > $d/GeoLite2-Country-Blocks-IPv4.csv
            printf "$h\\n2001:620::/29,2658434,2658434,,0,0,\\n" > $d/GeoLite2-Country-Blocks-IPv6.csv
            echo license > $d/LICENSE.txt
            zip -qr $d.zip $d
            sha256sum $d.zip > sidecar
            """, in: s.directory)
        let archive = "/GeoLite2-Country-CSV/download?suffix=zip"
        s.server.plan(archive, [.init(body: try bytes(s.directory + "/GeoLite2-Country-CSV_20261117.zip"))])
        s.server.plan(archive + ".sha256", [.init(body: try bytes(s.directory + "/sidecar"))])
        let (status, log) = s.refresh()
        #expect(status == 0, "\(log)")
        let unpacked = log.split(separator: "\n").first { $0.contains("unpacked") }.map(String.init) ?? ""
        for member in ["Blocks-IPv4.csv", "Blocks-IPv6.csv", "Locations-en.csv"] {
            #expect(unpacked.contains("GeoLite2-Country-" + member), "\(log)")
        }
        #expect(!unpacked.contains("Locations-de") && !unpacked.contains("LICENSE"), "only the inputs: \(unpacked)")
        expectLookups(s, ["2.33.0.1": "IT", "2001:620::1": "CH"])
    }

    /// The five RIR delegated-extended files, each checked against its `.md5`
    /// ("MD5 (file) = hex", as the registries write it).
    @Test func theFiveRIRFilesWithTheirMD5() throws {
        let s = try scratch("""
                - provider: rir
                  base-url: BASE
            """)
        let records = ["arin": "arin|US|ipv4|3.0.0.0|16777216|19880101|allocated|a",
                       "ripencc": "ripencc|IT|ipv4|2.32.0.0|524288|20100101|allocated|b\nripencc|CH|ipv6|2001:620::|29|19990506|allocated|c",
                       "apnic": "apnic|JP|ipv4|1.0.16.0|4096|20110412|allocated|d",
                       "lacnic": "lacnic|BR|ipv4|177.0.0.0|1048576|20100101|allocated|e",
                       "afrinic": "afrinic|ZA|ipv4|41.0.0.0|65536|20050101|allocated|f"]
        var files: [String: [UInt8]] = [:]
        for (registry, lines) in records {
            let name = "delegated-\(registry)-extended-latest"
            let text = "2|\(registry)|20261121|\(lines.split(separator: "\n").count)|19830101|20261120|+0000\n" +
                "\(registry)|*|ipv4|*|1|summary\n" + lines + "\n"
            try text.write(toFile: s.directory + "/" + name, atomically: true, encoding: .utf8)
            try shell("echo \"MD5 (\(name)) = $(md5sum \(name) | cut -d' ' -f1)\" > \(name).md5", in: s.directory)
            files[name] = Array(text.utf8)
            s.server.plan("/" + name, [.init(body: Array(text.utf8))])
            s.server.plan("/\(name).md5", [.init(body: try bytes(s.directory + "/\(name).md5"))])
        }
        let (status, log) = s.refresh()
        #expect(status == 0, "\(log)")
        #expect(log.components(separatedBy: "MD5 verified").count == 6, "five checksums: \(log)")
        expectLookups(s, ["3.1.2.3": "US", "2.33.0.1": "IT", "2001:620::1": "CH", "1.0.16.1": "JP", "177.1.0.1": "BR", "41.0.9.9": "ZA"])
        // One registry's file changed in transit: refused by its checksum.
        let before = s.liveBytes
        s.server.plan("/delegated-apnic-extended-latest", [.init(body: files["delegated-apnic-extended-latest"]! + Array("apnic|CN|ipv4|1.0.1.0|256|20110414|allocated|x\n".utf8))])
        try FileManager.default.removeItem(atPath: s.directory + "/state")
        expectRefused(s, "rir-apnic: checksum mismatch: MD5", live: before)
    }

    /// DB-IP lite: this month's file, or last month's while this month's is not out
    /// (across a year's end here: January 2027 falls back to December 2026).
    @Test func dbipTakesLastMonthsFileUntilThisMonthsIsOut() throws {
        let s = try scratch("""
                - provider: dbip-lite
                  base-url: BASE
            """)
        s.server.plan("/dbip-country-lite-2027-01.csv.gz", [.init(status: .notFound)])
        s.server.plan("/dbip-country-lite-2026-12.csv.gz", [.init(body: try gzip(RefreshScratch.csv(), in: s.directory))])
        let (status, log) = s.refresh(environment: ["SOURCE_DATE_EPOCH": "1799107200"])  // 2027-01-05
        #expect(status == 0, "\(log)")
        #expect(log.contains("is not published yet; taking the previous one"), "\(log)")
        expectLookups(s, ["1.2.0.1": "GB"])
        #expect(s.server.requests("/dbip-country-lite-2027-01.csv.gz").map(\.answered) == [404])
    }

    /// DB-IP lite as MMDB: this month's .mmdb.gz, inflated and read through libmaxminddb.
    @Test func dbipMMDBEdition() throws {
        let s = try scratch("""
                - provider: dbip-lite
                  edition: mmdb
                  base-url: BASE
            """)
        try shell("""
            printf '1359103232,1359103487,GB\\n83951616,84017151,CH\\n' > v4
            printf '2001:620::,2001:627:ffff:ffff:ffff:ffff:ffff:ffff,CH\\n' > v6
            perl \(repositoryRoot)/Scripts/make-mmdb.pl dbip.mmdb v4 v6 > /dev/null
            gzip -n dbip.mmdb
            """, in: s.directory)
        s.server.plan("/dbip-country-lite-2026-11.mmdb.gz", [.init(body: try bytes(s.directory + "/dbip.mmdb.gz"))])
        let (status, log) = s.refresh(environment: ["SOURCE_DATE_EPOCH": "1793836800"])  // 2026-11-05
        #expect(status == 0, "\(log)")
        expectLookups(s, ["81.2.69.160": "GB", "2001:620::1": "CH"])
    }

    /// ipdeny: one aggregated zone per country and family; the country is the file's.
    @Test func ipdenyZonesPerCountryAndFamily() throws {
        let s = try scratch("""
                - provider: ipdeny
                  countries: [IT, CH]
                  base-url: BASE/
            """)
        s.server.plan("/ipblocks/data/aggregated/it-aggregated.zone", [.init(body: Array("2.32.0.0/13\n5.88.0.0/13\n".utf8))])
        s.server.plan("/ipv6/ipaddresses/aggregated/it-aggregated.zone", [.init(body: Array("2001:b00::/24\n".utf8))])
        s.server.plan("/ipblocks/data/aggregated/ch-aggregated.zone", [.init(body: Array("5.1.0.0/16\n".utf8))])
        s.server.plan("/ipv6/ipaddresses/aggregated/ch-aggregated.zone", [.init(body: Array("2001:620::/29\n".utf8))])
        let (status, log) = s.refresh()
        #expect(status == 0, "\(log)")
        expectLookups(s, ["5.90.0.1": "IT", "2001:b00::1": "IT", "5.1.0.1": "CH", "2001:620::1": "CH"])
    }

    /// Tor's geoip (integer ranges) and geoip6 files.
    @Test func torGeoipFiles() throws {
        let s = try scratch("""
                - provider: tor
                  base-url: BASE
            """)
        s.server.plan("/geoip", [.init(body: Array("# tor\n1359103232,1359103487,GB\n83951616,84017151,CH\n".utf8))])
        s.server.plan("/geoip6", [.init(body: Array("2001:620::,2001:627:ffff:ffff:ffff:ffff:ffff:ffff,CH\n".utf8))])
        let (status, log) = s.refresh()
        #expect(status == 0, "\(log)")
        expectLookups(s, ["81.2.69.160": "GB", "2001:620::1": "CH"])
    }
}
