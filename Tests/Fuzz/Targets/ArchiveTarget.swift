import GeoGateCore
import GeoGateImport
#if canImport(Glibc)
import Glibc
#endif

/// The archive layer of refresh (.tar.gz, .tar.xz, .zip through libarchive):
/// the members a source wants are unpacked into a directory, within a size cap,
/// then each goes through import as the CIDR-list/range importers would see it.
let archiveTarget = FuzzTarget("archive", "tar/zip (and their gzip/xz/bzip2 filters) through libarchive, then import") { input throws(FuzzFailure) in
    let archive = scratchFile("input.archive")
    let members = scratchDirectory + "/members"
    mkdir(members, 0o700)
    defer { emptyDirectory(members) }
    let fd = open(archive, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw FuzzFailure("cannot write \(archive)") }
    let written = write(fd, input.baseAddress, input.count)
    close(fd)
    guard written == input.count else { throw FuzzFailure("cannot write \(archive)") }
    let extracted: [String]
    do throws(ImportError) {
        extracted = try Archive.extract(archive, suffixes: [".csv", ".zone", ".txt"], into: members, maxBytes: 1 << 20, name: "fuzz-source")
    } catch {
        try expectShownSafely(error.description, "the archive error")
        return
    }
    for path in extracted {
        guard path.hasPrefix(members + "/"), !path.dropFirst(members.count + 1).contains("/") else {
            throw FuzzFailure("a member was written outside the directory: \(SafeText.field(path))")
        }
        let format: SourceFormat = path.hasSuffix(".zone") || path.hasSuffix(".txt") ? .cidrList : .dbipCSV
        var options = fuzzOptions(input)
        options.listCountry = "DE"
        guard let raw = FuzzCorpus.read(path) else { throw FuzzFailure("cannot read back \(SafeText.field(path))") }
        try importBytes(raw, path: path, format: format, options: options)
    }
}

/// Removes the plain files of a directory (what the targets write there).
func emptyDirectory(_ path: String) {
    for file in FuzzCorpus.files(under: path) where file != path { unlink(file) }
}
