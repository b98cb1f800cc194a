import GeoGateCore
import GeoGateImport
#if canImport(Glibc)
import Glibc
#endif

/// Limits for fuzzing: the real ones, scaled down so a decompression bomb or a
/// range flood reaches them in milliseconds rather than seconds.
func fuzzOptions(_ input: UnsafeRawBufferPointer) -> ImportOptions {
    // Odd-sized inputs also run the --skip-invalid path.
    var options = ImportOptions(skipInvalid: input.count % 2 == 1)
    options.maximumInputBytes = 1 << 20
    options.maximumRanges = 50_000
    return options
}

/// The gzip/xz layer, format detection, then the importer for `format` (forced,
/// as `--format` would), with what must hold of its result or its error.
func importTarget(_ format: SourceFormat) -> FuzzTarget {
    FuzzTarget(format.rawValue, "\(format.rawValue) importer, behind the gzip/xz layer and format detection") { input throws(FuzzFailure) in
        var options = fuzzOptions(input)
        // A CIDR list's country comes from --country (else the file's name, here none).
        if format == .cidrList { options.listCountry = "IT" }
        try importBytes(Array(input), path: "fuzz-input", format: format, options: options)
    }
}

func importBytes(_ raw: [UInt8], path: String, format: SourceFormat, options: ImportOptions,
                 locations: MaxMindCSV.Locations = [:]) throws(FuzzFailure) {
    let file: SourceFile
    do throws(ImportError) {
        file = try SourceFile.decoding(raw, path: path, options: options)
    } catch {
        try expectImportError(error, path: path)
        return
    }
    _ = SourceFormat.detect(file)
    do {
        let source = try SourceLoader.parse(file, format: format, locations: locations, options: options)
        try expectNormalForm(source.v4, "the \(format.rawValue) import")
        try expectNormalForm(source.v6, "the \(format.rawValue) import")
        guard source.v4.ranges.count + source.v6.ranges.count <= options.maximumRanges else {
            throw FuzzFailure("the import holds more ranges than maximumRanges")
        }
        guard !(source.v4.isEmpty && source.v6.isEmpty) else { throw FuzzFailure("an import succeeded with no ranges") }
    } catch let failure as FuzzFailure {
        throw failure
    } catch let error as ImportError {
        try expectImportError(error, path: path)
    } catch {
        throw FuzzFailure("unexpected error type: \(error)")
    }
}

/// An import error names the file (as logs show it: escaped and cut, since an
/// archive member's name is outside text too) and shows outside text escaped and cut.
func expectImportError(_ error: ImportError, path: String) throws(FuzzFailure) {
    try expectShownSafely(error.description, "the import error")
    guard error.description.hasPrefix(SafeText.field(path, limit: 300)) else {
        throw FuzzFailure("the import error does not name the file: \(error)")
    }
}

/// MaxMind CSV: a Locations file and a blocks file in one input, split at the
/// first `--blocks--` line; the blocks are read with whatever locations parsed.
let maxmindCSVTarget = FuzzTarget("maxmind-csv", "MaxMind CSV: Locations, then blocks (split at a --blocks-- line)") { input throws(FuzzFailure) in
    let raw = Array(input)
    let separator = Array("\n--blocks--\n".utf8)
    var split = raw.count
    if raw.count >= separator.count {
        for i in 0...(raw.count - separator.count) where raw[i] == separator[0] && raw[i..<i + separator.count].elementsEqual(separator) {
            split = i
            break
        }
    }
    let options = fuzzOptions(input)
    var locations: MaxMindCSV.Locations = [:]
    do throws(ImportError) {
        let file = try SourceFile.decoding(Array(raw[..<split]), path: "fuzz-Locations-en.csv", options: options)
        locations = try MaxMindCSV.parseLocations(file)
    } catch {
        try expectImportError(error, path: "fuzz-Locations-en.csv")
    }
    let blocks = split < raw.count ? Array(raw[(split + separator.count)...]) : []
    try importBytes(blocks, path: "fuzz-Blocks-IPv4.csv", format: .maxmindCSV, options: options, locations: locations)
}

/// MMDB through libmaxminddb, which opens a path: the input is written to a
/// private file in /dev/shm first (no disk traffic).
let mmdbTarget = FuzzTarget("mmdb", "MaxMind DB through libmaxminddb (tree walk, country records)") { input throws(FuzzFailure) in
    let path = scratchFile("input.mmdb")
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw FuzzFailure("cannot write \(path)") }
    let written = write(fd, input.baseAddress, input.count)
    close(fd)
    guard written == input.count else { throw FuzzFailure("cannot write \(path)") }
    try importBytes(Array(input), path: path, format: .mmdb, options: fuzzOptions(input))
}

/// A file in this process's scratch directory.
func scratchFile(_ name: String) -> String {
    scratchDirectory + "/" + name
}

/// A directory of this process's own under /dev/shm (else /tmp), made once and
/// removed at exit.
/// Scripts/fuzz.sh names one ($GEOGATE_FUZZ_SCRATCH) and removes it after the run,
/// since a crash ends the process without its atexit handlers.
let scratchDirectory: String = {
    if let given = getenv("GEOGATE_FUZZ_SCRATCH").map({ String(cString: $0) }) {
        mkdir(given, 0o700)
        return given
    }
    let base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
    var template = Array("\(base)/geogate-fuzz-XXXXXX".utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    precondition(made != nil, "cannot make a scratch directory under \(base)")
    let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    atexit { removeScratch() }
    return path
}()

/// Removes the scratch directory: plain files, and the daemon's and the archive's
/// directories of plain files.
func removeScratch() {
    for sub in ["members", "daemon"] {
        emptyDirectory(scratchDirectory + "/" + sub)
        rmdir(scratchDirectory + "/" + sub)
    }
    emptyDirectory(scratchDirectory)
    rmdir(scratchDirectory)
}
