import Foundation
import Testing

func geogate(_ arguments: [String], stdin: String? = nil, environment: [String: String]? = nil,
             directory: String? = nil) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: geogateBinary)
    process.arguments = arguments
    if let environment { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let out = Pipe(), err = Pipe(), input = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = input
    try process.run()
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try input.fileHandleForWriting.close()
    let stdoutData = out.fileHandleForReading.readDataToEndOfFile()
    let stderrData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus, stdout: String(decoding: stdoutData, as: UTF8.self),
                         stderr: String(decoding: stderrData, as: UTF8.self))
}

/// The CLI as a user drives it: exit statuses, messages, and the never-partial output.
@Suite(.serialized) struct CommandLineInterface {
    /// `geogate ARGS` under Scripts/peak-memory.py: peak resident KiB, status, seconds, stderr.
    func measured(_ arguments: [String], in dir: TemporaryDirectory) throws -> (kib: Int, status: Int, seconds: Double, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [repositoryRoot + "/Scripts/peak-memory.py", geogateBinary] + arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle(forWritingAtPath: dir.write("measured.err", ""))
        try process.run()
        let line = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let f = line.split(separator: " ")
        let stderr = (try? String(contentsOfFile: dir.path + "/measured.err", encoding: .utf8)) ?? ""
        return (Int(f[0]) ?? -1, Int(f[1]) ?? -1, Double(f[2].trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1, stderr)
    }

    /// Finding 5: a gzip bomb (1 GiB of zeros in ten gzip members, 1 MB on disk) is
    /// refused as soon as it inflates past the input limit, in seconds and far under
    /// 300 MB; the embedded dataset compiles under 300 MB too.
    @Test func aDecompressionBombIsRefusedQuicklyWithinMemory() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let made = Process()
        made.executableURL = URL(fileURLWithPath: "/bin/bash")
        made.arguments = ["-c", "cd \(dir.path) && head -c 100M /dev/zero | gzip -1 > part.gz && for i in $(seq 10); do cat part.gz; done > bomb.gz"]
        try made.run()
        made.waitUntilExit()
        try #require(made.terminationStatus == 0)
        let bomb = try measured(["compile", dir.path + "/bomb.gz", "-o", dir.path + "/x.trie"], in: dir)
        #expect(bomb.status == 1, "\(bomb.stderr)")
        #expect(bomb.stderr.contains("bomb.gz: gzip data expands to over 64 MiB, the input limit"), "\(bomb.stderr)")
        #expect(withinMemoryBound(bomb.kib), "peak \(bomb.kib) KiB")
        #expect(bomb.seconds < 10, "\(bomb.seconds) s")
        print("bomb: VmHWM \(bomb.kib) KiB, \(bomb.seconds) s")
        let embedded = try measured(["compile", "-q", "-o", dir.path + "/e.trie"], in: dir)
        #expect(embedded.status == 0, "\(embedded.stderr)")
        #expect(withinMemoryBound(embedded.kib), "peak \(embedded.kib) KiB")
        print("embedded dataset: VmHWM \(embedded.kib) KiB, \(embedded.seconds) s")
        // The worst inputs under the default limits: the most ranges a 64 MiB text can
        // hold (2.4 million IPv4 /32s: refused by the range limit), the range limit
        // itself (1.5 million: compiled), and scattered IPv6 host routes that need more
        // trie nodes than the node limit allows (refused): all far under 300 MB.
        let gen = Process()
        gen.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        gen.arguments = ["-c", """
            import random
            cc = ['AU', 'CN', 'IT', 'DE']
            with open('\(dir.path)/dense.csv', 'w') as o:
                size = i = 0
                while size < 63 * 1024 * 1024:
                    v = 16777216 + i * 2
                    line = f'{v>>24}.{(v>>16)&255}.{(v>>8)&255}.{v&255},{v>>24}.{(v>>16)&255}.{(v>>8)&255}.{v&255},{cc[i%4]}\\n'
                    o.write(line); size += len(line); i += 1
            random.seed(3)
            with open('\(dir.path)/scattered6.csv', 'w') as o:
                for i, s in enumerate(sorted(set(random.getrandbits(125) for _ in range(200000)))):
                    v = (1 << 125) | s
                    a = ':'.join('%x' % ((v >> (112 - 16 * k)) & 0xffff) for k in range(8))
                    o.write(f'{a},{a},{cc[i%4]}\\n')
            """]
        try gen.run()
        gen.waitUntilExit()
        try #require(gen.terminationStatus == 0)
        let dense = try measured(["compile", dir.path + "/dense.csv", "-o", dir.path + "/d.trie"], in: dir)
        #expect(dense.status == 1 && dense.stderr.contains("over the range limit of 1500000"), "\(dense.stderr)")
        #expect(withinMemoryBound(dense.kib), "peak \(dense.kib) KiB")
        let head = Process()
        head.executableURL = URL(fileURLWithPath: "/bin/bash")
        head.arguments = ["-c", "head -n 1500000 \(dir.path)/dense.csv > \(dir.path)/cap.csv"]
        try head.run()
        head.waitUntilExit()
        let cap = try measured(["compile", dir.path + "/cap.csv", "-o", dir.path + "/c.trie"], in: dir)
        #expect(cap.status == 0, "\(cap.stderr)")
        #expect(withinMemoryBound(cap.kib), "peak \(cap.kib) KiB")
        let scattered = try measured(["compile", dir.path + "/scattered6.csv", "-o", dir.path + "/s.trie"], in: dir)
        #expect(scattered.status == 1 && scattered.stderr.contains("needs more than 500000 trie nodes"), "\(scattered.stderr)")
        #expect(withinMemoryBound(scattered.kib), "peak \(scattered.kib) KiB")
        print("range limit: refused at VmHWM \(dense.kib) KiB, compiled at the limit with \(cap.kib) KiB; node limit: refused at \(scattered.kib) KiB")

        // A larger limit is the admin's to give.
        let allowed = try measured(["compile", dir.path + "/bomb.gz", "-o", dir.path + "/x.trie", "--max-input-mb", "2"], in: dir)
        #expect(allowed.stderr.contains("over 2 MiB"), "\(allowed.stderr)")
    }

    @Test func compileLookupExportInfo() throws {
        try #require(FileManager.default.isExecutableFile(atPath: geogateBinary), "build the geogate product first")
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let input = dir.write("sample.csv", "81.2.69.0,81.2.69.255,GB\n5.1.0.0,5.1.3.255,CH\n2001:620::,2001:627:ffff:ffff:ffff:ffff:ffff:ffff,CH\n")
        let trie = dir.path + "/c.trie"
        let compiled = try geogate(["compile", input, "-o", trie, "--build-time", "1700000000"])
        #expect(compiled.status == 0, "\(compiled.stderr)")
        #expect(compiled.stderr.contains("wrote \(trie)"))

        let lookup = try geogate(["lookup", "--db", trie, "81.2.69.160", "::ffff:81.2.69.160", "2001:620::1", "10.0.0.1"])
        #expect(lookup.status == 0)
        #expect(lookup.stdout == "81.2.69.160 GB\n::ffff:81.2.69.160 GB\n2001:620::1 CH\n10.0.0.1 --\n")

        let fromStdin = try geogate(["lookup", "--db", trie], stdin: "5.1.2.3\nnot-an-ip\n\n8.8.8.8\n")
        #expect(fromStdin.stdout == "5.1.2.3 CH\n8.8.8.8 --\n")
        #expect(fromStdin.stderr.contains("stdin:2: not an IP address: 'not-an-ip'"))
        #expect(fromStdin.status == 1)

        let export = try geogate(["export", "--db", trie, "--country", "ch"])
        #expect(export.stdout == "5.1.0.0/22\n2001:620::/29\n")
        let export6 = try geogate(["export", "--db", trie, "--country", "CH", "--family", "6"])
        #expect(export6.stdout == "2001:620::/29\n")

        let info = try geogate(["info", "--db", trie])
        #expect(info.stdout.contains("built: 2023-11-14T22:13:20Z (1700000000)"))
        #expect(info.stdout.contains("sample.csv dbip-csv"))
        #expect(info.stdout.contains("ipv4: 2 ranges, 1280 addresses"))
        #expect(info.stdout.contains("countries: 2"))
    }

    @Test func aFailedCompileLeavesTheOldFileUntouched() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let good = dir.write("good.csv", "1.0.0.0,1.0.0.255,AU\n")
        let bad = dir.write("bad.csv", "1.0.0.0,1.0.0.255,AU\n2.0.0.0,2.0.0.255,UX\n")
        let trie = dir.path + "/c.trie"
        #expect(try geogate(["compile", good, "-o", trie]).status == 0)
        let before = try Data(contentsOf: URL(fileURLWithPath: trie))
        let failed = try geogate(["compile", bad, "-o", trie])
        #expect(failed.status == 1)
        #expect(failed.stderr.contains("bad.csv:2: field 3: unknown country code 'UX'"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: trie)) == before)
        // No temporary files are left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["bad.csv", "c.trie", "good.csv"])
    }

    @Test func aCorruptTrieIsAClearErrorWithStatus2() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let good = dir.write("good.csv", "1.0.0.0,1.0.0.255,AU\n")
        let trie = dir.path + "/c.trie"
        #expect(try geogate(["compile", good, "-o", trie]).status == 0)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: trie)))
        bytes[bytes.count / 2] ^= 0x40
        let corrupt = dir.write("corrupt.trie", bytes: bytes)
        let result = try geogate(["lookup", "--db", corrupt, "1.0.0.1"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("corrupt.trie: checksum mismatch"))
        let cut = dir.write("cut.trie", bytes: Array(bytes.prefix(1000)))
        let truncated = try geogate(["info", "--db", cut])
        #expect(truncated.status == 2)
        #expect(truncated.stderr.contains("cut.trie: truncated"))
        let missing = try geogate(["info", "--db", dir.path + "/none.trie"])
        #expect(missing.status == 2 && missing.stderr.contains("cannot open"))
    }

    /// Usage errors exit 2, as README says (the argument parser's own default is 64).
    @Test func usageErrorsExit2() throws {
        for args in [["export", "--db", "x", "--country", "UX"], ["compile", "-o", "/tmp/x", "--format", "nonsense"],
                     ["lookup", "--no-such-flag"], ["export", "--db", "x"], ["frobnicate"],
                     ["check", "--socket", "/x", "--config", "/y", "--profile", "web", "1.2.3.4"],
                     ["apply", "--open", "--boot"], ["sets", "--format", "pf"]] {
            let r = try geogate(args)
            #expect(r.status == 2, "\(args): \(r.status) \(r.stderr)")
            #expect(r.stderr.contains("Usage:") || r.stderr.contains("Error:"), "\(args): \(r.stderr)")
        }
        let help = try geogate(["--help"])
        #expect(help.status == 0)
        for verb in ["compile", "lookup", "info", "export", "sets", "apply", "check", "serve", "refresh", "rollback"] {
            #expect(help.stdout.contains(verb))
        }
        let version = try geogate(["--version"])
        #expect(version.status == 0 && version.stdout.range(of: #"^\d+\.\d+\.\d+\n$"#, options: .regularExpression) != nil, "\(version.stdout)")
    }

    /// With no --config/--db/--socket, every command reads $GEOGATE_CONFIG (the
    /// package's /etc/geogate/geogate.conf otherwise): database: is the trie.
    @Test func theConfigNamesTheDefaults() throws {
        let dir = try TemporaryDirectory()
        let trie = dir.path + "/countries.trie"
        #expect(try geogate(["compile", "-q", "-o", trie]).status == 0)
        let conf = dir.path + "/geogate.conf"
        try """
            database: \(trie)
            profiles:
              web:
                scope: web-only
                allow-countries: [GB]
              full:
                scope: full-server
                allow-countries: [IT]
            """.write(toFile: conf, atomically: true, encoding: .utf8)
        let env = ["GEOGATE_CONFIG": conf]
        let lookup = try geogate(["lookup", "81.2.69.160"], environment: env)
        #expect(lookup.status == 0 && lookup.stdout == "81.2.69.160 GB\n", "\(lookup)")
        #expect(try geogate(["info"], environment: env).stdout.contains("file: \(trie)"))
        #expect(try geogate(["export", "--country", "IT", "--family", "4"], environment: env).stdout.contains("/"))
        #expect(try geogate(["sets", "--format", "ipset"], environment: env).stdout.contains("create geogate-full-v4"))
        let allowed = try geogate(["check", "--profile", "web", "81.2.69.160"], environment: env)
        #expect(allowed.status == 0 && allowed.stdout.hasPrefix("ALLOW GB"), "\(allowed)")
        let denied = try geogate(["check", "--profile", "web", "8.8.8.8"], environment: env)
        #expect(denied.status == 1 && denied.stdout.hasPrefix("DENY"), "\(denied)")
        // --config beats the environment; --db beats the config's database:.
        let other = dir.path + "/other.conf"
        try "database: \(dir.path)/missing.trie\nprofiles:\n  web:\n    scope: web-only\n    allow-countries: [US]\n"
            .write(toFile: other, atomically: true, encoding: .utf8)
        #expect(try geogate(["check", "--config", other, "--db", trie, "--profile", "web", "8.8.8.8"], environment: env).status == 0)
        #expect(try geogate(["lookup", "--config", other, "1.1.1.1"], environment: env).status == 2)
        // No config where it is looked for: exit 2, naming the file and the ways out.
        let none = try geogate(["lookup", "1.1.1.1"], environment: ["GEOGATE_CONFIG": dir.path + "/nope.conf"])
        #expect(none.status == 2 && none.stderr.contains("nope.conf") && none.stderr.contains("--db"), "\(none)")
        let check = try geogate(["check", "--profile", "web", "1.1.1.1"], environment: ["GEOGATE_CONFIG": dir.path + "/nope.conf"])
        #expect(check.status == 2 && check.stderr.contains("nope.conf"), "\(check)")
    }

    /// Each exit status README documents, command by command (apply's 1 and
    /// refresh's 0/1/3 need a kernel or a server: Kernel and Refresh tests).
    @Test func everyDocumentedExitStatus() throws {
        let dir = try TemporaryDirectory()
        let trie = dir.path + "/t.trie"
        #expect(try geogate(["compile", "-q", "-o", trie]).status == 0)
        try "1.2.3.4,1.2.3.9,IT\nnot a line\n".write(toFile: dir.path + "/bad.csv", atomically: true, encoding: .utf8)
        #expect(try geogate(["compile", "-q", dir.path + "/bad.csv", "-o", dir.path + "/x.trie"]).status == 1, "bad input: 1")
        #expect(try geogate(["lookup", "--db", trie], stdin: "1.1.1.1\nnope\n").status == 1, "a bad line: 1")
        #expect(try geogate(["info", "--db", dir.path + "/bad.csv"]).status == 2, "not a trie: 2")
        let conf = dir.path + "/c.conf"
        try "database: \(trie)\nruntime-dir: \(dir.path)/run\nstate-dir: \(dir.path)/state\nprofiles:\n  web:\n    scope: web-only\n    allow-countries: [GB]\n"
            .write(toFile: conf, atomically: true, encoding: .utf8)
        #expect(try geogate(["check", "--config", conf, "--profile", "web", "81.2.69.160"]).status == 0)
        #expect(try geogate(["check", "--config", conf, "--profile", "web", "8.8.8.8"]).status == 1)
        #expect(try geogate(["check", "--config", conf, "--profile", "nope", "8.8.8.8"]).status == 2)
        #expect(try geogate(["check", "--socket", dir.path + "/none.sock", "--profile", "web", "8.8.8.8"]).status == 2)
        try "profiles: [\n".write(toFile: dir.path + "/broken.conf", atomically: true, encoding: .utf8)
        for verb in [["refresh"], ["rollback"], ["apply"], ["sets", "--format", "nft"], ["serve"]] {
            let r = try geogate(verb + ["--config", dir.path + "/broken.conf"])
            #expect(r.status == 2, "\(verb) with a broken config: \(r.status) \(r.stderr)")
        }
        #expect(try geogate(["apply", "--config", conf, "--profile", "web"]).status == 2, "a web-only profile has no set: 2")
        #expect(try geogate(["rollback", "--config", conf]).status == 1, "nothing to roll back to: 1")
    }
}
