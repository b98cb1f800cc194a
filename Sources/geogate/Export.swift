import ArgumentParser
import GeoGateCore
import GeoGateTrie

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a country's networks as the minimal list of CIDRs, one a line.",
        discussion: "IPv4 first, then IPv6, each in address order. Exporting every country reproduces exactly the compiled data.")

    @OptionGroup var database: DatabaseOption

    @Option(help: ArgumentHelp("The country code.", valueName: "CC"))
    var country: String

    @Option(help: ArgumentHelp("Only this family: 4 or 6.", valueName: "4|6"))
    var family: Int?

    func validate() throws {
        if CountryCode(country) == nil { throw ValidationError("--country '\(country)' is not a known country code") }
        if let family, family != 4 && family != 6 { throw ValidationError("--family must be 4 or 6") }
    }

    func run() throws {
        let trie = try openTrie(try database.path())
        let code = CountryCode(country)!
        var out = OutputBuffer()
        for f in IPFamily.allCases where family == nil || family == f.rawValue {
            for r in trie.rangeMap(f).ranges where r.country == code {
                CIDR.cover(start: r.start, end: r.end, family: f) { out.write("\($0)\n") }
            }
        }
        out.flush()
    }
}
