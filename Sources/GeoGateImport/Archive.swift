import CArchive
import GeoGateCore
#if canImport(Glibc)
import Glibc
#endif

/// Archives (.tar.gz, .tar.xz, .zip) through libarchive: the members an input
/// needs are written out under their base names; a cut or corrupt archive is an error.
/// Member names come from outside: they reach errors escaped and cut (SafeText).
public enum Archive {
    /// Extracts every regular member whose name ends with one of `suffixes` into
    /// `directory`; returns their paths in archive order.
    public static func extract(_ path: String, suffixes: [String], into directory: String, maxBytes: Int,
                               name: String) throws(ImportError) -> [String] {
        func error(_ reason: String) -> ImportError { ImportError(file: name, reason: reason) }
        guard let a = archive_read_new() else { throw error("libarchive: out of memory") }
        defer { archive_read_free(a) }
        archive_read_support_filter_all(a)
        archive_read_support_format_all(a)
        func failure(_ what: String) -> ImportError {
            error("\(what): \(archive_error_string(a).map { SafeText.field(String(cString: $0)) } ?? "unreadable archive")")
        }
        guard archive_read_open_filename(a, path, 1 << 16) == ARCHIVE_OK else { throw failure("not a readable archive") }
        var extracted: [String] = []
        var entry: OpaquePointer?
        var total = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let status = archive_read_next_header(a, &entry)
            if status == ARCHIVE_EOF { break }
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else { throw failure("archive cut or corrupt") }
            let member = archive_entry_pathname(entry).map { String(cString: $0) } ?? ""
            let base = String(member.split(separator: "/").last ?? "")
            guard archive_entry_filetype(entry) == 0o100000, !base.hasPrefix("."),
                  suffixes.contains(where: { base.hasSuffix($0) }) else {
                guard archive_read_data_skip(a) == ARCHIVE_OK else { throw failure("archive cut or corrupt") }
                continue
            }
            let out = directory + "/" + base
            guard let file = fopen(out, "wb") else { throw error("cannot write \(SafeText.field(out))") }
            defer { fclose(file) }
            while true {
                let n = buffer.withUnsafeMutableBytes { archive_read_data(a, $0.baseAddress, $0.count) }
                if n == 0 { break }
                guard n > 0 else { throw failure("\(SafeText.field(member)): cut or corrupt") }
                total += n
                guard total <= maxBytes else { throw error("unpacks to over the \(maxBytes / (1 << 20)) MB limit") }
                guard fwrite(buffer, 1, n, file) == n else { throw error("cannot write \(SafeText.field(out))") }
            }
            extracted.append(out)
        }
        guard !extracted.isEmpty else {
            throw error("the archive has no member ending in \(suffixes.joined(separator: " or "))")
        }
        return extracted
    }
}
