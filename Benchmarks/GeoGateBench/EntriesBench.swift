import ArgumentParser
import GeoGateCore
import GeoGatePolicy
#if canImport(Glibc)
import Glibc
#endif

/// `entries --socket S --profile P --set NAME`: how long a run-time block takes to
/// reach the kernel. The daemon answers a BLOCK only after the kernel's run-time
/// set was swapped, so the request's round trip is that time. Measured against
/// what fail2ban's ipset action does for one ban, `ipset add NAME IP timeout N
/// -exist` run as a command, in alternating rounds (each a BLOCK then an UNLIST, or
/// an add then a del), from inside the daemon's network namespace (run.sh).
struct EntriesBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "entries")
    @Option(help: "The daemon's socket.") var socket: String
    @Option(help: "The full-server profile.") var profile: String
    @Option(help: "The reference: a hash:net set with timeouts for `ipset add`.") var set: String
    @Option(help: "Changes per side (each a block and its removal).") var count = 100
    @Option(help: "The first of the addresses used (counting up).") var base = "198.18.0.1"

    func run() throws {
        guard let first = IPAddress(base), first.family == .v4 else { throw ValidationError("--base is an IPv4 address") }
        let fd = try UnixSocketClient.connect(socket, timeoutSeconds: 30)
        defer { close(fd) }
        var geogate: [Double] = [], ipset: [Double] = []
        var failures = 0
        for i in 0..<count {
            let address = IPAddress.format(first.value + UInt128(i), family: .v4)
            for request in ["BLOCK \(profile) \(address) 600 bench", "UNLIST \(profile) \(address)"] {
                let start = now()
                let answer = try ask(fd, request)
                geogate.append(now() - start)
                if !answer.hasPrefix("OK") { failures += 1; if failures == 1 { print("refused: \(answer)") } }
            }
            for args in [["add", set, address, "timeout", "600", "-exist"], ["del", set, address, "-exist"]] {
                let start = now()
                guard let pid = ChildProcess.spawn("/usr/sbin/ipset", args, stdout: "/dev/null", stderr: "/dev/null"),
                      ChildProcess.wait(pid) == 0 else { throw ValidationError("ipset \(args.joined(separator: " ")) failed") }
                ipset.append(now() - start)
            }
        }
        func ms(_ v: Double) -> String { format(v * 1000) }
        let g = geogate.sorted(), r = ipset.sorted()
        print("geogate block/unlist to the kernel: median \(ms(median(g))) ms, p90 \(ms(g[g.count * 9 / 10])) ms (\(g.count) changes)")
        print("ipset add/del command: median \(ms(median(r))) ms, p90 \(ms(r[r.count * 9 / 10])) ms (\(r.count) changes)")
        print("failed: \(failures)")
    }

    /// One request line on the open connection, its answer line.
    func ask(_ fd: Int32, _ request: String) throws -> String {
        let line = Array((request + "\n").utf8)
        guard line.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == line.count else { throw ValidationError("write failed") }
        var answer: [UInt8] = []
        var byte: UInt8 = 0
        while read(fd, &byte, 1) == 1 {
            if byte == 0x0A { return String(decoding: answer, as: UTF8.self) }
            answer.append(byte)
        }
        throw ValidationError("the daemon closed the connection")
    }
}

/// `entries-file --profile P --count N -o FILE`: a run-time entries file of N
/// block entries (single IPv4 addresses from 198.18.0.0/15 on, a day each), for
/// the memory and the timing at a given size.
struct EntriesFile: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "entries-file")
    @Option(help: "The profile.") var profile: String
    @Option(help: "Entries.") var count: Int
    @Option(name: .shortAndLong, help: "The entries file to write.") var output: String

    func run() throws {
        let now = Int64(time(nil))
        let base = IPAddress("198.18.128.0")!.value
        let entries = (0..<count).map { i in
            RuntimeEntry(action: .block, profile: profile, network: CIDR(family: .v4, address: base + UInt128(i), prefixLength: 32),
                         expires: now + 86400, added: now, uid: 0, reason: "bench entry \(i)")
        }
        try RuntimeEntries(entries).save(path: output)
    }
}
