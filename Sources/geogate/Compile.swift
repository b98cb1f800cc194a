import ArgumentParser
import Crypto
import GeoGateFleet
import GeoGateCore
import GeoGateImport
import GeoGateTrie
#if canImport(Glibc)
import Glibc
#endif

struct Compile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compile country IP data into a trie file.",
        discussion: """
            Inputs: IPFire/Tor range files, DB-IP country lite CSV, MaxMind GeoLite2/GeoIP2 Country CSV \
            (Blocks files with their Locations file) or .mmdb, RIR delegated(-extended) statistics, plain \
            CIDR/range lists (ipdeny zones). Formats are detected from content; .gz and .xz inputs are \
            decompressed. With no inputs, compiles the embedded dataset in Data/.
            Merge rule: inputs are laid over each other in order; where two overlap, the later one wins.
            The output is written to a temporary file, fsynced and renamed: never partial.
            """)

    @Argument(help: ArgumentHelp("Input files (default: the embedded dataset in Data/).", valueName: "INPUT"))
    var inputs: [String] = []

    @Option(help: ArgumentHelp("Force the input format: \(SourceFormat.allCases.map(\.rawValue).filter { $0 != "maxmind-locations" }.joined(separator: ", ")).", valueName: "F"))
    var format: String?

    @Option(name: [.short, .customLong("output")], help: ArgumentHelp("The trie file to write.", valueName: "FILE"))
    var output: String

    @Flag(help: "Count and skip malformed lines instead of failing on the first one.")
    var skipInvalid = false

    @Option(help: ArgumentHelp("The country of plain CIDR/range list inputs (default: from the file name, e.g. ch.zone).", valueName: "CC"))
    var country: String?

    @Option(help: ArgumentHelp("Build time to record, in Unix seconds (default: $SOURCE_DATE_EPOCH, else now).", valueName: "SECONDS"))
    var buildTime: Int64?

    @Option(help: ArgumentHelp("The largest input accepted, as stored and after decompression, in MiB.", valueName: "MB"))
    var maxInputMb = ImportOptions.defaultMaximumInputBytes >> 20

    @Option(help: ArgumentHelp("The most ranges all inputs together may hold.", valueName: "N"))
    var maxRanges = ImportOptions.defaultMaximumRanges

    @Option(help: ArgumentHelp("The most trie nodes the compile may build.", valueName: "N"))
    var maxNodes = TrieWriter.defaultMaximumNodes

    @Option(help: ArgumentHelp("Also write FILE.sig beside the trie: an Ed25519 signature over its bytes, with this private key (`geogate keygen`).", valueName: "KEY"))
    var signKey: String?
    @Flag(name: .shortAndLong, help: "Print nothing but errors.")
    var quiet = false

    func validate() throws {
        if let format, SourceFormat(rawValue: format) == nil || format == "maxmind-locations" {
            throw ValidationError("unknown --format '\(format)'; one of: \(SourceFormat.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard (1...4096).contains(maxInputMb) else { throw ValidationError("--max-input-mb is 1...4096") }
        guard (1...100_000_000).contains(maxRanges) else { throw ValidationError("--max-ranges is 1...100000000") }
        guard (1...100_000_000).contains(maxNodes) else { throw ValidationError("--max-nodes is 1...100000000") }
        if let country, CountryCode(country) == nil {
            throw ValidationError("--country '\(country)' is not a known country code")
        }
    }

    func run() throws {
        let started = monotonicSeconds()
        var paths = inputs
        if paths.isEmpty {
            guard let directory = embeddedDataDirectory() else {
                printError("geogate: the embedded dataset (Data/geoip.gz, Data/geoip6.gz) was not found; set GEOGATE_DATA or name the inputs")
                throw ExitCode(2)
            }
            paths = [directory + "/geoip.gz", directory + "/geoip6.gz"]
        }
        var options = ImportOptions(skipInvalid: skipInvalid, listCountry: country)
        options.maximumInputBytes = maxInputMb << 20
        options.maximumRanges = maxRanges
        var sources: [ImportedSource]
        do {
            sources = try SourceLoader.load(paths: paths, format: format.flatMap(SourceFormat.init(rawValue:)), options: options)
        } catch {
            printError("geogate: \(error)")
            throw ExitCode(1)
        }
        // The key first: a bad key fails before anything is written.
        var key: TrieSigningKey?
        if let signKey {
            do { key = TrieSigningKey(try TrieSigning.privateKey(signKey)) } catch {
                printError("geogate: --sign-key: \(error)")
                throw ExitCode(2)
            }
        }
        let dataset = CountryDataset(taking: &sources)
        let time = buildTime ?? getenv("SOURCE_DATE_EPOCH").flatMap { Int64(String(cString: $0)) } ?? Int64(time(nil))
        let metadataSources = sources.map {
            TrieMetadata.Source(name: $0.name, sha256: $0.sha256, storedSize: UInt64($0.storedSize), format: $0.format.rawValue)
        }
        do {
            let bytes = try TrieWriter.bytes(v4: dataset.v4, v6: dataset.v6, sources: metadataSources, buildTime: time, maxNodes: maxNodes)
            try AtomicFile.write(bytes, to: output)
            if let key { try AtomicFile.write(try TrieSigning.sign(bytes, with: key.key), to: output + ".sig") }
            if !quiet {
                for s in sources {
                    var line = "  \(s.name) [\(s.format.rawValue)]: \(s.v4Count) IPv4 and \(s.v6Count) IPv6 ranges"
                    if s.skippedLines > 0 { line += ", \(s.skippedLines) malformed lines skipped" }
                    printError(line)
                }
                let elapsed = monotonicSeconds() - started
                printError("geogate: wrote \(output): \(bytes.count) bytes, \(dataset.v4.ranges.count) IPv4 and \(dataset.v6.ranges.count) IPv6 ranges, \(Set(dataset.v4.ranges.map(\.country)).union(dataset.v6.ranges.map(\.country)).count) countries, in \(Int(elapsed * 1000)) ms")
            }
        } catch let error as TrieWriteError {
            printError("geogate: \(output): \(error)")
            throw ExitCode(1)
        } catch {
            printError("geogate: \(error)")
            throw ExitCode(1)
        }
    }
}


/// A private key held for the compile (a struct, so the optional reads plainly).
struct TrieSigningKey {
    let key: Curve25519.Signing.PrivateKey
    init(_ key: Curve25519.Signing.PrivateKey) { self.key = key }
}
