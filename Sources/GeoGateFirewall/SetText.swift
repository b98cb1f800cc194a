import GeoGateCore
#if canImport(Glibc)
import Glibc
#endif

/// `ipset restore` text that replaces each set atomically: the live set is created
/// first if missing (so a mismatch stops the restore before anything changed), a
/// temporary twin is filled, swapped with the live set, and destroyed. `ipset
/// restore` runs the lines as one batch; the live set is never empty or partial.
/// The twins' names are new in every rendering (`gg-<random>-<i>`), so two
/// restores at once cannot fill each other's. (`geogate apply` also checks that the
/// live sets are geogate's, and takes the run lock; a bare restore cannot.)
public enum IPSetText {
    public static func render(_ sets: [FirewallSet], into out: inout String,
                              tag: String = String(UInt64.random(in: 0..<(1 << 40)), radix: 16), now: Int64 = Int64(time(nil))) {
        for (i, set) in sets.enumerated() {
            let temporary = "gg-\(tag)-\(i)"
            let family = set.family == .v4 ? "inet" : "inet6"
            // Run-time sets take element timeouts (`timeout 0`: none by default).
            let create = "hash:net family \(family) hashsize \(set.hashSize) maxelem \(set.maxElements)" + (set.expiries != nil ? " timeout 0" : "")
            out += "create \(set.name) \(create) -exist\n"
            out += "create \(temporary) \(create) -exist\n"
            out += "flush \(temporary)\n"
            if let timeouts = set.timeouts(now: now) {
                for (cidr, t) in zip(set.cidrs, timeouts) { out += "add \(temporary) \(cidr) timeout \(t)\n" }
            } else {
                for cidr in set.cidrs { out += "add \(temporary) \(cidr)\n" }
            }
            out += "swap \(temporary) \(set.name)\n"
            out += "destroy \(temporary)\n"
        }
    }
}

/// `nft -f` text: one transaction that creates the `inet geogate` table and each
/// interval set if missing, flushes and refills them. nft applies a file all or
/// nothing, so rules using the sets never see them empty or partial. Elements are
/// the exact ranges (nft interval sets store ranges natively).
public enum NFTText {
    public static let table = "geogate"

    public static func render(_ sets: [FirewallSet], into out: inout String, now: Int64 = Int64(time(nil))) {
        out += "add table inet \(table)\n"
        for set in sets {
            let type = set.family == .v4 ? "ipv4_addr" : "ipv6_addr"
            out += "add set inet \(table) \(set.name) { type \(type); flags interval\(set.expiries != nil ? ", timeout" : ""); }\n"
            out += "flush set inet \(table) \(set.name)\n"
            // Run-time sets: their disjoint CIDRs, each with its timeout (none: until unlisted).
            if let timeouts = set.timeouts(now: now) {
                for start in stride(from: 0, to: set.cidrs.count, by: 1000) {
                    let end = min(start + 1000, set.cidrs.count)
                    out += "add element inet \(table) \(set.name) { "
                    out += (start..<end).map { set.cidrs[$0].description + (timeouts[$0] > 0 ? " timeout \(timeouts[$0])s" : "") }.joined(separator: ", ")
                    out += " }\n"
                }
                continue
            }
            var line = 0
            for interval in set.addresses.intervals {
                if line == 0 { out += "add element inet \(table) \(set.name) { " } else { out += ", " }
                let first = IPAddress.format(interval.first, family: set.family)
                out += interval.first == interval.last ? first : "\(first)-\(IPAddress.format(interval.last, family: set.family))"
                line += 1
                if line == 1000 { out += " }\n"; line = 0 }
            }
            if line > 0 { out += " }\n" }
        }
    }
}
