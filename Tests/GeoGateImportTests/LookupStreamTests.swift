import Foundation
import Testing
@testable import GeoGateCore
@testable import GeoGateTrie

/// `geogate lookup` as a stream: the answers of large inputs across read and batch
/// boundaries, fields of log lines, JSON, and every kind of bad line.
@Suite(.serialized) struct LookupStreaming {
    /// `geogate ARGS < file`: large inputs go through a file, not a pipe the test
    /// would have to write and read at once.
    func geogate(_ arguments: [String], stdinFile: String) throws -> CommandResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: geogateBinary)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle(forReadingAtPath: stdinFile)
        try process.run()
        let stdoutData = out.fileHandleForReading.readDataToEndOfFile()
        let stderrData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CommandResult(status: process.terminationStatus, stdout: String(decoding: stdoutData, as: UTF8.self),
                             stderr: String(decoding: stderrData, as: UTF8.self))
    }

    func sampleTrie(_ dir: TemporaryDirectory) throws -> String {
        let input = dir.write("sample.csv", "81.2.69.0,81.2.69.255,GB\n5.1.0.0,5.1.3.255,CH\n2001:620::,2001:627:ffff:ffff:ffff:ffff:ffff:ffff,CH\n2a02:26f0::,2a02:26f0:ffff:ffff:ffff:ffff:ffff:ffff,IT\n")
        let trie = dir.path + "/c.trie"
        #expect(try CommandLineTests.geogate(["compile", input, "-o", trie, "--build-time", "1"]).status == 0)
        return trie
    }

    /// 300,000 lines (several reads and many batches) of both families in every
    /// textual form, against the trie answered one address at a time in this process.
    @Test func aLargeStreamAnswersAsSingleLookups() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let data = EmbeddedDataset.shared
        let triePath = dir.write("embedded.trie", bytes: try TrieWriter.bytes(v4: data.dataset.v4, v6: data.dataset.v6, sources: [], buildTime: 0))
        var rng = SystemRandomNumberGenerator()
        var text = "", expected = ""
        let view = data.trie.view
        for i in 0..<300_000 {
            let address: IPAddress
            var shown: String
            if i % 2 == 0 {
                address = IPAddress(v4: UInt32(truncatingIfNeeded: rng.next()))
                shown = address.description
            } else {
                let r = data.dataset.v6.ranges[Int(rng.next() % UInt64(data.dataset.v6.ranges.count))]
                let span = r.end - r.start
                let random = UInt128(rng.next()) << 64 | UInt128(rng.next())
                address = IPAddress(family: .v6, value: r.start + (span == .max ? random : random % (span + 1)))
                shown = address.description
                switch i % 6 {
                case 1: shown = shown.uppercased()
                case 3:  // every group written out in full, with leading zeros
                    shown = (0..<8).map { g in
                        let group = UInt16(truncatingIfNeeded: address.value >> UInt128((7 - g) * 16))
                        let hex = String(group, radix: 16)
                        return String(repeating: "0", count: 4 - hex.count) + hex
                    }.joined(separator: ":")
                default: break
                }
            }
            text += (i % 7 == 0 ? " \t" : "") + shown + (i % 5 == 0 ? "\r\n" : "\n")
            expected += "\(shown) \(view.country(of: address)?.description ?? "--")\n"
        }
        let input = dir.write("addresses", text)
        let result = try geogate(["lookup", "--db", triePath], stdinFile: input)
        #expect(result.status == 0, "\(result.stderr.prefix(500))")
        #expect(result.stdout.count == expected.count)
        if result.stdout != expected {
            let got = result.stdout.split(separator: "\n"), want = expected.split(separator: "\n")
            if let i = (0..<min(got.count, want.count)).first(where: { got[$0] != want[$0] }) { Issue.record("line \(i + 1): \(got[i]) != \(want[i])") }
        }
    }

    /// The fast IPv6 path accepts exactly what the full parser accepts, and answers the same.
    @Test func textualFormsAgreeWithTheFullParser() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let trie = try sampleTrie(dir)
        let forms = ["::", "::1", "1::", "2001:620::1", "2001:0620:0000:0000:0000:0000:0000:0001", "2001:620:0:0:0:0:0:1",
                     "2A02:26F0::A", "2a02:26f0:1:2:3:4:5:6", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "2a02:26f0::",
                     "::ffff:81.2.69.1", "::ffff:5.1.0.9", "64:ff9b::81.2.69.1",
                     // Not addresses:
                     "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "2001:db8::%eth0", "1:2:3:4:5:6:7:", ":1::", "1:::2",
                     "g::", "2001:620::1/64", "::1 ", "2001:620:", "2001:620::1.", "1:2:3:4:5:6:7:8::", "::1:2:3:4:5:6:7:8",
                     "0:0:0:0:0:0:0", "fffff::", "2001:620:::"]
        let result = try geogate(["lookup", "--db", trie], stdinFile: dir.write("forms", forms.joined(separator: "\n") + "\n"))
        let file = try TrieFile(path: trie)
        defer { withExtendedLifetime(file) {} }
        let view = file.view
        var expectedOut = "", expectedErrors = 0
        for (i, form) in forms.enumerated() {
            let trimmed = form.trimmingCharacters(in: .whitespaces)
            if let a = IPAddress(trimmed) {
                expectedOut += "\(trimmed) \(view.country(of: a)?.description ?? "--")\n"
            } else {
                expectedErrors += 1
                #expect(result.stderr.contains("stdin:\(i + 1): not an IP address"), "\(form) must be refused")
            }
        }
        #expect(result.stdout == expectedOut)
        #expect(result.stderr.split(separator: "\n").count == expectedErrors)
        #expect(result.status == 1)
    }

    /// A log's address column: nginx (field 1, blank-separated) and Asterisk's security
    /// log (the remote address between slashes), the line printed with its country.
    @Test func fieldsOfLogLines() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let trie = try sampleTrie(dir)
        let nginx = dir.write("access.log", """
            81.2.69.7 - - [28/Nov/2026:03:12:44 +0000] "GET /login HTTP/1.1" 200 512 "-" "curl/8.5"
            2a02:26f0::9  -  - [28/Nov/2026:03:12:45 +0000] "POST /login HTTP/1.1" 401 0 "-" "x"

            - - - broken line
            192.0.2.1
            """)
        let a = try geogate(["lookup", "--db", trie, "--field", "1"], stdinFile: nginx)
        #expect(a.stdout == """
            81.2.69.7 - - [28/Nov/2026:03:12:44 +0000] "GET /login HTTP/1.1" 200 512 "-" "curl/8.5" GB
            2a02:26f0::9  -  - [28/Nov/2026:03:12:45 +0000] "POST /login HTTP/1.1" 401 0 "-" "x" IT
            192.0.2.1 --

            """)
        #expect(a.stderr == "geogate: stdin:4: not an IP address: '-'\n")
        #expect(a.status == 1)

        let fourth = try geogate(["lookup", "--db", trie, "--field", "4"], stdinFile: nginx)
        #expect(fourth.stderr.contains("stdin:5: no field 4"))

        let security = dir.write("security", """
            [2026-11-28 03:12:44] SECURITY[812] res_security_log.c: SecurityEvent="InvalidPassword",Service="PJSIP",LocalAddress="IPV4/UDP/10.0.0.5/5060",RemoteAddress="IPV4/UDP/5.1.2.3/5060"
            [2026-11-28 03:12:45] SECURITY[812] res_security_log.c: SecurityEvent="ChallengeSent",Service="PJSIP",LocalAddress="IPV6/UDP/2001:db8::5/5060",RemoteAddress="IPV6/UDP/2001:620::77/5060"

            """)
        let b = try geogate(["lookup", "--db", trie, "--field", "6", "--delimiter", "/"], stdinFile: security)
        #expect(b.status == 0, "\(b.stderr)")
        #expect(b.stdout.split(separator: "\n").map { $0.suffix(3) } == ["/CH", "/CH"])
    }

    @Test func jsonLines() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let trie = try sampleTrie(dir)
        let plain = try geogate(["lookup", "--db", trie, "--json"], stdinFile: dir.write("a", "81.2.69.1\n192.0.2.1\n"))
        #expect(plain.stdout == "{\"ip\":\"81.2.69.1\",\"country\":\"GB\"}\n{\"ip\":\"192.0.2.1\",\"country\":null}\n")
        // With a field: the line as a JSON string, whatever bytes it holds.
        let raw: [UInt8] = Array("5.1.0.1,\"quoted\" back\\slash tab\tbell".utf8) + [0x07, 0xFF] + Array("é\n".utf8)
        let line = try geogate(["lookup", "--db", trie, "--json", "--field", "1", "--delimiter", ","],
                               stdinFile: dir.write("b", bytes: raw))
        #expect(line.stdout == "{\"line\":\"5.1.0.1,\\\"quoted\\\" back\\\\slash tab\\u0009bell\\u0007\u{FFFD}é\",\"ip\":\"5.1.0.1\",\"country\":\"CH\"}\n")
        let parsed = try JSONSerialization.jsonObject(with: Data(line.stdout.utf8)) as? [String: Any]
        #expect(parsed?["country"] as? String == "CH")
    }

    /// Bounded memory: a line past 64 KiB is reported and skipped, never kept; the
    /// lines around it are answered, and bad lines never stop the stream.
    @Test func overlongAndBadLines() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let trie = try sampleTrie(dir)
        let long = String(repeating: "9", count: 200_000)
        let input = dir.write("long", "81.2.69.1\n\(long)\n5.1.0.1\nnot\u{1B}[31m-an-ip\n2001:620::1")
        let result = try geogate(["lookup", "--db", trie], stdinFile: input)
        #expect(result.stdout == "81.2.69.1 GB\n5.1.0.1 CH\n2001:620::1 CH\n")
        #expect(result.stderr.contains("stdin:2: line longer than 65536 bytes, skipped"))
        #expect(result.stderr.contains("stdin:4: not an IP address: 'not\\x1b[31m-an-ip'"), "escaped: \(result.stderr)")
        #expect(result.status == 1)
        let usage = try CommandLineTests.geogate(["lookup", "--db", trie, "--delimiter", "ab", "--field", "1"])
        #expect(usage.status == 2, "\(usage)")
        #expect(try CommandLineTests.geogate(["lookup", "--db", trie, "--field", "0"]).status != 0)
    }
}

/// The file-level `geogate` helper, reachable from a suite that has a method of that name.
enum CommandLineTests {
    static func geogate(_ arguments: [String]) throws -> CommandResult {
        try GeoGateImportTests.geogate(arguments)
    }
}
