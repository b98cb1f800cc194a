import ArgumentParser
import GeoGateCore
#if canImport(Glibc)
import Glibc
#endif

/// `load --socket PATH --target geogate|redis -c N -p P`: a closed-loop load
/// generator over a Unix socket. Each of N connections sends P requests in one
/// write, waits for their P answers, and sends the next P. Reports throughput and
/// the p50/p99 latency of a request (from its batch's write to its answer), and
/// every failed request: an error answer, an answer of the wrong shape, a
/// connection that broke, or an answer still missing when the run ends.
///
/// The same loop drives geogate (`CHECK <profile> <ip>`, addresses from
/// --queries) and Redis (the inline `GET k`, after one `SET k GB`), so the two
/// servers meet the same client in one run. One thread, poll(2): the generator's
/// own cost per request is the same for both.
struct LoadBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "load")

    enum Target: String, ExpressibleByArgument { case geogate, redis }

    @Option(help: "The server's Unix socket.") var socket: String
    @Option(help: "geogate or redis.") var target: Target
    @Option(name: .shortAndLong, help: "Connections.") var connections = 1
    @Option(name: .shortAndLong, help: "Requests in flight per connection (pipelined).") var pipeline = 1
    @Option(help: "Measured seconds (after --warmup).") var duration = 5.0
    @Option(help: "Unmeasured seconds first.") var warmup = 1.0
    @Option(help: "geogate: addresses for CHECK, one a line.") var queries: String?
    @Option(help: "geogate: the profile CHECK asks.") var profile = "web"
    @Option(help: "The server's pid: reports its CPU time per answered request.") var serverPid: Int32?

    func run() throws {
        let batches = try makeBatches()
        var load = try Load(socket: socket, target: target, connections: connections, pipeline: pipeline, batches: batches)
        load.serverPid = serverPid
        let result = try load.run(warmup: warmup, duration: duration)
        print("target: \(target.rawValue)  connections: \(connections)  pipeline: \(pipeline)")
        print("answered: \(result.answered) in \(format(result.seconds)) s  failed: \(result.failed)")
        print("throughput: \(Int(Double(result.answered) / result.seconds)) requests/s")
        print("latency p50: \(format3(result.percentile(0.50) * 1000)) ms  p99: \(format3(result.percentile(0.99) * 1000)) ms")
        if let cpu = result.serverCPUSeconds {
            print("server CPU: \(format3(cpu / Double(max(result.answered, 1)) * 1e6)) us per request (\(Int((cpu / result.seconds * 100).rounded()))% of a core)")
        }
        if result.failed > 0, let reason = result.firstFailure { print("first failure: \(reason)") }
    }

    /// 256 ready-made batches of P requests; connection c sends batch (c + n) mod 256.
    func makeBatches() throws -> [[UInt8]] {
        switch target {
        case .redis:
            let one = Array("GET k\r\n".utf8)
            return [Array(repeating: one, count: pipeline).flatMap { $0 }]
        case .geogate:
            guard let queries else { throw ValidationError("--target geogate needs --queries") }
            let addresses = try readAddresses(queries)
            guard !addresses.isEmpty else { throw ValidationError("\(queries): no addresses") }
            return (0..<256).map { b in
                (0..<pipeline).flatMap { i in
                    Array("CHECK \(profile) \(addresses[(b * pipeline + i) % addresses.count])\n".utf8)
                }
            }
        }
    }
}

func format3(_ v: Double) -> String { String((v * 1000).rounded() / 1000) }

struct LoadResult {
    var answered = 0
    var failed = 0
    var seconds = 0.0
    var firstFailure: String?
    /// The server's user + system CPU time over the measured window.
    var serverCPUSeconds: Double?
    /// Latency of each measured answer, in nanoseconds.
    var latencies: [UInt32] = []

    func percentile(_ p: Double) -> Double {
        guard !latencies.isEmpty else { return .nan }
        let sorted = latencies.sorted()
        return Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]) / 1e9
    }
}

/// One connection's state: its socket, the batch in flight, and the bytes of
/// answers read but not yet complete.
struct Connection {
    var fd: Int32
    var pending = 0
    var sentAt: UInt64 = 0
    var batchIndex: Int
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    var filled = 0
    var broken = false
}

struct Load {
    let target: LoadBench.Target
    let pipeline: Int
    let batches: [[UInt8]]
    var connections: [Connection] = []
    var result = LoadResult()
    var serverPid: Int32?
    /// poll(2)'s list: one entry per connection, same index; a broken one gets fd -1.
    var polled: [pollfd] = []

    init(socket: String, target: LoadBench.Target, connections count: Int, pipeline: Int, batches: [[UInt8]]) throws {
        self.target = target
        self.pipeline = pipeline
        self.batches = batches
        for c in 0..<count {
            let fd = try connectUnix(socket)
            connections.append(Connection(fd: fd, batchIndex: c % batches.count))
            if target == .redis && c == 0 { try setRedisKey(fd) }
            polled.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0))
        }
        result.latencies.reserveCapacity(4_000_000)
    }

    /// `SET k GB`, so every `GET k` has a two-byte answer like a country code.
    func setRedisKey(_ fd: Int32) throws {
        let set = Array("SET k GB\r\n".utf8)
        guard write(fd, set, set.count) == set.count else { throw ValidationError("redis: write: \(errnoText())") }
        var answer = [UInt8](repeating: 0, count: 64)
        let n = read(fd, &answer, answer.count)
        guard n >= 5, answer[0] == UInt8(ascii: "+") else { throw ValidationError("redis: SET k GB: unexpected answer") }
    }

    mutating func run(warmup: Double, duration: Double) throws -> LoadResult {
        let start = monotonicNanoseconds()
        let measureFrom = start + UInt64(warmup * 1e9)
        let stopSending = measureFrom + UInt64(duration * 1e9)
        var answeredInWindow = 0
        for c in connections.indices { send(c, at: start) }
        var sending = true
        var cpuAtStart: Double?
        while true {
            let pending = connections.reduce(0) { $0 + ($1.broken ? 0 : $1.pending) }
            if !sending && pending == 0 { break }
            let n = poll(&polled, nfds_t(polled.count), 2000)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                // Two seconds without any answer: what is still missing failed.
                fail(count: pending, "no answer within 2 s (\(pending) requests outstanding)")
                break
            }
            let now = monotonicNanoseconds()
            if cpuAtStart == nil && now >= measureFrom { cpuAtStart = serverCPU() }
            if now >= stopSending && sending {
                sending = false
                if let before = cpuAtStart, let after = serverCPU() { result.serverCPUSeconds = after - before }
            }
            for c in polled.indices where polled[c].revents != 0 {
                polled[c].revents = 0
                let answers = receive(c)
                if connections[c].sentAt >= measureFrom && connections[c].sentAt < stopSending {
                    answeredInWindow += answers
                    let latency = UInt32(clamping: now - connections[c].sentAt)
                    for _ in 0..<answers { result.latencies.append(latency) }
                }
                if connections[c].pending == 0 && !connections[c].broken && sending { send(c, at: now) }
            }
        }
        result.answered = answeredInWindow
        result.seconds = duration
        for c in connections { close(c.fd) }
        return result
    }

    /// utime + stime of the server process (all its threads), from /proc.
    func serverCPU() -> Double? {
        guard let pid = serverPid, let stat = try? readWholeFile("/proc/\(pid)/stat", limit: 4096) else { return nil }
        // Fields after the ")" that ends the command name: state is field 3, utime 14, stime 15.
        guard let close = stat.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = stat[(close + 2)...].split(separator: 0x20)
        guard fields.count > 12, let user = Int(String(decoding: fields[11], as: UTF8.self)),
              let system = Int(String(decoding: fields[12], as: UTF8.self)) else { return nil }
        return Double(user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    mutating func send(_ c: Int, at time: UInt64) {
        let batch = batches[connections[c].batchIndex]
        connections[c].batchIndex = (connections[c].batchIndex + 1) % batches.count
        connections[c].sentAt = time
        connections[c].pending = pipeline
        var offset = 0
        while offset < batch.count {
            let n = batch.withUnsafeBytes { write(connections[c].fd, $0.baseAddress! + offset, batch.count - offset) }
            guard n > 0 else { return breakConnection(c, "write: \(errnoText())") }
            offset += n
        }
    }

    /// Reads what is there and counts the complete answers in it.
    mutating func receive(_ c: Int) -> Int {
        let fd = connections[c].fd
        let filled = connections[c].filled
        let n = connections[c].buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + filled, $0.count - filled) }
        guard n > 0 else {
            breakConnection(c, n == 0 ? "the server closed the connection" : "read: \(errnoText())")
            return 0
        }
        connections[c].filled += n
        var answers = 0
        var consumed = 0
        var failures: [String] = []
        connections[c].buffer.withUnsafeBufferPointer { bytes in
            let end = connections[c].filled
            while consumed < end {
                guard let (length, ok) = nextAnswer(bytes, from: consumed, end: end) else { break }
                if !ok { failures.append(String(decoding: bytes[consumed..<consumed + min(length, 120)], as: UTF8.self)) }
                consumed += length
                answers += 1
            }
        }
        for f in failures { fail(count: 1, "answer: \(f)") }
        if consumed > 0 {
            let rest = connections[c].filled - consumed
            connections[c].buffer.withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: $0.baseAddress! + consumed, byteCount: rest) }
            connections[c].filled = rest
        }
        connections[c].pending -= answers
        if connections[c].pending < 0 { breakConnection(c, "more answers than requests") }
        return answers - failures.count
    }

    /// The byte length of the complete answer starting at `from`, and whether it is
    /// a good one; nil when it is not complete yet.
    func nextAnswer(_ bytes: UnsafeBufferPointer<UInt8>, from: Int, end: Int) -> (Int, Bool)? {
        guard let newline = (from..<end).first(where: { bytes[$0] == 0x0A }) else { return nil }
        let line = newline + 1 - from
        switch target {
        case .geogate:
            // ALLOW/DENY for CHECK; anything else (ERR ...) is a failure.
            let first = bytes[from]
            return (line, first == UInt8(ascii: "A") || first == UInt8(ascii: "D"))
        case .redis:
            // `$2\r\nGB\r\n`: a bulk string's header line, then its bytes and CRLF.
            guard bytes[from] == UInt8(ascii: "$") else { return (line, false) }
            var length = 0
            for i in (from + 1)..<newline where bytes[i] != 0x0D {
                guard bytes[i] >= 0x30 && bytes[i] <= 0x39 else { return (line, false) }  // $-1: no such key
                length = length * 10 + Int(bytes[i] - 0x30)
            }
            let total = line + length + 2
            return from + total <= end ? (total, true) : nil
        }
    }

    mutating func fail(count: Int, _ reason: String) {
        result.failed += count
        if result.firstFailure == nil { result.firstFailure = reason }
    }

    mutating func breakConnection(_ c: Int, _ reason: String) {
        guard !connections[c].broken else { return }
        connections[c].broken = true
        fail(count: max(connections[c].pending, 1), "connection \(c): \(reason)")
        polled[c].fd = -1
    }
}

func connectUnix(_ path: String) throws -> Int32 {
    do { return try UnixSocketClient.connect(path) } catch { throw ValidationError("\(path): \(error)") }
}

func errnoText() -> String { String(cString: strerror(errno)) }

func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
