import Foundation
import GeoGateCore
import GeoGateFirewall
import GeoGatePolicy
@_exported import GeoGateTestSupport
import GeoGateTrie
import Testing

/// A scratch directory for one test, removed by `cleanup()`.
struct Scratch {
    let path: String

    init() {
        path = NSTemporaryDirectory() + "geogate-fw-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        // Readable by the unprivileged user of the CAP_NET_ADMIN test.
        chmod(path, 0o755)
    }

    @discardableResult
    func write(_ name: String, _ text: String) -> String {
        let file = path + "/" + name
        try! text.write(toFile: file, atomically: true, encoding: .utf8)
        chmod(file, 0o644)
        return file
    }

    func cleanup() { try? FileManager.default.removeItem(atPath: path) }

    /// The config lines that keep a test's run lock and set record in its scratch
    /// directory (never the machine's /run/geogate).
    var runtimeConfig: String { "runtime-dir: \(path)/run\nlock-wait: 60\n" }
}

/// Runs a bash script (with $GEOGATE set to the binary); output goes through
/// files, so a chatty command can never block on a full pipe.
func bash(_ script: String, in scratch: Scratch) -> CommandResult {
    let id = UUID().uuidString
    let scriptFile = scratch.write("script-\(id).sh", "set -u\ncd \(scratch.path)\n" + script)
    let out = scratch.path + "/out-\(id)", err = scratch.path + "/err-\(id)"
    var environment = ProcessInfo.processInfo.environment
    environment["GEOGATE"] = geogateBinary
    environment["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"
    let status = run("/bin/bash", [scriptFile], environment: environment, stdout: out, stderr: err)
    return CommandResult(status: status,
                         stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
                         stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
}

/// Root with CAP_NET_ADMIN: `ip netns add` works (checked once, with a namespace
/// that is removed at once).
let namespacesAvailable: Bool = {
    guard geteuid() == 0 else { return false }
    let scratch = Scratch()
    defer { scratch.cleanup() }
    let name = "gg-probe-\(getpid())"
    return bash("ip netns add \(name) && ip netns del \(name)", in: scratch).status == 0
}()

/// A network namespace of the test's own (never this machine's firewall). Scripts
/// run inside it; `remove()` deletes it with everything in it (sets, rules, veths).
struct Namespace {
    let name: String
    let scratch: Scratch

    init(_ scratch: Scratch, tag: String) {
        self.scratch = scratch
        name = "gg-\(tag)-\(UInt32.random(in: 0...UInt32.max))"
        let r = bash("ip netns add \(name) && ip netns exec \(name) ip link set lo up", in: scratch)
        precondition(r.status == 0, "cannot create network namespace \(name) (root and iproute2 needed): \(r.stderr)")
    }

    /// Runs `script` inside the namespace.
    @discardableResult
    func run(_ script: String) -> CommandResult {
        let file = scratch.write("ns-\(UUID().uuidString).sh", "set -u\ncd \(scratch.path)\n" + script)
        return bash("exec ip netns exec \(name) bash \(file)", in: scratch)
    }

    func remove() { _ = bash("ip netns pids \(name) | xargs -r kill -9 2>/dev/null; ip netns del \(name)", in: scratch) }
}

/// A small dataset for packet tests: documentation prefixes given countries.
let testDataset = """
    198.51.100.0,198.51.100.255,IT
    192.0.2.0,192.0.2.255,CN
    2001:db8:1::,2001:db8:1:ffff:ffff:ffff:ffff:ffff,IT
    2001:db8:2::,2001:db8:2:ffff:ffff:ffff:ffff:ffff,CN

    """

/// Compiles `dataset` (DB-IP CSV text; nil = the embedded dataset) and writes
/// `config` (with the scratch runtime directory) as geogate.conf.
func prepare(_ scratch: Scratch, dataset: String?, config: String) -> (trie: String, config: String) {
    let trie = scratch.path + "/countries.trie"
    let input = dataset.map { scratch.write("data.csv", $0) } ?? ""
    let r = bash("\"$GEOGATE\" compile -q \(input) -o \(trie) --build-time 0", in: scratch)
    precondition(r.status == 0, "compile failed: \(r.stderr)")
    chmod(trie, 0o644)
    return (trie, scratch.write("geogate.conf", scratch.runtimeConfig + config))
}

/// A config whose refresh reads `<scratch>/dbip.csv` into `database`, with the
/// guard wide open (the tests move whole countries) and the `full` profile.
func refreshConfig(_ scratch: Scratch, database: String, reloadDaemon: Bool) -> String {
    scratch.write("geogate.conf", scratch.runtimeConfig + """
        database: \(database)
        daemon:
          socket: \(scratch.path)/geogate.sock
          watch-interval: 0
        profiles:
          full:
            scope: full-server
            allow-countries: [IT]
            no-country: deny
        refresh:
          state-dir: \(scratch.path)/state
          min-ranges: 2
          max-family-change: 100
          max-country-change: 100
          reload-daemon: \(reloadDaemon)
          sources:
            - file: \(scratch.path)/dbip.csv

        """)
}

let testConfig = """
    profiles:
      full:
        scope: full-server
        allow-countries: [IT]
        no-country: deny

    """

/// The sets `apply` keeps for profile `full`: its own two and the four of its
/// run-time entries, as `ipset list -n | sort | tr '\\n' ' '` prints them.
let fullProfileSetNames = "geogate-full-rt-allow-v4 geogate-full-rt-allow-v6 geogate-full-rt-block-v4 geogate-full-rt-block-v6 geogate-full-v4 geogate-full-v6 "

/// Joins two namespaces with a veth pair: the server has `serverAddresses`, the
/// client `clientAddresses` (host routes, no DAD), each routed to the other.
func connect(_ server: Namespace, _ client: Namespace, link: String,
             serverAddresses: [String], clientAddresses: [String], scratch: Scratch) -> CommandResult {
    var script = """
        set -e
        ip link add \(link)s type veth peer name \(link)c
        ip link set \(link)s netns \(server.name); ip link set \(link)c netns \(client.name)
        ip -n \(server.name) link set \(link)s up; ip -n \(client.name) link set \(link)c up

        """
    for (ns, dev, mine, theirs) in [(server, "\(link)s", serverAddresses, clientAddresses),
                                    (client, "\(link)c", clientAddresses, serverAddresses)] {
        for a in mine {
            let v6 = a.contains(":")
            script += "ip -n \(ns.name) addr add \(a)/\(v6 ? 128 : 32) dev \(dev)\(v6 ? " nodad" : "")\n"
        }
        for a in theirs { script += "ip -n \(ns.name) route add \(a)/\(a.contains(":") ? 128 : 32) dev \(dev)\n" }
    }
    return bash(script, in: scratch)
}

/// The kernel's members of every set profile `full` plans from the trie at
/// `triePath` (its own two and the four run-time sets), element for element, and
/// no other set (no temporary one left) in namespace `ns`.
func expectKernelSetsAsPlanned(_ ns: Namespace, _ configPath: String, _ triePath: String, _ label: String,
                               sourceLocation: SourceLocation = #_sourceLocation) throws {
    let trie = try TrieFile(path: triePath)
    let config = try GeoGateConfig.load(path: configPath)
    let plan = try SetPlanner.plan(config: config, maps: [.v4: trie.rangeMap(.v4), .v6: trie.rangeMap(.v6)],
                                   profile: nil, perCountry: false)
    #expect(plan.map(\.name) == ["geogate-full-v4", "geogate-full-v6", "geogate-full-rt-block-v4", "geogate-full-rt-block-v6",
                                  "geogate-full-rt-allow-v4", "geogate-full-rt-allow-v6"], sourceLocation: sourceLocation)
    for set in plan {
        let saved = ns.run("ipset save \(set.name) | awk '$1 == \"add\" { print $3 }'").stdout
            .split(separator: "\n").compactMap { CIDR($0) }
        #expect(Set(saved) == Set(set.cidrs) && saved.count == set.cidrs.count,
                "\(label): \(set.name) holds \(saved), the trie plans \(set.cidrs)", sourceLocation: sourceLocation)
    }
    let names = ns.run("ipset list -n | sort | tr '\\n' ' '").stdout
    #expect(names == fullProfileSetNames, "\(label): no temporary set is left: \(names)", sourceLocation: sourceLocation)
}
