import GeoGateCore
#if canImport(Glibc)
import Glibc
#endif

/// Where `geogate lookup` finds the address in a line, and what it prints for it.
public struct LookupLayout: Sendable {
    public enum Field: Sendable {
        /// The whole line (blanks around it ignored) is the address: prints "IP CC".
        case wholeLine
        /// Field n (1-based) of fields split by runs of blanks, as awk does.
        case blankSeparated(Int)
        /// Field n (1-based) of fields split at each `delimiter` byte, as cut does.
        case delimited(Int, delimiter: UInt8)
    }

    public var field: Field
    /// One JSON object a line instead of text.
    public var json: Bool

    public init(field: Field = .wholeLine, json: Bool = false) {
        self.field = field
        self.json = json
    }

    /// With a field: the line is printed whole and the country appended after this.
    var separator: UInt8 {
        if case .delimited(_, let d) = field { return d }
        return 0x20
    }
}

/// `geogate lookup` on a stream: large reads, addresses parsed where they lie in
/// the read buffer, lookups a batch at a time (`TrieView.countryIndexes`), answers
/// composed in one buffer and written once per block. Memory stays bounded whatever
/// the input: one read buffer, one batch, one output buffer; a line longer than
/// `maxLineLength` is reported and skipped, never accumulated.
public struct LookupStream: ~Copyable {
    static let readSize = 1 << 20
    static let maxLineLength = 1 << 16
    static let batchLines = 4096

    let view: TrieView
    let layout: LookupLayout
    /// "stdin" (errors then say stdin:LINE), or nil for command-line arguments.
    let sourceName: String?
    /// Lines that held no address; the exit status is 1 when there were any.
    public private(set) var badLines = 0
    /// Where errors go (one line each).
    let errors: Int32
    private var lineNumber = 0

    /// The read buffer: a partial line carried from the last read, then new bytes.
    private let input: UnsafeMutableRawPointer
    private let inputCapacity = LookupStream.readSize + LookupStream.maxLineLength
    /// One batch: each line's bytes and its address's, as offsets into `input`.
    private let lines: UnsafeMutablePointer<LineSpan>
    private let addresses: UnsafeMutableBufferPointer<IPAddress>
    private let answers: UnsafeMutableBufferPointer<UInt16>
    private var batched = 0
    private var output: ByteOutput

    /// Answers go to `output`, errors to `errors` (standard output and error for the
    /// command; other descriptors for the fuzz target).
    public init(view: TrieView, layout: LookupLayout, sourceName: String?, output: Int32 = 1, errors: Int32 = 2) {
        self.view = view
        self.layout = layout
        self.sourceName = sourceName
        self.output = ByteOutput(fd: output)
        self.errors = errors
        input = .allocate(byteCount: inputCapacity, alignment: 64)
        lines = .allocate(capacity: LookupStream.batchLines)
        addresses = .allocate(capacity: LookupStream.batchLines)
        answers = .allocate(capacity: LookupStream.batchLines)
    }

    deinit {
        input.deallocate()
        lines.deallocate()
        addresses.deallocate()
        answers.deallocate()
    }

    /// One line of a batch: the line (without its newline or a CR before it) and its
    /// address, byte offsets into the read buffer; `address` empty when it held none.
    struct LineSpan {
        var start: Int32, end: Int32
        var addressStart: Int32, addressEnd: Int32
        var number: Int
        var problem: LineProblem
    }

    enum LineProblem: UInt8 { case none, notAnAddress, noSuchField }

    /// Answers every line of `fd` until its end. Throws only when reading or writing fails.
    public mutating func run(fd: Int32) throws(LookupStreamError) {
        var filled = 0
        var skippingLongLine = false
        while true {
            let n = read(fd, input + filled, inputCapacity - filled)
            if n < 0 {
                if errno == EINTR { continue }
                throw LookupStreamError("cannot read \(sourceName ?? "input"): \(String(cString: strerror(errno)))")
            }
            let end = filled + n
            // Every complete line of what is in the buffer; at the end of input, the
            // last line even without its newline.
            var start = 0
            while start < end {
                guard let found = memchr(input + start, 0x0A, end - start) else { break }
                let newline = input.distance(to: UnsafeMutableRawPointer(found))
                if skippingLongLine {
                    skippingLongLine = false
                } else {
                    try add(line: start, end: newline)
                }
                start = newline + 1
            }
            if n == 0 {
                if start < end && !skippingLongLine { try add(line: start, end: end) }
                try finishBatch()
                try output.flush()
                return
            }
            try finishBatch()
            try output.flush()
            // Carry the partial line to the front; one past the limit is reported and
            // its bytes dropped up to its newline.
            var rest = end - start
            if skippingLongLine {
                rest = 0
            } else if rest > LookupStream.maxLineLength {
                lineNumber += 1
                report(line: lineNumber, "line longer than \(LookupStream.maxLineLength) bytes, skipped")
                badLines += 1
                skippingLongLine = true
                rest = 0
            }
            if rest > 0 && start > 0 { memmove(input, input + start, rest) }
            filled = rest
        }
    }

    /// Answers each of `arguments` (no line numbers in errors).
    public mutating func run(arguments: [String]) throws(LookupStreamError) {
        for argument in arguments {
            var bytes = Array(argument.utf8.prefix(LookupStream.maxLineLength))
            // A newline inside an argument is not a line break: it makes it no address.
            for i in bytes.indices where bytes[i] == 0x0A { bytes[i] = 0x00 }
            bytes.withUnsafeBytes { input.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            try add(line: 0, end: bytes.count)
            try finishBatch()
        }
        try output.flush()
    }

    // MARK: Lines into the batch

    /// Finds the address of the line at input[start..<end] and queues it.
    private mutating func add(line start: Int, end lineEnd: Int) throws(LookupStreamError) {
        lineNumber += 1
        // The same limit whether the line came whole in one read or not.
        guard lineEnd - start <= LookupStream.maxLineLength else {
            report(line: lineNumber, "line longer than \(LookupStream.maxLineLength) bytes, skipped")
            badLines += 1
            return
        }
        var end = lineEnd
        if end > start && input.load(fromByteOffset: end - 1, as: UInt8.self) == 0x0D { end -= 1 }
        var span = LineSpan(start: Int32(start), end: Int32(end), addressStart: 0, addressEnd: 0, number: lineNumber, problem: .none)
        let bytes = UnsafePointer<UInt8>(input.assumingMemoryBound(to: UInt8.self))
        var from = start, to = end
        switch layout.field {
        case .wholeLine:
            (from, to) = trimmedBlanks(bytes, from, to)
            if from == to && sourceName != nil { return }  // blank lines are skipped (a blank argument is no address)
        case .blankSeparated(let n):
            (from, to) = trimmedBlanks(bytes, from, to)
            if from == to { return }
            var field = 1
            var i = from
            while true {
                var j = i
                while j < to && !isBlank(bytes[j]) { j += 1 }
                if field == n { from = i; to = j; break }
                while j < to && isBlank(bytes[j]) { j += 1 }
                if j == to { span.problem = .noSuchField; break }
                i = j
                field += 1
            }
        case .delimited(let n, let delimiter):
            if start == end { return }
            var field = 1
            var i = start
            while field < n {
                guard let found = memchr(bytes + i, Int32(delimiter), end - i) else { span.problem = .noSuchField; break }
                i = bytes.distance(to: found.assumingMemoryBound(to: UInt8.self)) + 1
                field += 1
            }
            if span.problem == .none {
                let stop = memchr(bytes + i, Int32(delimiter), end - i).map { bytes.distance(to: $0.assumingMemoryBound(to: UInt8.self)) } ?? end
                (from, to) = trimmedBlanks(bytes, i, stop)
            }
        }
        span.addressStart = Int32(from)
        span.addressEnd = Int32(to)
        if span.problem == .none {
            if let address = LookupStream.parseAddress(UnsafeBufferPointer(start: bytes + from, count: to - from)) {
                addresses[batched] = address
            } else {
                span.problem = .notAnAddress
                addresses[batched] = IPAddress(family: .v4, value: 0)
            }
        } else {
            addresses[batched] = IPAddress(family: .v4, value: 0)
        }
        lines[batched] = span
        batched += 1
        if batched == LookupStream.batchLines { try finishBatch() }
    }

    /// A dotted quad first, parsed in one pass without the general parser's look
    /// for a colon; then `IPAddress.parse` (whose IPv6 fast path takes the usual
    /// forms a word at a time).
    @inline(__always)
    static func parseAddress(_ text: UnsafeBufferPointer<UInt8>) -> IPAddress? {
        if text.count >= 7 && text.count <= 15, let v4 = parseIPv4(text) { return IPAddress(family: .v4, value: UInt128(v4)) }
        return IPAddress.parse(text)
    }

    @inline(__always)
    private func isBlank(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }

    @inline(__always)
    private func trimmedBlanks(_ bytes: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> (Int, Int) {
        var from = start, to = end
        while from < to && (isBlank(bytes[from]) || bytes[from] == 0x0D) { from += 1 }
        while to > from && (isBlank(bytes[to - 1]) || bytes[to - 1] == 0x0D) { to -= 1 }
        return (from, to)
    }

    // MARK: Answers

    /// Looks up the queued addresses as one batch and writes their answers in order.
    private mutating func finishBatch() throws(LookupStreamError) {
        guard batched > 0 else { return }
        view.countryIndexes(of: UnsafeBufferPointer(rebasing: addresses[0..<batched]), into: answers)
        for k in 0..<batched {
            let span = lines[k]
            guard span.problem == .none else {
                badLines += 1
                let text = UnsafeRawBufferPointer(start: input + Int(span.addressStart), count: Int(span.addressEnd - span.addressStart))
                switch span.problem {
                case .noSuchField:
                    let n: Int
                    switch layout.field {
                    case .blankSeparated(let f), .delimited(let f, _): n = f
                    case .wholeLine: n = 1
                    }
                    report(line: span.number, "no field \(n)")
                default:
                    report(line: span.number, "not an IP address: '\(SafeText.bytes(text, limit: 64))'")
                }
                continue
            }
            write(span, country: answers[k])
        }
        batched = 0
        if output.count >= LookupStream.readSize { try output.flush() }
    }

    private mutating func write(_ span: LineSpan, country index: UInt16) {
        let code = view.countryCode(index: index)?.rawValue
        let address = UnsafeRawBufferPointer(start: input + Int(span.addressStart), count: Int(span.addressEnd - span.addressStart))
        let line = UnsafeRawBufferPointer(start: input + Int(span.start), count: Int(span.end - span.start))
        if layout.json {
            output.reserve(line.count * 6 + address.count + 64)
            output.append("{")
            if case .wholeLine = layout.field {} else {
                output.append("\"line\":\"")
                output.appendJSONEscaped(line)
                output.append("\",")
            }
            output.append("\"ip\":\"")
            output.append(address)  // a parsed address: hex digits, dots and colons only
            output.append("\",\"country\":")
            if let code {
                output.append("\"")
                output.append(country: code)
                output.append("\"}\n")
            } else {
                output.append("null}\n")
            }
            return
        }
        output.reserve(line.count + 4)
        if case .wholeLine = layout.field { output.append(address) } else { output.append(line) }
        output.append(byte: layout.separator)
        if let code { output.append(country: code) } else { output.append("--") }
        output.append(byte: 0x0A)
    }

    private func report(line: Int, _ message: String) {
        let text = Array("geogate: \(sourceName.map { "\($0):\(line): " } ?? "")\(message)\n".utf8)
        text.withUnsafeBytes { _ = Glibc.write(errors, $0.baseAddress, $0.count) }
    }
}

public struct LookupStreamError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// A growable byte buffer written to `fd` in one write(2) a block.
struct ByteOutput: ~Copyable {
    let fd: Int32
    private var base = UnsafeMutableRawPointer.allocate(byteCount: 1 << 16, alignment: 16)
    private var capacity = 1 << 16
    private(set) var count = 0

    init(fd: Int32) { self.fd = fd }

    deinit { base.deallocate() }

    /// Makes room for `n` more bytes (the appends below assume it).
    mutating func reserve(_ n: Int) {
        guard count + n > capacity else { return }
        let grown = max(capacity * 2, count + n)
        let fresh = UnsafeMutableRawPointer.allocate(byteCount: grown, alignment: 16)
        fresh.copyMemory(from: base, byteCount: count)
        base.deallocate()
        base = fresh
        capacity = grown
    }

    @inline(__always) mutating func append(byte: UInt8) {
        base.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    @inline(__always) mutating func append(_ bytes: UnsafeRawBufferPointer) {
        if bytes.count > 0 { (base + count).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
        count += bytes.count
    }

    @inline(__always) mutating func append(_ text: StaticString) {
        append(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// A country code's two letters (`CountryCode.rawValue`: the first in the high byte).
    @inline(__always) mutating func append(country code: UInt16) {
        append(byte: UInt8(truncatingIfNeeded: code >> 8))
        append(byte: UInt8(truncatingIfNeeded: code))
    }

    /// `bytes` inside a JSON string: quote, backslash and control bytes escaped, valid
    /// UTF-8 as is, any other byte as U+FFFD (JSON text is UTF-8). At most 6 bytes out
    /// per byte in.
    mutating func appendJSONEscaped(_ bytes: UnsafeRawBufferPointer) {
        let hex: StaticString = "0123456789abcdef"
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if b >= 0x80 {
                let width = SafeText.utf8Width(bytes, at: i)
                if width > 1 {
                    append(UnsafeRawBufferPointer(rebasing: bytes[i..<i + width]))
                    i += width
                } else {
                    append("\u{FFFD}")
                    i += 1
                }
                continue
            }
            switch b {
            case 0x22: append("\\\"")
            case 0x5C: append("\\\\")
            case 0x20..<0x7F: append(byte: b)
            default:
                append("\\u00")
                append(byte: hex.utf8Start[Int(b >> 4)])
                append(byte: hex.utf8Start[Int(b & 15)])
            }
            i += 1
        }
    }

    /// Writes everything to `fd` and empties the buffer.
    mutating func flush() throws(LookupStreamError) {
        var offset = 0
        while offset < count {
            let n = Glibc.write(fd, base + offset, count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw LookupStreamError("cannot write the answers: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
        count = 0
    }
}
