import Foundation
import GeoGateCore
import Testing

/// The filter's switches, in network namespaces of the tests' own: the emergency
/// off (`apply --open`) and the way back, what the boot unit runs (`apply --boot`),
/// a refresh while the filter is open, an unchanged set left alone, and rollback
/// stepping back one trie at a time.
@Suite(.serialized, .enabled(if: namespacesAvailable, "needs root and ip netns"))
struct OnOffTests {
    /// `ipset test` of each address in `set`: "in"/"out", space-separated.
    func probe(_ ns: Namespace, _ set: String, _ addresses: [String]) -> String {
        addresses.map { ns.run("ipset -q test \(set) \($0) && echo in || echo out").stdout.trimmingCharacters(in: .whitespacesAndNewlines) }
            .joined(separator: " ")
    }

    @Test func openSwitchesEveryoneInUntilTheNextApplyAndSurvivesBootAndRefresh() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let configPath = refreshConfig(scratch, database: scratch.path + "/live.trie", reloadDaemon: false)
        scratch.write("geogate.conf", (try String(contentsOfFile: configPath, encoding: .utf8)) + "state-dir: \(scratch.path)/state\n")
        scratch.write("dbip.csv", testDataset)
        let ns = Namespace(scratch, tag: "open")
        defer { ns.remove() }
        func geogate(_ args: String) -> CommandResult { ns.run("\"$GEOGATE\" \(args) --config \(configPath)") }
        #expect(geogate("refresh").status == 0)
        let addresses = ["198.51.100.7", "192.0.2.1", "8.8.8.8"]
        #expect(probe(ns, "geogate-full-v4", addresses) == "in out out")

        // A switch that fails half-way (the second set's swap) puts everything back:
        // the sets hold the plan and no marker says open.
        let failedOpen = ns.run("GEOGATE_FAULT=sets-switch \"$GEOGATE\" apply --open --config \(configPath)")
        #expect(failedOpen.status == 1, "\(failedOpen)")
        #expect(probe(ns, "geogate-full-v4", addresses) == "in out out")
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/state/filter-open"))

        // Emergency off: every address matches, IPv4 and IPv6, and it is recorded.
        let open = geogate("apply --open")
        #expect(open.status == 0 && open.stdout.contains("switched open"), "\(open)")
        #expect(probe(ns, "geogate-full-v4", addresses + ["0.0.0.1", "255.255.255.255"]) == "in in in in in")
        #expect(probe(ns, "geogate-full-v6", ["2001:db8:2::1", "::1", "ffff::1"]) == "in in in")
        #expect(FileManager.default.fileExists(atPath: scratch.path + "/state/filter-open"))

        // A refresh with new data keeps the filter open (the daily timer must not
        // lock the admin out again); so does what the boot unit runs.
        scratch.write("dbip.csv", testDataset + "203.0.113.0,203.0.113.255,IT\n")
        let refresh = geogate("refresh")
        #expect(refresh.status == 0 && refresh.stderr.contains("switched open"), "\(refresh.stderr)")
        #expect(probe(ns, "geogate-full-v4", addresses) == "in in in")
        // At boot the sets are gone (a new kernel); --boot puts back what was live.
        ns.run("ipset destroy")
        try? FileManager.default.removeItem(atPath: scratch.path + "/run")
        let boot = geogate("apply --boot")
        #expect(boot.status == 0, "\(boot)")
        #expect(probe(ns, "geogate-full-v4", addresses) == "in in in")

        // Closing that fails half-way leaves it open, marker and sets alike.
        let failedClose = ns.run("GEOGATE_FAULT=sets-switch \"$GEOGATE\" apply --config \(configPath)")
        #expect(failedClose.status == 1, "\(failedClose)")
        #expect(probe(ns, "geogate-full-v4", addresses) == "in in in")
        #expect(FileManager.default.fileExists(atPath: scratch.path + "/state/filter-open"))

        // The next plain apply closes it, on the new data.
        let close = geogate("apply")
        #expect(close.status == 0, "\(close)")
        #expect(probe(ns, "geogate-full-v4", addresses + ["203.0.113.9"]) == "in out out in")
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/state/filter-open"))
        // And a boot now loads the planned sets.
        ns.run("ipset destroy")
        try? FileManager.default.removeItem(atPath: scratch.path + "/run")
        #expect(geogate("apply --boot").status == 0)
        #expect(probe(ns, "geogate-full-v4", addresses) == "in out out")
    }

    @Test func anUnchangedSetIsNotReloadedButADriftedOneIs() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let (_, configPath) = prepare(scratch, dataset: testDataset, config: "database: \(scratch.path)/countries.trie\n" + testConfig)
        let ns = Namespace(scratch, tag: "same")
        defer { ns.remove() }
        func apply(_ extra: String = "", fault: String? = nil) -> CommandResult {
            ns.run("\(fault.map { "GEOGATE_FAULT=\($0) " } ?? "")\"$GEOGATE\" apply --config \(configPath) \(extra)")
        }
        let first = apply()
        #expect(first.status == 0 && first.stdout.contains("geogate-full-v4: created"), "\(first)")
        // Nothing changed: no temporary set, no swap.
        let again = apply()
        #expect(again.stdout.contains("geogate-full-v4: unchanged") && again.stdout.contains("geogate-full-v6: unchanged"), "\(again)")
        let dry = apply("--dry-run")
        #expect(dry.stdout.contains("geogate-full-v4: unchanged, 7 entries") && !dry.stdout.contains("would change"), "\(dry)")
        // A hand-made change to the set is drift: the next apply reloads it.
        ns.run("ipset add geogate-full-v4 8.8.8.0/24")
        let drifted = apply()
        #expect(drifted.stdout.contains("geogate-full-v4: replaced, 7 entries (was 8)"), "\(drifted)")
        #expect(probe(ns, "geogate-full-v4", ["8.8.8.8", "198.51.100.7"]) == "out in")
        #expect(drifted.stdout.contains("geogate-full-v6: unchanged"))

        // A new plan whose load fails half-way is put back, and the record with it:
        // the next apply must load it, not take the old contents for the new.
        scratch.write("geogate.conf", scratch.runtimeConfig + "database: \(scratch.path)/countries.trie\n"
                      + testConfig.replacingOccurrences(of: "[IT]", with: "[IT, CN]"))
        let failed = apply(fault: "sets-switch")
        #expect(failed.status == 1, "\(failed)")
        #expect(probe(ns, "geogate-full-v4", ["192.0.2.1", "198.51.100.7"]) == "out in", "the old set is back")
        let retried = apply()
        #expect(retried.status == 0 && retried.stdout.contains("geogate-full-v4: replaced"), "\(retried)")
        #expect(probe(ns, "geogate-full-v4", ["192.0.2.1", "198.51.100.7"]) == "in in")
        #expect(probe(ns, "geogate-full-v6", ["2001:db8:2::1"]) == "in")
    }

    @Test func rollbackStepsBackOneTrieAtATimeAndRefreshDoesNotUndoIt() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let live = scratch.path + "/live.trie"
        let configPath = refreshConfig(scratch, database: live, reloadDaemon: false)
        let ns = Namespace(scratch, tag: "back")
        defer { ns.remove() }
        func geogate(_ args: String) -> CommandResult { ns.run("\"$GEOGATE\" \(args) --config \(configPath)") }
        // Three generations of data: 203.0.113.0/24 is IT only in the third;
        // 198.51.100.0/24 is IT only in the first.
        let generations = [testDataset,
                           testDataset.replacingOccurrences(of: "198.51.100.255,IT", with: "198.51.100.255,CN") + "203.0.113.0,203.0.113.127,CN\n",
                           testDataset.replacingOccurrences(of: "198.51.100.255,IT", with: "198.51.100.255,CN") + "203.0.113.0,203.0.113.127,IT\n"]
        for (i, data) in generations.enumerated() {
            scratch.write("dbip.csv", data)
            let r = geogate("refresh")
            #expect(r.status == 0, "generation \(i + 1): \(r.stderr)")
        }
        func state() -> String { probe(ns, "geogate-full-v4", ["198.51.100.7", "203.0.113.9"]) }
        #expect(state() == "out in")
        #expect(FileManager.default.fileExists(atPath: live + ".1") && FileManager.default.fileExists(atPath: live + ".2"))
        let back1 = geogate("rollback")
        #expect(back1.status == 0 && back1.stderr.contains("1 earlier one left"), "\(back1.stderr)")
        #expect(state() == "out out", "the second generation")
        let back2 = geogate("rollback")
        #expect(back2.status == 0, "\(back2.stderr)")
        #expect(state() == "in out", "the first generation: a second rollback goes further back, not forward")
        let none = geogate("rollback")
        #expect(none.status == 1 && none.stderr.contains("no earlier trie"), "\(none.stderr)")
        #expect(state() == "in out")
        // The sources still serve the third generation: the refresh does not bring
        // back data the admin rolled back from, until --force.
        let refresh = geogate("refresh")
        #expect(refresh.status == 3 && refresh.stderr.contains("rolled back"), "\(refresh.stderr)")
        #expect(state() == "in out")
        let forced = geogate("refresh --force")
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(state() == "out in")
    }

    @Test func refreshQuietPrintsNothingWhenUnchanged() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let configPath = refreshConfig(scratch, database: scratch.path + "/live.trie", reloadDaemon: false)
        scratch.write("geogate.conf", (try String(contentsOfFile: configPath, encoding: .utf8)).replacingOccurrences(of: "  sources:", with: "  apply-sets: false\n  sources:"))
        scratch.write("dbip.csv", testDataset)
        let changed = bash("\"$GEOGATE\" refresh -q --config \(configPath)", in: scratch)
        #expect(changed.status == 0 && changed.stderr.contains("changed:") && !changed.stderr.contains("info"), "\(changed.stderr)")
        let unchanged = bash("\"$GEOGATE\" refresh -q --config \(configPath)", in: scratch)
        #expect(unchanged.status == 3 && unchanged.stdout.isEmpty && unchanged.stderr.isEmpty, "\(unchanged)")
        let loud = bash("\"$GEOGATE\" refresh --config \(configPath)", in: scratch)
        #expect(loud.status == 3 && loud.stderr.contains("unchanged"), "\(loud)")
    }
}

/// The same switch with the nft backend: table inet geogate's sets.
@Suite(.serialized, .enabled(if: namespacesAvailable, "needs root and ip netns"))
struct OpenNFTTests {
    @Test func openWithNFTMatchesEveryoneUntilTheNextApply() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let configPath = refreshConfig(scratch, database: scratch.path + "/live.trie", reloadDaemon: false)
        scratch.write("geogate.conf", (try String(contentsOfFile: configPath, encoding: .utf8)) + "state-dir: \(scratch.path)/state\nbackend: nft\n")
        scratch.write("dbip.csv", testDataset)
        let ns = Namespace(scratch, tag: "opnf")
        defer { ns.remove() }
        func geogate(_ args: String) -> CommandResult { ns.run("\"$GEOGATE\" \(args) --config \(configPath)") }
        func probe(_ set: String, _ addresses: [String]) -> String {
            addresses.map { ns.run("nft get element inet geogate \(set) '{ \($0) }' >/dev/null 2>&1 && echo in || echo out").stdout
                .trimmingCharacters(in: .whitespacesAndNewlines) }.joined(separator: " ")
        }
        #expect(geogate("refresh").status == 0)
        #expect(probe("geogate-full-v4", ["198.51.100.7", "8.8.8.8"]) == "in out")
        let open = geogate("apply --open")
        #expect(open.status == 0, "\(open)")
        #expect(probe("geogate-full-v4", ["198.51.100.7", "8.8.8.8", "255.255.255.255"]) == "in in in")
        #expect(probe("geogate-full-v6", ["2001:db8:2::1", "ffff::1"]) == "in in")
        scratch.write("dbip.csv", testDataset + "203.0.113.0,203.0.113.255,IT\n")
        #expect(geogate("refresh").status == 0)
        #expect(probe("geogate-full-v4", ["8.8.8.8"]) == "in", "a refresh keeps it open")
        #expect(geogate("apply").status == 0)
        #expect(probe("geogate-full-v4", ["198.51.100.7", "8.8.8.8", "203.0.113.9"]) == "in out in")
    }
}
