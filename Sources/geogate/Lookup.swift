import ArgumentParser
import GeoGateCore
import GeoGateTrie
#if canImport(Glibc)
import Glibc
#endif

struct Lookup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the country of each address: one line 'IP CC' ('--' for none).",
        discussion: "Addresses come from the arguments, or from standard input, one a line. An IPv4-mapped IPv6 address answers as its IPv4 address. A line that is not an address is reported on standard error and makes the exit status 1.")

    @OptionGroup var database: DatabaseOption

    @Argument(help: ArgumentHelp("Addresses to look up (default: read standard input).", valueName: "IP"))
    var addresses: [String] = []

    func run() throws {
        let trie = try openTrie(try database.path())
        let view = trie.view
        var out = OutputBuffer()
        var bad = 0
        func answer(_ text: String, line: Int?) {
            let trimmed = text.trimmingBlanks
            if trimmed.isEmpty && line != nil { return }
            guard let address = IPAddress(trimmed) else {
                bad += 1
                printError("geogate: \(line.map { "stdin:\($0): " } ?? "")not an IP address: '\(trimmed)'")
                return
            }
            let code = view.countryCode(index: view.countryIndex(of: address))
            out.write("\(trimmed) \(code?.description ?? "--")\n")
        }
        if addresses.isEmpty {
            var number = 0
            while let line = readLine(strippingNewline: true) {
                number += 1
                answer(line, line: number)
            }
        } else {
            for a in addresses { answer(a, line: nil) }
        }
        out.flush()
        if bad > 0 { throw ExitCode(1) }
    }
}

extension String {
    var trimmingBlanks: String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" || c == "\r" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "\r" { s = s.dropLast() }
        return String(s)
    }
}
