import GeoGateCore
#if canImport(Glibc)
import Glibc
#endif

/// One fuzz target: a parser of outside bytes, driven with whatever bytes the
/// fuzzer makes, plus the invariants that must hold for every input. A memory
/// error is AddressSanitizer's to report; a broken invariant throws `FuzzFailure`,
/// which the libFuzzer driver turns into a crash (and so a saved reproducer) and
/// the regression tests into a failed test.
public struct FuzzTarget: Sendable {
    public let name: String
    /// What the target feeds, for `geogate-fuzz --list` and the docs.
    public let summary: String
    let body: @Sendable (UnsafeRawBufferPointer) throws(FuzzFailure) -> Void

    init(_ name: String, _ summary: String, _ body: @escaping @Sendable (UnsafeRawBufferPointer) throws(FuzzFailure) -> Void) {
        self.name = name
        self.summary = summary
        self.body = body
    }

    /// Runs the target on one input.
    public func run(_ input: UnsafeRawBufferPointer) throws(FuzzFailure) {
        try body(input)
    }

    public func run(_ input: [UInt8]) throws(FuzzFailure) {
        let result = input.withUnsafeBytes { buffer in Result { () throws(FuzzFailure) in try body(buffer) } }
        try result.get()
    }
}

/// A broken invariant: what was expected, in words.
public struct FuzzFailure: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

public enum FuzzTargets {
    /// Every target, in the order the data flows (Tests/Fuzz/README.md).
    public static let all: [FuzzTarget] = [
        trieTarget,
        addressTarget,
        lookupTarget,
        importTarget(.tor), importTarget(.dbipCSV), maxmindCSVTarget, mmdbTarget, importTarget(.rir), importTarget(.cidrList),
        feedTarget,
        manifestTarget,
        archiveTarget,
        configTarget,
        entriesTarget,
        amiTarget,
        protocolTarget,
        httpTarget,
    ]

    public static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }
}

/// Text that reaches an admin (an error, a log line, an answer): one line of
/// printable text, cut to a bounded length, whatever the input held.
func expectShownSafely(_ text: String, limit: Int = 4096, _ what: @autoclosure () -> String) throws(FuzzFailure) {
    guard SafeText.isClean(text) else {
        throw FuzzFailure("\(what()) holds a control character: \(SafeText.field(text, limit: 600))")
    }
    guard text.utf8.count <= limit else {
        throw FuzzFailure("\(what()) is \(text.utf8.count) bytes, over \(limit): outside text was not cut")
    }
}

/// Addresses taken from the input itself (every 4 bytes as IPv4, every 16 as
/// IPv6, up to `limit` of each), so lookups follow what the fuzzer varies.
func addresses(from input: UnsafeRawBufferPointer, limit: Int = 64) -> [IPAddress] {
    var out: [IPAddress] = []
    var i = 0
    while i + 4 <= input.count && out.count < limit {
        out.append(IPAddress(v4: input.loadUnaligned(fromByteOffset: i, as: UInt32.self)))
        i += 4
    }
    i = 0
    while i + 16 <= input.count && out.count < 2 * limit {
        out.append(IPAddress(family: .v6, value: input.loadUnaligned(fromByteOffset: i, as: UInt128.self)))
        i += 16
    }
    return out
}

/// A map must be in normal form: sorted, disjoint, inside its family.
func expectNormalForm(_ map: RangeMap, _ what: String) throws(FuzzFailure) {
    guard RangeMap.isNormalized(map.ranges) else { throw FuzzFailure("\(what): \(map.family) ranges are not sorted and disjoint") }
    if let last = map.ranges.last, last.end > map.family.maxAddress {
        throw FuzzFailure("\(what): an \(map.family) range ends past the family's last address")
    }
}

/// Saved inputs on disk: a corpus directory, a reproducer.
public enum FuzzCorpus {
    /// The files of a directory (sorted, no dot files), or the path itself if it is a file.
    public static func files(under path: String) -> [String] {
        guard let dir = opendir(path) else { return [path] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.baseAddress!.assumingMemoryBound(to: CChar.self)) }
            if !name.hasPrefix(".") { names.append(path + "/" + name) }
        }
        return names.sorted()
    }

    public static func read(_ path: String) -> [UInt8]? {
        guard let f = fopen(path, "rb") else { return nil }
        defer { fclose(f) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = fread(&chunk, 1, chunk.count, f)
            if n == 0 { break }
            out += chunk[0..<n]
        }
        return ferror(f) == 0 ? out : nil
    }
}

/// The checks the targets share, for tests that show they catch what they should.
public enum FuzzChecks {
    public static func expectShownSafely(_ text: String) throws(FuzzFailure) {
        try GeoGateFuzzTargets.expectShownSafely(text, "the text")
    }

    public static func expectWellFormedResponses(_ output: [UInt8]) throws(FuzzFailure) {
        try GeoGateFuzzTargets.expectWellFormedResponses(output)
    }
}
