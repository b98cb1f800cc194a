import CLZMA
import CZlib
import Crypto
import GeoGateCore
#if canImport(Glibc)
import Glibc
#endif

/// One input file as read from disk: its name, the SHA-256 of its bytes as stored
/// (what a provider's checksum sidecar names), and its content after decompression.
/// Compression is recognised by magic bytes, not by the file name.
public struct SourceFile: Sendable {
    public enum Compression: String, Sendable { case none, gzip, xz }

    /// The path as given.
    public let path: String
    /// The file name without directories: what the trie's metadata records.
    public let name: String
    public let sha256: [UInt8]
    public let storedSize: Int
    public let compression: Compression
    public let content: [UInt8]

    public init(path: String, content: [UInt8], storedSize: Int, sha256: [UInt8], compression: Compression) {
        self.path = path
        self.name = path.split(separator: "/").last.map(String.init) ?? path
        self.content = content
        self.storedSize = storedSize
        self.sha256 = sha256
        self.compression = compression
    }

    public static func read(path: String, options: ImportOptions = ImportOptions()) throws(ImportError) -> SourceFile {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        guard SafeText.isClean(name) else {
            throw ImportError(file: path, reason: "the file name holds control characters: rename it (the name is recorded in the trie and shown in logs and INFO)")
        }
        let raw = try readWholeFile(path, limit: options.maximumInputBytes)
        return try decoding(raw, path: path, options: options)
    }

    /// The file from its bytes as stored: gzip and xz recognised by their magic and
    /// decompressed (within `options.maximumInputBytes`), anything else taken as is.
    public static func decoding(_ raw: [UInt8], path: String, options: ImportOptions = ImportOptions()) throws(ImportError) -> SourceFile {
        let digest = Array(SHA256.hash(data: raw))
        let compression: Compression
        let content: [UInt8]
        if raw.count >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
            compression = .gzip
            content = try inflateGzip(raw, file: path, limit: options.maximumInputBytes)
        } else if raw.count >= 6 && raw[0..<6].elementsEqual([0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]) {
            compression = .xz
            content = try decompressXZ(raw, file: path, limit: options.maximumInputBytes)
        } else {
            compression = .none
            content = raw
        }
        return SourceFile(path: path, content: content, storedSize: raw.count, sha256: digest, compression: compression)
    }
}

/// Reads a whole file with open/fstat/read; errors name the file and the call.
func readWholeFile(_ path: String, limit: Int) throws(ImportError) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw ImportError(file: path, reason: "cannot open: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw ImportError(file: path, reason: "cannot stat: \(String(cString: strerror(errno)))") }
    if (info.st_mode & S_IFMT) == S_IFDIR { throw ImportError(file: path, reason: "is a directory, not a data file") }
    if Int(info.st_size) > limit { throw ImportError(file: path, reason: tooLarge(Int(info.st_size), "", limit)) }
    var bytes = [UInt8]()
    bytes.reserveCapacity(max(Int(info.st_size), 0) + 1)
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw ImportError(file: path, reason: "read failed: \(String(cString: strerror(errno)))")
        }
        if n == 0 { break }
        bytes.append(contentsOf: chunk[0..<n])
        if bytes.count > limit { throw ImportError(file: path, reason: tooLarge(bytes.count, "", limit)) }
    }
    return bytes
}

/// "holds over 64 MiB (the input limit, max-input-mb)".
func tooLarge(_ size: Int, _ what: String, _ limit: Int) -> String {
    "\(what.isEmpty ? "is" : what + " expands to") over \(limit >> 20) MiB, the input limit (--max-input-mb, refresh.max-input-mb): "
        + "refused before it is held in memory"
}

/// Inflates gzip data (several members allowed, as `cat a.gz b.gz` makes) through zlib.
func inflateGzip(_ input: [UInt8], file: String, limit: Int) throws(ImportError) -> [UInt8] {
    var stream = z_stream()
    // windowBits 15 + 16: gzip wrapper only.
    guard inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
        throw ImportError(file: file, reason: "zlib: cannot initialise the decompressor")
    }
    defer { inflateEnd(&stream) }
    var output = [UInt8]()
    // Reserved once (address space, not memory): growth never copies, so the peak is the limit.
    output.reserveCapacity(limit + (1 << 18))
    var chunk = [UInt8](repeating: 0, count: 1 << 18)
    var failure: ImportError?
    input.withUnsafeBufferPointer { inBuffer in
        stream.next_in = UnsafeMutablePointer(mutating: inBuffer.baseAddress)
        stream.avail_in = UInt32(inBuffer.count)
        while true {
            let status: Int32 = chunk.withUnsafeMutableBufferPointer { out in
                stream.next_out = out.baseAddress
                stream.avail_out = UInt32(out.count)
                return inflate(&stream, Z_NO_FLUSH)
            }
            let produced = chunk.count - Int(stream.avail_out)
            output.append(contentsOf: chunk[0..<produced])
            if output.count > limit {
                failure = ImportError(file: file, reason: tooLarge(output.count, "gzip data", limit))
                return
            }
            if status == Z_STREAM_END {
                if stream.avail_in == 0 { return }
                // Another gzip member follows.
                guard inflateReset(&stream) == Z_OK else {
                    failure = ImportError(file: file, reason: "zlib: cannot reset for the next gzip member")
                    return
                }
                continue
            }
            if status == Z_OK { continue }
            if status == Z_BUF_ERROR && stream.avail_in == 0 {
                failure = ImportError(file: file, reason: "truncated gzip data (the stream ends before its trailer)")
                return
            }
            let message = stream.msg.map { String(cString: $0) } ?? "error \(status)"
            failure = ImportError(file: file, reason: "corrupt gzip data: \(message)")
            return
        }
    }
    if let failure { throw failure }
    return output
}

/// Decompresses .xz data (concatenated streams allowed) through liblzma.
func decompressXZ(_ input: [UInt8], file: String, limit: Int) throws(ImportError) -> [UInt8] {
    var stream = lzma_stream()
    guard lzma_stream_decoder(&stream, UInt64.max, geogate_lzma_concatenated) == LZMA_OK else {
        throw ImportError(file: file, reason: "liblzma: cannot initialise the decoder")
    }
    defer { lzma_end(&stream) }
    var output = [UInt8]()
    // Reserved once (address space, not memory): growth never copies, so the peak is the limit.
    output.reserveCapacity(limit + (1 << 18))
    var chunk = [UInt8](repeating: 0, count: 1 << 18)
    var failure: ImportError?
    input.withUnsafeBufferPointer { inBuffer in
        stream.next_in = inBuffer.baseAddress
        stream.avail_in = inBuffer.count
        while true {
            let action = stream.avail_in == 0 ? LZMA_FINISH : LZMA_RUN
            let status = chunk.withUnsafeMutableBufferPointer { out in
                stream.next_out = out.baseAddress
                stream.avail_out = out.count
                return lzma_code(&stream, action)
            }
            let produced = chunk.count - stream.avail_out
            output.append(contentsOf: chunk[0..<produced])
            if output.count > limit {
                failure = ImportError(file: file, reason: tooLarge(output.count, "xz data", limit))
                return
            }
            switch status {
            case LZMA_STREAM_END: return
            case LZMA_OK: continue
            case LZMA_BUF_ERROR:
                failure = ImportError(file: file, reason: "truncated xz data (the stream ends early)")
                return
            case LZMA_DATA_ERROR, LZMA_FORMAT_ERROR, LZMA_OPTIONS_ERROR:
                failure = ImportError(file: file, reason: "corrupt xz data (liblzma error \(status.rawValue))")
                return
            default:
                failure = ImportError(file: file, reason: "liblzma error \(status.rawValue)")
                return
            }
        }
    }
    if let failure { throw failure }
    return output
}
