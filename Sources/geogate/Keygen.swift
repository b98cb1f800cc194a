import ArgumentParser
import GeoGateCore
import GeoGateFleet
#if canImport(Glibc)
import Glibc
#endif

/// `geogate keygen --out DIR`: the Ed25519 key pair a compile host signs tries
/// with (GeoGateFleet/Signing.swift; Docs/FORMAT.md, "Signatures").
struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make an Ed25519 key pair for signing tries: DIR/geogate.key (mode 0600) and DIR/geogate.pub.",
        discussion: """
            Never overwrites a key. Keep geogate.key on the compile host only (`compile --sign-key`); give \
            geogate.pub to the nodes. Prints the key id that `info` and the logs name the key by. Exit 0 made, 1 \
            refused or failed.
            """)
    @Option(help: ArgumentHelp("The directory for the two files.", valueName: "DIR")) var out: String

    func run() throws {
        do {
            let id = try TrieSigning.makeKeyPair(in: out)
            print("key \(id): \(out)/geogate.key (private, keep it here), \(out)/geogate.pub (for the nodes)")
        } catch {
            printError("geogate: \(error)")
            throw ExitCode(1)
        }
    }
}
