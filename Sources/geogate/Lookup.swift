import ArgumentParser
import GeoGateCore
import GeoGateTrie
#if canImport(Glibc)
import Glibc
#endif

struct Lookup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the country of each address: one line 'IP CC' ('--' for none).",
        discussion: """
            Addresses come from the arguments, or from standard input, one a line (blank lines are skipped). \
            An IPv4-mapped IPv6 address answers as its IPv4 address. A line that holds no address is reported \
            on standard error with its line number and makes the exit status 1; the others are still answered.

            With --field N the address is field N of each line (fields split by runs of blanks, as awk does, \
            or at each --delimiter character, as cut does), and the whole line is printed with the country \
            appended: `geogate lookup --field 1 < /var/log/nginx/access.log`. \
            With --json each answer is one JSON object: {"ip":"192.0.2.1","country":"IT"} (country null for \
            none; with --field, the line too). Input is read in large blocks and looked up in batches: \
            millions of lines a second.
            """)

    @OptionGroup var database: DatabaseOption

    @Option(help: ArgumentHelp("Take the address from this field of each line (1 = the first) and print the line with the country appended.", valueName: "N"))
    var field: Int?

    @Option(help: ArgumentHelp("The field delimiter for --field: one character (default: runs of spaces and tabs).", valueName: "C"))
    var delimiter: String?

    @Flag(help: "One JSON object a line instead of text.")
    var json = false

    @Argument(help: ArgumentHelp("Addresses to look up (default: read standard input).", valueName: "IP"))
    var addresses: [String] = []

    func validate() throws {
        if let field, field < 1 { throw ValidationError("--field counts from 1") }
        if let delimiter {
            guard delimiter.utf8.count == 1, let byte = delimiter.utf8.first, byte != 0x0A else {
                throw ValidationError("--delimiter is one ASCII character other than a newline (got '\(SafeText.field(delimiter, limit: 16))')")
            }
            guard field != nil else { throw ValidationError("--delimiter goes with --field") }
            _ = byte
        }
    }

    func run() throws {
        let trie = try openTrie(try database.path())
        var layout = LookupLayout(json: json)
        if let field {
            layout.field = delimiter.map { .delimited(field, delimiter: $0.utf8.first!) } ?? .blankSeparated(field)
        }
        var stream = LookupStream(view: trie.view, layout: layout, sourceName: addresses.isEmpty ? "stdin" : nil)
        do {
            if addresses.isEmpty { try stream.run(fd: 0) } else { try stream.run(arguments: addresses) }
        } catch {
            printError("geogate: \(error)")
            throw ExitCode(2)
        }
        withExtendedLifetime(trie) {}
        if stream.badLines > 0 { throw ExitCode(1) }
    }
}
