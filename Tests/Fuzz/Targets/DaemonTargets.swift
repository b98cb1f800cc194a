import GeoGateCore
import GeoGateDaemon
import GeoGateImport
import GeoGateTrie
import Logging
import NIOCore
import NIOEmbedded
#if canImport(Glibc)
import Glibc
#endif

/// A small trie of both families, for the daemon's targets and `lookup`.
let fuzzTrieBytes: [UInt8] = {
    let ranges = """
    1.0.0.0,1.0.0.255,AU
    2.0.0.0,2.255.255.255,FR
    10.0.0.0,10.255.255.255,IT
    198.51.100.0,198.51.100.255,CN
    2001:db8::,2001:db8:ffff:ffff:ffff:ffff:ffff:ffff,DE
    2a00::,2a00:ffff:ffff:ffff:ffff:ffff:ffff:ffff,IT
    """
    let file = SourceFile(path: "fuzz.csv", content: Array(ranges.utf8), storedSize: ranges.utf8.count,
                          sha256: Array(repeating: 0, count: 32), compression: .none)
    let source = try! SourceLoader.parse(file, format: .dbipCSV)
    return try! TrieWriter.bytes(v4: source.v4, v6: source.v6, sources: [
        .init(name: "fuzz.csv", sha256: source.sha256, storedSize: UInt64(source.storedSize), format: "dbip-csv")], buildTime: 1)
}()

/// The daemon the protocol and HTTP targets talk to: a small trie (both
/// families) and a config with a full-server and a web-only profile, written once
/// to the scratch directory, served by the real `LookupService`.
let fuzzDaemon: LookupService = {
    let directory = scratchDirectory + "/daemon"
    mkdir(directory, 0o700)
    let trie = fuzzTrieBytes
    let triePath = directory + "/fuzz.trie"
    let configPath = directory + "/fuzz.conf"
    write(trie, to: triePath)
    let config = """
    database: \(triePath)
    runtime-dir: \(directory)
    state-dir: \(directory)
    trusted:
      networks: [198.51.100.7]
    profiles:
      full:
        scope: full-server
        allow-countries: [IT, DE]
        block-networks: [10.9.0.0/16]
      web:
        scope: web-only
        deny-countries: [CN]
        allow-networks: [2.2.0.0/16]
        no-country: allow
    """
    write(Array(config.utf8), to: configPath)
    return try! LookupService(configPath: configPath, database: nil, logger: nil)
}()

func write(_ bytes: [UInt8], to path: String) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    precondition(fd >= 0, "cannot write \(path)")
    precondition(bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == bytes.count)
    close(fd)
}

/// Cuts the input into reads the way a socket might deliver it: each cut's length
/// comes from the input's first byte (0: one read), so one input reaches the
/// handler as many reads across line boundaries.
func reads(of input: UnsafeRawBufferPointer) -> [UnsafeRawBufferPointer] {
    guard let first = input.first else { return [] }
    let body = UnsafeRawBufferPointer(rebasing: input[1...])
    let step = Int(first) == 0 ? max(body.count, 1) : Int(first)
    return stride(from: 0, to: body.count, by: step).map { UnsafeRawBufferPointer(rebasing: body[$0..<min($0 + step, body.count)]) }
}

/// The embedded channels' peer address, made once. Held as the bare
/// UnixSocketAddress: inside SocketAddress the reference to its storage carries
/// the enum's case in its spare bits, which LeakSanitizer does not take for a
/// pointer, so it reported the storage as leaked at every exit.
let fuzzPeerAddress: SocketAddress.UnixSocketAddress = {
    guard case .unixDomainSocket(let address) = try! SocketAddress(unixDomainSocketPath: "/fuzz.sock") else { fatalError() }
    return address
}()
var fuzzPeer: SocketAddress { .unixDomainSocket(fuzzPeerAddress) }

let discardingLogger = Logger(label: "geogate-fuzz") { _ in SwiftLogNoOpLogHandler() }

/// The line protocol through the real connection handler (framing across reads,
/// the line cap, a half-close): every answer is one printable ASCII line, and
/// every complete request gets exactly one answer, in order.
let protocolTarget = FuzzTarget("protocol", "line protocol: the connection handler over an embedded channel") { input throws(FuzzFailure) in
    let service = fuzzDaemon
    let channel = EmbeddedChannel()
    do {
        try DaemonServer.addLineHandlers(channel.pipeline.syncOperations, service: service, logger: discardingLogger, idleTimeout: .seconds(60))
        try channel.connect(to: fuzzPeer).wait()
    } catch { throw FuzzFailure("cannot set up the handler: \(error)") }
    var sent: [UInt8] = []
    var answers: [UInt8] = []
    func drain() {
        while let out = try? channel.readOutbound(as: ByteBuffer.self) {
            answers += out.readableBytesView
        }
    }
    for read in reads(of: input) where channel.isActive {
        sent += read
        var buffer = channel.allocator.buffer(capacity: read.count)
        buffer.writeBytes(read)
        _ = try? channel.writeInbound(buffer)
        drain()
    }
    let closedEarly = !channel.isActive
    if channel.isActive {
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        drain()
    }
    _ = try? channel.finish()
    // Runs the timers left on the embedded loop: after a half-close the handler's
    // idle check stays queued there and, with it, the whole channel (9 KiB an
    // input; a real event loop drops it: 42,000 half-closed connections to a
    // running daemon left its RSS unchanged).
    channel.embeddedEventLoop.advanceTime(by: .seconds(120))
    drain()
    // What the client sent, as request lines: complete ones, and a last one cut off.
    var requests = sent.split(separator: 0x0A, omittingEmptySubsequences: false).map { Array($0) }
    let lastUnterminated = requests.removeLast()
    let lines = answers.split(separator: 0x0A, omittingEmptySubsequences: false)
    guard answers.isEmpty || answers.last == 0x0A else { throw FuzzFailure("the last answer has no newline") }
    let answerLines = lines.dropLast()
    for line in answerLines {
        guard line.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }), line.count <= 4096 else {
            throw FuzzFailure("an answer is not one bounded printable line: \(SafeText.bytes(line, limit: 300))")
        }
    }
    let tooLong = answerLines.last.map { $0.starts(with: Array("ERR too-long".utf8)) } ?? false
    if tooLong || closedEarly { return }
    let expected = requests.count + (lastUnterminated.isEmpty ? 0 : 1)
    guard answerLines.count == expected else {
        throw FuzzFailure("\(expected) requests got \(answerLines.count) answers")
    }
}

/// The auth_request endpoint through the real HTTP pipeline (NIO's parser, then
/// geogate's handler): every response head is printable, so no outside text can
/// add a header or split a response, and every body is as long as it says.
let httpTarget = FuzzTarget("http", "auth_request HTTP endpoint: NIO's HTTP/1.1 pipeline and the check handler") { input throws(FuzzFailure) in
    let service = fuzzDaemon
    let channel = EmbeddedChannel()
    do {
        try DaemonServer.addHTTPHandlers(channel.pipeline.syncOperations, service: service, idleTimeout: .seconds(60))
        try channel.connect(to: fuzzPeer).wait()
    } catch { throw FuzzFailure("cannot set up the handlers: \(error)") }
    var output: [UInt8] = []
    func drain() {
        while let out = try? channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let b) = out { output += b.readableBytesView }
        }
    }
    for read in reads(of: input) where channel.isActive {
        var buffer = channel.allocator.buffer(capacity: read.count)
        buffer.writeBytes(read)
        _ = try? channel.writeInbound(buffer)
        drain()
    }
    _ = try? channel.finish()
    // As for the line protocol: after the handler closed a Connection: close
    // exchange itself, a timer left on the embedded loop holds the channel (a real
    // daemon's RSS stayed flat over 43,000 such requests).
    channel.embeddedEventLoop.advanceTime(by: .seconds(120))
    drain()
    try expectWellFormedResponses(output)
}

/// Walks HTTP/1.1 responses: a head of printable CRLF lines, then exactly
/// Content-Length bytes of body.
func expectWellFormedResponses(_ output: [UInt8]) throws(FuzzFailure) {
    var i = 0
    let end = Array("\r\n\r\n".utf8)
    while i < output.count {
        guard let headEnd = (i...(max(i, output.count - 4))).first(where: { output[$0..<min($0 + 4, output.count)].elementsEqual(end) }) else {
            throw FuzzFailure("a response without the end of its head: \(SafeText.bytes(output[i...], limit: 300))")
        }
        let head = output[i..<headEnd + 2]  // through the last header line's CRLF
        var length = 0
        for line in head.split(separator: 0x0A) {
            let text = line.last == 0x0D ? line.dropLast() : line[...]
            guard line.last == 0x0D, text.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else {
                throw FuzzFailure("a response head line is not printable CRLF text: \(SafeText.bytes(line, limit: 300))")
            }
            let s = String(decoding: text, as: UTF8.self).lowercased()
            if s.hasPrefix("content-length:") { length = Int(s.dropFirst(15).trimmingPrefix(" ")) ?? -1 }
        }
        guard length >= 0, headEnd + 4 + length <= output.count else {
            throw FuzzFailure("a response body is shorter than its Content-Length")
        }
        i = headEnd + 4 + length
    }
}
