import ArgumentParser
import CMaxMindDB
import GeoGateCore
import GeoGateTrie
#if canImport(Glibc)
import Glibc
#endif

/// geogate-bench: performance figures measured side by side with the reference in
/// one run, reported as ratios (see Benchmarks/README.md and Benchmarks/run.sh).
@main
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "geogate-bench",
        abstract: "geogate benchmarks, measured against their reference in the same run.",
        subcommands: [LookupBench.self, Queries.self, OpenBench.self, SetsBench.self, IPSetLoadBench.self, LoadBench.self, FloorServer.self,
                      EntriesBench.self, EntriesFile.self])
}

/// `lookup --db FILE --queries FILE [--mmdb FILE]`: lookups per second, geogate and
/// libmaxminddb (MMDB_lookup_sockaddr + country.iso_code) on the same addresses.
struct LookupBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "lookup")

    @Option(help: "The trie file.") var db: String
    @Option(help: "Addresses, one a line.") var queries: String
    @Option(help: "An MMDB made from the same data, for the libmaxminddb reference.") var mmdb: String?
    @Option(help: "Timed rounds per side (the median is reported).") var rounds = 7

    func run() throws {
        let addresses = try readAddresses(queries)
        guard !addresses.isEmpty else { throw ValidationError("\(queries): no addresses") }
        let trie = try TrieFile(path: db)
        let view = trie.view

        // Each round runs every query; the checksum keeps the work from being optimised away.
        func geogateRound() -> (Double, UInt64) {
            var sum: UInt64 = 0
            let start = now()
            addresses.withUnsafeBufferPointer { list in
                for a in list { sum &+= UInt64(view.countryIndex(of: a)) }
            }
            return (now() - start, sum)
        }

        // The batch API over the same addresses, in the form a caller of one family
        // holds them (4 or 16 bytes each; `IPAddress` for a mixed list).
        var answers = [UInt16](repeating: 0, count: addresses.count)
        let v4 = addresses.allSatisfy { $0.family == .v4 } ? addresses.map { UInt32(truncatingIfNeeded: $0.value) } : nil
        let v6 = addresses.allSatisfy { $0.family == .v6 } ? addresses.map(\.value) : nil
        func batchedRound() -> (Double, UInt64) {
            let start = now()
            answers.withUnsafeMutableBufferPointer { out in
                if let v4 { v4.withUnsafeBufferPointer { view.countryIndexes(ipv4: $0, into: out) } }
                else if let v6 { v6.withUnsafeBufferPointer { view.countryIndexes(ipv6: $0, into: out) } }
                else { addresses.withUnsafeBufferPointer { view.countryIndexes(of: $0, into: out) } }
            }
            let t = now() - start
            var sum: UInt64 = 0
            for a in answers { sum &+= UInt64(a) }
            return (t, sum)
        }

        var reference: MMDBReference?
        if let mmdb { reference = try MMDBReference(path: mmdb, addresses: addresses) }
        defer { reference?.close() }

        var geogateTimes: [Double] = [], batchedTimes: [Double] = [], mmdbTimes: [Double] = []
        var sink: UInt64 = 0
        _ = geogateRound()  // warm up
        _ = batchedRound()
        if let reference { _ = reference.round() }
        for _ in 0..<rounds {
            let (t, s) = geogateRound()
            geogateTimes.append(t)
            sink &+= s
            let (tb, sb) = batchedRound()
            batchedTimes.append(tb)
            guard sb == s else { throw ValidationError("batched and single lookups answered differently") }
            if let reference {
                let (t2, s2) = reference.round()
                mmdbTimes.append(t2)
                sink &+= s2
            }
        }
        let geogateRate = Double(addresses.count) / median(geogateTimes) / 1e6
        let batchedRate = Double(addresses.count) / median(batchedTimes) / 1e6
        print("queries: \(addresses.count) from \(queries)")
        print("geogate: \(format(geogateRate)) M lookups/s")
        print("geogate batched: \(format(batchedRate)) M lookups/s (\(format(batchedRate / geogateRate))x single)")
        if let reference {
            let mmdbRate = Double(addresses.count) / median(mmdbTimes) / 1e6
            print("libmaxminddb: \(format(mmdbRate)) M lookups/s")
            print("ratio: \(format(geogateRate / mmdbRate))")
            print("batched ratio: \(format(batchedRate / mmdbRate))")
            // Both sides must have answered the same thing.
            let (aliased, other) = reference.disagreements(with: view)
            print("answers differing from libmaxminddb: \(other)")
            if aliased > 0 {
                print("  (and \(aliased) in 2001::/32 and 2002::/16, which the MMDB aliases to IPv4: expected)")
            }
        }
        // Printing the checksum keeps every lookup's result observable.
        print("checksum: \(sink)")
    }
}

/// libmaxminddb on pre-built socket addresses, so only the lookup and the
/// country.iso_code read are timed. They are stored as `sockaddr_in6` (28 bytes, an
/// IPv4 `sockaddr_in` in its first 16) rather than `sockaddr_storage` (128 bytes),
/// so the reference streams no more memory than it needs.
final class MMDBReference {
    var db = MMDB_s()
    var storage: [sockaddr_in6]
    let addresses: [IPAddress]

    init(path: String, addresses: [IPAddress]) throws {
        let status = MMDB_open(path, UInt32(MMDB_MODE_MMAP), &db)
        guard status == MMDB_SUCCESS else { throw ValidationError("\(path): \(String(cString: MMDB_strerror(status)))") }
        self.addresses = addresses
        storage = addresses.map { address in
            var compact = sockaddr_in6()
            withUnsafeBytes(of: address.socketAddress) { full in
                withUnsafeMutableBytes(of: &compact) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: full.prefix($0.count))) }
            }
            return compact
        }
    }

    func close() { MMDB_close(&db) }

    /// One lookup: the two bytes of country.iso_code packed, or 0.
    @inline(__always)
    func lookup(_ i: Int) -> UInt16 {
        var error: Int32 = 0
        var result = storage.withUnsafeBufferPointer { list in
            withUnsafePointer(to: list[i]) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { MMDB_lookup_sockaddr(&db, $0, &error) }
            }
        }
        guard error == MMDB_SUCCESS, result.found_entry else { return 0 }
        var data = MMDB_entry_data_s()
        let status = countryPath.withUnsafeMutableBufferPointer { MMDB_aget_value(&result.entry, &data, $0.baseAddress) }
        guard status == MMDB_SUCCESS, data.has_data, data.type == UInt32(MMDB_DATA_TYPE_UTF8_STRING), data.data_size == 2 else { return 0 }
        return UInt16(UInt8(bitPattern: data.utf8_string[0])) << 8 | UInt16(UInt8(bitPattern: data.utf8_string[1]))
    }

    func round() -> (Double, UInt64) {
        var sum: UInt64 = 0
        let start = now()
        for i in 0..<storage.count { sum &+= UInt64(lookup(i)) }
        return (now() - start, sum)
    }

    /// Differing answers: in the networks an MMDB aliases to IPv4 (Teredo, 6to4),
    /// where geogate answers from the data as given, and elsewhere (a real bug).
    func disagreements(with view: TrieView) -> (aliased: Int, other: Int) {
        var aliased = 0, other = 0
        for i in 0..<addresses.count {
            let ours = view.countryCode(index: view.countryIndex(of: addresses[i]))?.rawValue ?? 0
            guard ours != lookup(i) else { continue }
            if addresses[i].isInIPv4TunnelPrefix { aliased += 1 } else { other += 1 }
        }
        return (aliased, other)
    }
}

/// "country", "iso_code", NULL for MMDB_aget_value; static storage, never freed.
nonisolated(unsafe) var countryPath: [UnsafePointer<CChar>?] = [
    UnsafePointer(strdup("country")), UnsafePointer(strdup("iso_code")), nil,
]

/// `queries --db FILE --family 4|6 --mode uniform|allocated --count N -o FILE`:
/// writes query addresses. `uniform` draws from the whole family (for IPv6, from
/// 2000::/3); `allocated` picks a range of the trie with a country, then an address
/// inside it.
struct Queries: ParsableCommand {
    @Option(help: "The trie file (its ranges are sampled).") var db: String
    @Option(help: "4 or 6.") var family: Int
    @Option(help: "uniform or allocated.") var mode: String
    @Option(help: "How many addresses.") var count = 1_000_000
    @Option(help: "Random seed.") var seed: UInt64 = 1
    @Option(name: .shortAndLong, help: "Output file.") var output: String

    func run() throws {
        let trie = try TrieFile(path: db)
        let fam: IPFamily = family == 4 ? .v4 : .v6
        let ranges = trie.rangeMap(fam).ranges
        var rng = SplitMix64(seed: seed)
        var text = ""
        text.reserveCapacity(count * 24)
        for _ in 0..<count {
            let value: UInt128
            switch mode {
            case "uniform":
                value = fam == .v4 ? UInt128(UInt32(truncatingIfNeeded: rng.next()))
                                   : (UInt128(rng.next()) << 64 | UInt128(rng.next())) >> 3 | UInt128(1) << 125
            case "allocated":
                let r = ranges[Int(rng.next() % UInt64(ranges.count))]
                let span = r.end - r.start
                let random = UInt128(rng.next()) << 64 | UInt128(rng.next())
                value = r.start + (span == .max ? random : random % (span + 1))
            default:
                throw ValidationError("--mode is uniform or allocated")
            }
            text += IPAddress.format(value, family: fam)
            text += "\n"
        }
        let bytes = Array(text.utf8)
        try AtomicFile.write(bytes, to: output)
    }
}

/// `open --db FILE`: time to open (mmap + full validation), the median of N runs.
struct OpenBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "open")
    @Option(help: "The trie file.") var db: String
    @Option(help: "Runs.") var runs = 21

    func run() throws {
        var times: [Double] = []
        for _ in 0..<runs {
            let start = now()
            let trie = try TrieFile(path: db)
            times.append(now() - start)
            withExtendedLifetime(trie) {}
        }
        print("open+validate: \(format(median(times) * 1000)) ms (median of \(runs)), \(format(times.min()! * 1000)) ms best")
    }
}

func readAddresses(_ path: String) throws -> [IPAddress] {
    guard let f = fopen(path, "r") else { throw ValidationError("\(path): \(String(cString: strerror(errno)))") }
    defer { fclose(f) }
    var result: [IPAddress] = []
    var line: UnsafeMutablePointer<CChar>?
    var capacity = 0
    var number = 0
    while getline(&line, &capacity, f) > 0 {
        number += 1
        var text = String(cString: line!)
        while text.last == "\n" || text.last == "\r" { text.removeLast() }
        if text.isEmpty { continue }
        guard let a = IPAddress(text) else { throw ValidationError("\(path):\(number): not an address: \(text)") }
        result.append(a)
    }
    free(line)
    return result
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

func format(_ v: Double) -> String {
    let scaled = (v * 100).rounded() / 100
    return String(scaled)
}
