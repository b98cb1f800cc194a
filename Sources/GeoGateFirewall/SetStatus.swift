import GeoGateCore
#if canImport(Glibc)
import Glibc
#endif

/// One full-server set as the kernel has it, against the plan (`geogate status`).
public struct SetState: Sendable, Codable {
    public var name: String
    public var family: Int
    /// Entries the plan puts in it.
    public var planned: Int
    public var present: Bool
    /// Entries in the kernel; nil when it is missing or cannot be read.
    public var entries: Int?
    /// Planned entries the kernel set lacks, and entries it has beyond the plan
    /// (nil: not compared). Entries are CIDRs for ipset, ranges for nft.
    public var missingEntries: Int?
    public var extraEntries: Int?
    /// The rules that match on the set: "iptables", "ip6tables" or "nft", each
    /// once per rule.
    public var rules: [String]

    public var drifted: Bool { (missingEntries ?? 0) > 0 || (extraEntries ?? 0) > 0 }
}

/// Reads what the kernel holds, never changes it: the sets (libipset, or `nft
/// list`), and the firewall rules that use them (`iptables-save`, `ip6tables-save`,
/// `nft list ruleset`), so that status can say whether the filter is enforced.
public enum SetInspector {
    public static func inspect(_ planned: [FirewallSet], backend: String) -> [SetState] {
        let iptables = commandOutput("iptables-save", tag: "iptables") + commandOutput("ip6tables-save", tag: "ip6tables")
        let ruleset = commandOutput("nft", ["list", "ruleset"])
        var out: [SetState] = []
        let kernel = backend == "ipset" ? try? IPSetKernel() : nil
        for set in planned {
            var state = SetState(name: set.name, family: set.family == .v4 ? 4 : 6, planned: set.cidrs.count, present: false,
                                 entries: nil, missingEntries: nil, extraEntries: nil, rules: [])
            if let kernel {
                if (try? kernel.exists(set.name)) == true, let members = try? kernel.members(of: set.name) {
                    state.present = true
                    state.entries = members.count
                    let live = Set(members), plan = Set(set.cidrs)
                    state.missingEntries = plan.subtracting(live).count
                    state.extraEntries = live.subtracting(plan).count
                }
            } else if let live = nftElements(set.name, family: set.family) {
                state.present = true
                state.planned = set.addresses.intervals.count
                state.entries = live.intervals.count
                var plannedLast: [UInt128: UInt128] = [:], liveLast: [UInt128: UInt128] = [:]
                for i in set.addresses.intervals { plannedLast[i.first] = i.last }
                for i in live.intervals { liveLast[i.first] = i.last }
                state.missingEntries = set.addresses.intervals.filter { liveLast[$0.first] != $0.last }.count
                state.extraEntries = live.intervals.filter { plannedLast[$0.first] != $0.last }.count
            }
            for (tag, line) in iptables where line.hasPrefix("-A ") && line.contains("--match-set \(set.name) ") {
                state.rules.append(tag)
            }
            for (_, line) in ruleset where usesNFTSet(line, set.name) { state.rules.append("nft") }
            out.append(state)
        }
        return out
    }

    /// The ranges of table inet geogate's set `name`, from `nft list set` (nil when
    /// it is missing, or prints an element this reader does not know). nft merges
    /// adjacent ranges of an interval set; the AddressSet normalises the same way.
    static func nftElements(_ name: String, family: IPFamily) -> AddressSet? {
        let lines = commandOutput("nft", ["list", "set", "inet", NFTText.table, name])
        guard lines.contains(where: { $0.line.trimmingCharacters(" \t") == "set \(name) {" }) else { return nil }
        let text = lines.map(\.line).joined(separator: " ")
        guard let start = text.range(of: "elements = {") else { return AddressSet(family: family) }
        guard let end = text[start.upperBound...].firstIndex(of: "}") else { return nil }
        var intervals: [AddressSet.Interval] = []
        for token in text[start.upperBound..<end].split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" }) {
            let t = String(token)
            if t.contains("/"), let cidr = CIDR(t), cidr.family == family {
                intervals.append(.init(first: cidr.first, last: cidr.last))
            } else if let dash = t.firstIndex(of: "-"), let a = IPAddress(String(t[..<dash])),
                      let b = IPAddress(String(t[t.index(after: dash)...])), a.family == family, b.family == family, a.value <= b.value {
                intervals.append(.init(first: a.value, last: b.value))
            } else if let a = IPAddress(t), a.family == family {
                intervals.append(.init(first: a.value, last: a.value))
            } else {
                return nil
            }
        }
        return AddressSet(family: family, intervals: intervals)
    }

    /// A rule line of `nft list ruleset` that names `@name` (not a set definition).
    static func usesNFTSet(_ line: String, _ name: String) -> Bool {
        guard let r = line.range(of: "@" + name) else { return false }
        let after = line[r.upperBound...].first
        return after == nil || !(after!.isLetter || after!.isNumber || after! == "-" || after! == "_")
    }

    /// The lines a read-only command prints (none if it is missing or fails).
    static func commandOutput(_ program: String, _ arguments: [String] = [], tag: String? = nil) -> [(tag: String, line: String)] {
        let command = ([program] + arguments).joined(separator: " ") + " 2>/dev/null"
        guard let pipe = popen("PATH=/usr/sbin:/usr/bin:/sbin:/bin; " + command, "r") else { return [] }
        defer { pclose(pipe) }
        var lines: [(tag: String, line: String)] = []
        var buffer = [CChar](repeating: 0, count: 65536)
        while fgets(&buffer, Int32(buffer.count), pipe) != nil {
            let line = String(cString: buffer).trimmingCharacters("\n")
            lines.append((tag: tag ?? program, line: line))
        }
        return lines
    }
}

extension String {
    /// Without the given characters at either end.
    func trimmingCharacters(_ set: String) -> String {
        var s = Substring(self)
        while let c = s.first, set.contains(c) { s = s.dropFirst() }
        while let c = s.last, set.contains(c) { s = s.dropLast() }
        return String(s)
    }
}
