import Foundation
import GeoGateTestSupport
import Testing
@testable import GeoGateCore
@testable import GeoGatePolicy

/// Drop-in profiles: `profiles.d/<name>.conf` beside the config (or `profiles-dir:`),
/// one profile a file, so a provisioning system adds or removes a company without
/// editing the main file; every error names the drop-in file (and line).
struct DropInTests {
    final class Directory {
        let path = NSTemporaryDirectory() + "geogate-dropin-" + UUID().uuidString
        init() { try! FileManager.default.createDirectory(atPath: path + "/profiles.d", withIntermediateDirectories: true) }
        deinit { try? FileManager.default.removeItem(atPath: path) }
        func write(_ name: String, _ text: String) { try! text.write(toFile: path + "/" + name, atomically: true, encoding: .utf8) }
        func load() -> Result<GeoGateConfig, ConfigError> { Result { () throws(ConfigError) in try GeoGateConfig.load(path: path + "/geogate.conf") } }
        func error() -> String {
            switch load() {
            case .success: "no error"
            case .failure(let e): e.description
            }
        }
    }

    let main = """
        profiles:
          full:
            scope: full-server
            allow-countries: [IT]

        """

    @Test func dropInsAddProfilesInNameOrder() throws {
        let d = Directory()
        d.write("geogate.conf", main)
        d.write("profiles.d/zeta.conf", "scope: web-only\nallow-countries: [DE]\n")
        d.write("profiles.d/acme.conf", "# ACME Srl: its offices only\nscope: web-only\nallow-countries: []\nallow-networks: [198.51.100.0/24, 2001:db8:ac::/48]\n")
        d.write("profiles.d/acme.conf.dpkg-old", "not: yaml: at all: [")
        d.write("profiles.d/.hidden.conf", "not: yaml: at all: [")
        let cfg = try d.load().get()
        #expect(cfg.profiles.map(\.name) == ["full", "acme", "zeta"])
        #expect(cfg.dropInFiles == [d.path + "/profiles.d/acme.conf", d.path + "/profiles.d/zeta.conf"])
        let acme = cfg.policy(cfg.profile(named: "acme")!)
        #expect(acme.decide(ip("198.51.100.7"), country: cc("US")).description == "ALLOW US allow-network 198.51.100.0/24")
        #expect(acme.decide(ip("203.0.113.7"), country: cc("IT")).description == "DENY IT country-not-allowed")
        // Parsed as text (tests, the fuzzer), a config reads no drop-in.
        #expect(try GeoGateConfig.parse(main, path: d.path + "/geogate.conf").profiles.count == 1)
    }

    @Test func errorsNameTheDropInFile() {
        let d = Directory()
        d.write("geogate.conf", main)
        let file = d.path + "/profiles.d/acme.conf"
        d.write("profiles.d/acme.conf", "scope: web-only\nallow-countries:\n  - IT\n  - XX\n")
        #expect(d.error().hasPrefix("\(file):4: profiles.acme.allow-countries[1]: unknown country code"), "\(d.error())")
        d.write("profiles.d/acme.conf", "scope: web-only\nallow-countries: [IT\n")
        #expect(d.error().hasPrefix("\(file):"), "a YAML error names the drop-in: \(d.error())")
        d.write("profiles.d/acme.conf", "scope: web-only\nallow-countries: [IT]\nset-nmae: x\n")
        #expect(d.error().hasPrefix("\(file):3: profiles.acme"), "\(d.error())")
        d.write("profiles.d/acme.conf", "")
        #expect(d.error().hasPrefix("\(file): empty"), "\(d.error())")
        try? FileManager.default.removeItem(atPath: file)
        d.write("profiles.d/full.conf", "scope: web-only\nallow-countries: [IT]\n")
        #expect(d.error() == "\(d.path)/profiles.d/full.conf: profiles.full: profile full is also defined in \(d.path)/geogate.conf", "\(d.error())")
        try? FileManager.default.removeItem(atPath: d.path + "/profiles.d/full.conf")
        d.write("profiles.d/ACME.conf", "scope: web-only\nallow-countries: [IT]\n")
        #expect(d.error().hasPrefix("\(d.path)/profiles.d/ACME.conf:1: profiles.ACME: a profile name is"), "\(d.error())")
        try? FileManager.default.removeItem(atPath: d.path + "/profiles.d/ACME.conf")
        d.write("profiles.d/b.conf", "scope: full-server\nallow-countries: [IT]\nset-name: geogate-full\n")
        #expect(d.error().hasPrefix("\(d.path)/profiles.d/b.conf: profiles.b.set-name: set name \"geogate-full\" is also used by profile full"), "\(d.error())")
        try? FileManager.default.removeItem(atPath: d.path + "/profiles.d/b.conf")
        // A named directory that is missing is an error; the default one may be missing.
        d.write("geogate.conf", main + "profiles-dir: \(d.path)/nowhere\n")
        #expect(d.error().hasPrefix("\(d.path)/nowhere: profiles-dir: cannot read the directory"), "\(d.error())")
        d.write("geogate.conf", main)
        try? FileManager.default.removeItem(atPath: d.path + "/profiles.d")
        #expect(d.error() == "no error")
        // A main file with no profile of its own, and drop-ins: fine.
        try? FileManager.default.createDirectory(atPath: d.path + "/profiles.d", withIntermediateDirectories: true)
        d.write("geogate.conf", "database: /x.trie\n")
        #expect(d.error().contains("at least one profile is needed"), "\(d.error())")
        d.write("profiles.d/acme.conf", "scope: web-only\nallow-countries: [IT]\n")
        #expect(d.error() == "no error")
    }
}
