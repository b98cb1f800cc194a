import Foundation
import GeoGateTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The two sides of a fleet without a kernel: `geogate publish` on the compile
/// host, and a node's `trie:` source against a scripted HTTP server (the
/// end-to-end fleet with nginx and kernel sets is FleetTests, in the firewall tests).
@Suite(.serialized) struct FleetNodeTests {
    /// A scratch node whose only source is the publication at /pub/ of its test server.
    static func node(keys: [String] = ["keys/geogate.pub"]) throws -> RefreshScratch {
        let s = try RefreshScratch(sources: "")
        let trusted = keys.map { s.directory + "/" + $0 }.joined(separator: ", ")
        var text = try String(contentsOfFile: s.configPath, encoding: .utf8)
        text = text.replacingOccurrences(of: "  sources:\n", with: "  sources:\n    - trie: \(s.server.url("/pub/"))\n      public-key: [\(trusted)]\n")
        try text.write(toFile: s.configPath, atomically: true, encoding: .utf8)
        #expect(geogate(["keygen", "--out", s.directory + "/keys"], in: s).0 == 0)
        return s
    }

    @discardableResult
    static func geogate(_ args: [String], in s: RefreshScratch, environment: [String: String]? = nil) -> (Int32, String) {
        let log = s.directory + "/cli-\(UUID().uuidString).log"
        let status = run(geogateBinary, args, environment: environment.map { ProcessInfo.processInfo.environment.merging($0) { $1 } },
                         stdout: log, stderr: log)
        return (status, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }

    /// Compiles `count` ranges (built at `time`) to `name`.trie.
    static func compile(_ name: String, count: Int, time: Int, in s: RefreshScratch) throws {
        try Data(RefreshScratch.csv(count: count)).write(to: URL(fileURLWithPath: s.directory + "/\(name).csv"))
        let (status, log) = geogate(["compile", "-q", s.directory + "/\(name).csv", "-o", s.directory + "/\(name).trie",
                                     "--build-time", "\(time)"], in: s)
        #expect(status == 0, "\(log)")
    }

    static func publish(_ name: String, in s: RefreshScratch, keep: Int = 3, environment: [String: String]? = nil) -> (Int32, String) {
        geogate(["publish", "--db", s.directory + "/\(name).trie", "--dir", s.directory + "/www", "--sign-key",
                 s.directory + "/keys/geogate.key", "--keep", "\(keep)"], in: s, environment: environment)
    }

    /// What the test server answers for /pub/<file>: the publisher's directory as it is now.
    static func serveDirectory(_ s: RefreshScratch) throws {
        for file in try FileManager.default.contentsOfDirectory(atPath: s.directory + "/www") where !file.hasPrefix(".") {
            let body = Array(try Data(contentsOf: URL(fileURLWithPath: s.directory + "/www/" + file)))
            s.server.plan("/pub/" + file, [.init(body: body, etag: "\"\(file)-\(body.count)-\(body.hashValue)\"")])
        }
    }

    static func manifest(_ s: RefreshScratch) -> String {
        (try? String(contentsOfFile: s.directory + "/www/manifest", encoding: .utf8)) ?? ""
    }

    @Test func publishingIsAtomicAndKeepsTheLastPublications() throws {
        let s = try Self.node()
        for (i, name) in ["a", "b", "c", "d"].enumerated() { try Self.compile(name, count: 100 + i * 10, time: 1000 + i, in: s) }
        #expect(Self.publish("a", in: s).0 == 0)
        let first = Self.manifest(s)
        #expect(first.hasPrefix("geogate-manifest 1\ntrie geogate-") && first.contains("\nbuilt 1000\n"), "\(first)")
        // The same trie again: nothing is rewritten.
        let (again, againLog) = Self.publish("a", in: s)
        #expect(again == 0 && againLog.contains("already publishes"), "\(againLog)")

        // A failure before the manifest's rename: the manifest still names the first publication.
        let (failed, failedLog) = Self.publish("b", in: s, environment: ["GEOGATE_FAULT": "publish-manifest"])
        #expect(failed == 1 && failedLog.contains("the manifest still names the earlier publication"), "\(failedLog)")
        #expect(Self.manifest(s) == first)

        // Published within the same second, each manifest still gets a later
        // modification time: web servers' validators (nginx's ETag is mtime-size,
        // Last-Modified the mtime) must change, or nodes would get a 304.
        // (The last manifest is dated a few seconds ahead, as one written this second looks to the next.)
        func mtime() -> Int { var st = stat(); stat(s.directory + "/www/manifest", &st); return st.st_mtim.tv_sec }
        var ahead = [timespec(tv_sec: time(nil) + 5, tv_nsec: 0), timespec(tv_sec: time(nil) + 5, tv_nsec: 0)]
        utimensat(AT_FDCWD, s.directory + "/www/manifest", &ahead, 0)
        let before = mtime()
        #expect(Self.publish("b", in: s).0 == 0)
        #expect(mtime() > before, "the new manifest's time is past the old one's")

        // keep 2: after b, c and d, the tries of b (a failed one's leftover too) and a are gone.
        for name in ["c", "d"] { #expect(Self.publish(name, in: s, keep: 2).0 == 0) }
        let files = try FileManager.default.contentsOfDirectory(atPath: s.directory + "/www").filter { !$0.hasPrefix(".") }.sorted()
        #expect(files.count == 7, "manifest and two tries with their signatures and gzipped copies: \(files)")
        #expect(Self.manifest(s).contains("\nbuilt 1003\n"))
        // What is published verifies.
        let name = Self.manifest(s).split(separator: "\n")[1].dropFirst(5)
        try FileManager.default.copyItem(atPath: s.directory + "/www/\(name)", toPath: s.directory + "/check.trie")
        try FileManager.default.copyItem(atPath: s.directory + "/www/\(name).sig", toPath: s.directory + "/check.trie.sig")
        let (info, infoLog) = Self.geogate(["info", "--db", s.directory + "/check.trie", "--public-key", s.directory + "/keys/geogate.pub"], in: s)
        #expect(info == 0 && infoLog.contains("verified with"), "\(infoLog)")
    }

    /// Each bad manifest is refused, naming the manifest and what is wrong with it.
    @Test(arguments: [
        ("geogate-manifest 1\ntrie ../../etc/passwd\nsize 10\nsha256 \(String(repeating: "ab", count: 32))\nsignature x\nbuilt 1\n", "is not a plain file name"),
        ("<html>not found</html>\n", "expected \"geogate-manifest 1\""),
        ("geogate-manifest 1\ntrie geogate-1.trie\nsize 10\nsignature x\nbuilt 1\n", "no sha256 line"),
        ("geogate-manifest 1\ntrie a.trie\ntrie b.trie\n", ":3: trie given twice"),
        ("geogate-manifest 1\n" + String(repeating: "x", count: 70_000) + "\n", "over the 65536-byte limit (a manifest's size)"),
    ])
    func aNodeRefusesABadManifest(manifest: String, reason: String) throws {
        let s = try Self.node()
        s.server.plan("/pub/manifest", [.init(body: Array(manifest.utf8))])
        let (status, log) = s.refresh()
        #expect(status == 1 && log.contains(reason) && log.contains("nothing changed"), "\(log)")
        #expect(s.liveBytes == nil)
        #expect(s.server.requests("/pub/manifest").count == 1)
    }

    /// The manifest is not trusted: a size it names past refresh.max-input-mb is
    /// refused before anything is fetched, and a gzip that inflates past the size
    /// it names stops there (memory stays bounded whatever the publisher says).
    @Test func aNodeBoundsWhatAManifestAsksItToRead() throws {
        let s = try Self.node()
        _ = run("/bin/bash", ["-c", "head -c 100M /dev/zero | gzip -9 > \(s.directory)/bomb.gz"], stderr: "/dev/null")
        let bomb = Array(try Data(contentsOf: URL(fileURLWithPath: s.directory + "/bomb.gz")))
        s.server.plan("/pub/geogate-x.trie.gz", [.init(body: bomb)])
        func manifest(size: Int) -> [UInt8] {
            Array("""
                geogate-manifest 1
                trie geogate-x.trie
                size \(size)
                sha256 \(String(repeating: "ab", count: 32))
                gzip geogate-x.trie.gz \(bomb.count)
                signature geogate-ed25519-signature 0011223344556677 AAAA
                built 1

                """.utf8)
        }
        s.server.plan("/pub/manifest", [.init(body: manifest(size: 100_000_000_000))])
        let (huge, hugeLog) = s.refresh()
        #expect(huge == 1 && hugeLog.contains("100000000000 bytes, over refresh.max-input-mb (64 MB)"), "\(hugeLog)")
        #expect(s.server.requests("/pub/geogate-x.trie.gz").isEmpty, "refused before the trie was fetched")

        s.server.plan("/pub/manifest", [.init(body: manifest(size: 2_000_000))])
        let (inflated, inflatedLog) = s.refresh()
        #expect(inflated == 1 && inflatedLog.contains("geogate-x.trie.gz") && inflatedLog.contains("expands to over"), "\(inflatedLog)")
        #expect(s.liveBytes == nil)

        // A real publication whose trie the server sends with more bytes than the
        // manifest names: the transfer is cut at that size.
        try Self.compile("a", count: 100, time: 1000, in: s)
        #expect(Self.publish("a", in: s).0 == 0)
        let published = Self.manifest(s).split(separator: "\n").filter { !$0.hasPrefix("gzip ") }.joined(separator: "\n") + "\n"
        let name = String(published.split(separator: "\n")[1].dropFirst(5))
        let trie = Array(try Data(contentsOf: URL(fileURLWithPath: s.directory + "/www/" + name)))
        s.server.plan("/pub/manifest", [.init(body: Array(published.utf8))])
        s.server.plan("/pub/" + name, [.init(body: trie + Array(repeating: 0, count: 100_000))])
        let (longer, longerLog) = s.refresh()
        #expect(longer == 1 && longerLog.contains("over the \(trie.count)-byte limit (the manifest's size of \(name))"), "\(longerLog)")
        #expect(s.liveBytes == nil)
    }

    @Test func aNodeTakesPublicationsAndRollsBackWithTheirSignatures() throws {
        let s = try Self.node()
        try Self.compile("a", count: 100, time: 1000, in: s)
        try Self.compile("b", count: 105, time: 2000, in: s)
        #expect(Self.publish("a", in: s).0 == 0)
        try Self.serveDirectory(s)
        let (first, firstLog) = s.refresh()
        #expect(first == 0 && firstLog.contains("verified") && firstLog.contains("applied the publisher's"), "\(firstLog)")
        #expect(s.liveBytes == (try Data(contentsOf: URL(fileURLWithPath: s.directory + "/a.trie"))))
        // The manifest is asked for conditionally; the trie only when it changes.
        let (second, secondLog) = s.refresh()
        #expect(second == 3, "\(secondLog)")
        #expect(s.server.requests("/pub/manifest").last?.answered == 304)

        #expect(Self.publish("b", in: s).0 == 0)
        try Self.serveDirectory(s)
        #expect(s.refresh().0 == 0)
        #expect(s.liveBytes == (try Data(contentsOf: URL(fileURLWithPath: s.directory + "/b.trie"))))
        let pub = s.directory + "/keys/geogate.pub"
        let (info, infoLog) = Self.geogate(["info", "--db", s.live, "--public-key", pub], in: s)
        #expect(info == 0 && infoLog.contains("verified with \(pub)"), "\(infoLog)")

        // Rollback: the first publication again, with its own signature.
        let (back, backLog) = Self.geogate(["rollback", "--config", s.configPath], in: s)
        #expect(back == 0, "\(backLog)")
        #expect(s.liveBytes == (try Data(contentsOf: URL(fileURLWithPath: s.directory + "/a.trie"))))
        let (rolled, rolledLog) = Self.geogate(["info", "--db", s.live, "--public-key", pub], in: s)
        #expect(rolled == 0 && rolledLog.contains("verified with \(pub)"), "\(rolledLog)")
        let (_, status) = Self.geogate(["status", "--config", s.configPath], in: s)
        #expect(status.contains("signature: key") && status.contains("verified with \(pub)"), "\(status)")
        #expect(status.contains("publisher's last manifest: geogate-") && status.contains("NOT the live trie"), "\(status)")

        // The publisher still publishes what was rolled back from: it is not fetched
        // again (no trie request, exit 3) until a newer publication, or --force.
        let fetches = s.server.requests("/pub/" + Self.manifest(s).split(separator: "\n")[4].split(separator: " ")[1]).count
        let (kept, keptLog) = s.refresh()
        #expect(kept == 3 && keptLog.contains("rolled back from"), "\(keptLog)")
        #expect(s.server.requests("/pub/" + Self.manifest(s).split(separator: "\n")[4].split(separator: " ")[1]).count == fetches)
        #expect(s.liveBytes == (try Data(contentsOf: URL(fileURLWithPath: s.directory + "/a.trie"))))
        let (forced, forcedLog) = s.refresh(["--force"])
        #expect(forced == 0, "\(forcedLog)")
        #expect(s.liveBytes == (try Data(contentsOf: URL(fileURLWithPath: s.directory + "/b.trie"))))
    }

    /// A node follows the published bytes, not the sources: the same sources
    /// compiled again (a later build) are a new publication and are taken.
    @Test func aRecompileOfTheSameSourcesIsTaken() throws {
        let s = try Self.node()
        try Self.compile("a", count: 100, time: 1000, in: s)
        #expect(Self.publish("a", in: s).0 == 0)
        try Self.serveDirectory(s)
        #expect(s.refresh().0 == 0)
        try Self.compile("a", count: 100, time: 2000, in: s)
        #expect(Self.publish("a", in: s).0 == 0)
        try Self.serveDirectory(s)
        let (status, log) = s.refresh()
        #expect(status == 0, "\(log)")
        #expect(s.liveBytes == (try Data(contentsOf: URL(fileURLWithPath: s.directory + "/a.trie"))))
        #expect(s.refresh().0 == 3)
    }

    /// A failure at any switch of a node's refresh puts back the old trie and its
    /// signature, byte for byte, and leaves no second name behind.
    @Test(arguments: ["trie-write", "trie-rename", "daemon-reload"])
    func aFailedSwitchPutsBackTheTrieAndItsSignature(fault: String) throws {
        let s = try Self.node()
        try Self.compile("a", count: 100, time: 1000, in: s)
        try Self.compile("b", count: 105, time: 2000, in: s)
        #expect(Self.publish("a", in: s).0 == 0)
        try Self.serveDirectory(s)
        #expect(s.refresh().0 == 0)
        let trieBefore = s.liveBytes
        let signatureBefore = try Data(contentsOf: URL(fileURLWithPath: s.live + ".sig"))
        #expect(Self.publish("b", in: s).0 == 0)
        try Self.serveDirectory(s)
        let (status, log) = s.refresh([], environment: ["GEOGATE_FAULT": fault])
        #expect(status == 1 && log.contains("injected failure at \(fault)"), "\(log)")
        #expect(s.liveBytes == trieBefore)
        #expect(try Data(contentsOf: URL(fileURLWithPath: s.live + ".sig")) == signatureBefore)
        let left = try FileManager.default.contentsOfDirectory(atPath: s.directory).filter { $0.hasPrefix("live.trie") }.sorted()
        #expect(left == ["live.trie", "live.trie.sig"], "\(left)")
        // Without the fault, the new publication and its signature.
        #expect(s.refresh().0 == 0)
        #expect(s.liveBytes == (try Data(contentsOf: URL(fileURLWithPath: s.directory + "/b.trie"))))
        let (info, infoLog) = Self.geogate(["info", "--db", s.live, "--public-key", s.directory + "/keys/geogate.pub"], in: s)
        #expect(info == 0 && infoLog.contains("verified"), "\(infoLog)")
    }

    /// refresh.publish: the compile host publishes what each refresh leaves live.
    @Test func aCompileHostPublishesAfterEachRefresh() throws {
        let s = try RefreshScratch()
        #expect(Self.geogate(["keygen", "--out", s.directory + "/keys"], in: s).0 == 0)
        var text = try String(contentsOfFile: s.configPath, encoding: .utf8)
        text = text.replacingOccurrences(of: "refresh:\n", with: "refresh:\n  publish:\n    dir: \(s.directory)/www\n    sign-key: \(s.directory)/keys/geogate.key\n")
        try text.write(toFile: s.configPath, atomically: true, encoding: .utf8)
        s.server.plan("/dbip.csv", [.init(body: RefreshScratch.csv(), etag: "\"v1\"")])
        let (status, log) = s.refresh()
        #expect(status == 0 && log.contains("published \(s.directory)/www/geogate-"), "\(log)")
        let live = try #require(s.liveBytes)
        let name = Self.manifest(s).split(separator: "\n")[1].dropFirst(5)
        #expect(try Data(contentsOf: URL(fileURLWithPath: s.directory + "/www/\(name)")) == live)
        let before = Self.manifest(s)
        let (again, againLog) = s.refresh()
        #expect(again == 3 && Self.manifest(s) == before, "\(againLog)")
        // status says what the nodes get, and is degraded when it is not the live trie.
        let (_, report) = Self.geogate(["status", "--config", s.configPath], in: s)
        #expect(report.contains("published for the nodes: \(s.directory)/www/\(name), published ") && report.contains(": the live trie"), "\(report)")
        #expect(!report.contains("degraded: refresh.publish") && !report.contains("not the live trie:"), "\(report)")
        try FileManager.default.removeItem(atPath: s.directory + "/www/manifest")
        let (degraded, gone) = Self.geogate(["status", "--config", s.configPath], in: s)
        #expect(degraded == 1 && gone.contains("degraded: refresh.publish: \(s.directory)/www/manifest cannot be read: the nodes get nothing"), "\(gone)")
    }

    @Test(arguments: [
        ("    - trie: http://127.0.0.1:1/pub/\n", "a trie: source needs public-key"),
        ("    - trie: http://127.0.0.1:1/pub/\n      public-key: \"geogate-ed25519 abc\"\n", "not a geogate-ed25519 public key"),
        ("    - trie: http://127.0.0.1:1/pub/\n      public-key: keys/geogate.pub\n", "absolute path"),
        ("    - trie: http://127.0.0.1:1/pub/\n      public-key: /k.pub\n    - provider: rir\n", "the only source of a node"),
        ("    - url: http://127.0.0.1:1/x.csv\n      public-key: /k.pub\n", "public-key belongs to a trie: source"),
    ])
    func aNodeConfigIsChecked(sources: String, reason: String) throws {
        let s = try RefreshScratch(sources: sources)
        let (status, log) = s.refresh()
        #expect(status == 2 && log.contains(reason), "\(log)")
    }
}
