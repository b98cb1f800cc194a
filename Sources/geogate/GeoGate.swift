import ArgumentParser

@main
struct GeoGate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "geogate",
        abstract: "Country IP filtering for Linux servers: compile country data into a compact trie, answer lookups, export networks, build firewall sets, decide addresses for profiles.",
        discussion: """
            Data flow: sources (MMDB, CSV, RIR stats, range files, CIDR lists) → `compile` → trie file → \
            `lookup`, `info`, `export`. See README.md and Docs/.
            """,
        version: "0.1.0",
        subcommands: [Compile.self, Lookup.self, Info.self, Export.self, Sets.self, Apply.self, Check.self, Serve.self,
                      Refresh.self, Rollback.self]
    )
}

/// The `--db FILE` option shared by the commands that read a trie file.
struct DatabaseOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The trie file to read.", valueName: "FILE"))
    var db: String
}
