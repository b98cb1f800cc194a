import Foundation
import GeoGateCore
import GeoGateFirewall
import GeoGatePolicy
import GeoGateTrie
import Testing

/// `geogate refresh` and `geogate rollback` inside a network namespace of the
/// test's own: after each, the kernel's sets hold exactly what the live trie
/// plans; a refused refresh leaves them as they were; no temporary set is left.
@Suite(.serialized, .enabled(if: namespacesAvailable, "needs root and ip netns"))
struct RefreshSetsTests {
    func config(_ scratch: Scratch) -> String {
        refreshConfig(scratch, database: scratch.path + "/live.trie", reloadDaemon: false)
    }

    @Test func setsFollowEachRefreshAndRollback() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let configPath = config(scratch)
        let live = scratch.path + "/live.trie"
        let ns = Namespace(scratch, tag: "refr")
        defer { ns.remove() }
        func refresh(_ command: String = "refresh") -> CommandResult {
            ns.run("\"$GEOGATE\" \(command) --config \(configPath)")
        }

        // 1. The first data: IT is 198.51.100.0/24 and 2001:db8:1::/48.
        scratch.write("dbip.csv", testDataset)
        let first = refresh()
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stderr.contains("sets: geogate-full-v4: created") && first.stderr.contains("sets: geogate-full-v6: created"), "\(first.stderr)")
        try expectKernelSetsAsPlanned(ns, configPath, live, "first refresh")
        #expect(ns.run("ipset -q test geogate-full-v4 198.51.100.7 && echo in").stdout == "in\n")

        // 2. New data: 198.51.100.0/24 moves to CN, 203.0.113.0/24 is IT.
        scratch.write("dbip.csv", """
            198.51.100.0,198.51.100.255,CN
            203.0.113.0,203.0.113.255,IT
            192.0.2.0,192.0.2.255,CN
            2001:db8:1::,2001:db8:1:ffff:ffff:ffff:ffff:ffff,CN
            2001:db8:3::,2001:db8:3:ffff:ffff:ffff:ffff:ffff,IT

            """)
        let second = refresh()
        #expect(second.status == 0, "\(second.stderr)")
        try expectKernelSetsAsPlanned(ns, configPath, live, "second refresh")
        #expect(ns.run("ipset -q test geogate-full-v4 198.51.100.7 || echo out; ipset -q test geogate-full-v4 203.0.113.9 && echo in").stdout
                == "out\nin\n")
        #expect(ns.run("ipset -q test geogate-full-v6 2001:db8:3::1 && echo in").stdout == "in\n")

        // 3. A broken source: refused, the sets and the trie stay as they are.
        let before = ns.run("ipset save").stdout
        let trieBefore = try Data(contentsOf: URL(fileURLWithPath: live))
        scratch.write("dbip.csv", "203.0.113.0,203.0.113.255,IT\nnot,a,range\n")
        let broken = refresh()
        #expect(broken.status == 1, "\(broken.stderr)")
        #expect(broken.stderr.contains("\(scratch.path)/dbip.csv:2: field 1: not an IP address"), "names the file and line: \(broken.stderr)")
        #expect(ns.run("ipset save").stdout == before)
        #expect(try Data(contentsOf: URL(fileURLWithPath: live)) == trieBefore)

        // 4. Rollback: the first data's sets again.
        let back = refresh("rollback")
        #expect(back.status == 0, "\(back.stderr)")
        try expectKernelSetsAsPlanned(ns, configPath, live, "rollback")
        #expect(ns.run("ipset -q test geogate-full-v4 198.51.100.7 && echo in").stdout == "in\n")
    }
}
