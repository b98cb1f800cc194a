import GeoGateCore
import GeoGatePolicy

/// How much of the address space a dataset gives a country: what the sanity guard
/// compares between the live trie and a new compile.
struct Coverage: Sendable {
    /// Addresses with a country, per family (Double: an IPv6 sum can pass 2^128).
    var v4: Double
    var v6: Double
    var byCountry: [Family: [CountryCode: Double]]
    var ranges: Int

    enum Family: Hashable, Sendable { case v4, v6 }

    init(v4 map4: RangeMap, v6 map6: RangeMap) {
        func total(_ counts: [CountryCode: UInt128]) -> Double { counts.values.reduce(0) { $0 + Double($1) } }
        let c4 = map4.addressCountByCountry(), c6 = map6.addressCountByCountry()
        v4 = total(c4)
        v6 = total(c6)
        byCountry = [.v4: c4.mapValues(Double.init), .v6: c6.mapValues(Double.init)]
        ranges = map4.ranges.count + map6.ranges.count
    }
}

/// The sanity guard: a new dataset replaces the live one only if no family's
/// coverage and no country a profile names moved by more than the configured
/// share. An empty or tiny dataset is refused even with --force.
enum SanityGuard {
    struct Verdict {
        var refusals: [String] = []
        /// Country deltas worth a log line, largest first.
        var changes: [String] = []
    }

    static func judge(new: Coverage, old: Coverage?, config: GeoGateConfig) -> (absolute: [String], relative: Verdict) {
        var absolute: [String] = []
        if new.ranges == 0 {
            absolute.append("the new dataset is empty")
        } else if new.ranges < config.refresh.minRanges {
            absolute.append("the new dataset has only \(new.ranges) ranges (refresh.min-ranges: \(config.refresh.minRanges))")
        }
        var verdict = Verdict()
        guard let old else { return (absolute, verdict) }
        let r = config.refresh
        for (family, before, after) in [("IPv4", old.v4, new.v4), ("IPv6", old.v6, new.v6)] where before > 0 {
            let change = (after - before) / before * 100
            if abs(change) > r.maxFamilyChangePercent {
                verdict.refusals.append("\(family) coverage would change by \(format(change))% (refresh.max-family-change: \(format(r.maxFamilyChangePercent))%)")
            }
        }
        // Every country a profile lists (allowed in an allowlist, denied in a blocklist).
        var named = Set<CountryCode>()
        for p in config.profiles { named.formUnion(p.countries) }
        for cc in named.sorted() {
            for (label, family) in [("IPv4", Coverage.Family.v4), ("IPv6", .v6)] {
                let before = old.byCountry[family]?[cc] ?? 0, after = new.byCountry[family]?[cc] ?? 0
                guard before > 0 || after > 0 else { continue }
                let change = before > 0 ? (after - before) / before * 100 : 100
                if change != 0 { verdict.changes.append("\(cc) \(label) \(change > 0 ? "+" : "")\(format(change))%") }
                if abs(change) > r.maxCountryChangePercent {
                    verdict.refusals.append("\(cc) \(label) coverage would change by \(format(change))% (refresh.max-country-change: \(format(r.maxCountryChangePercent))%)")
                }
            }
        }
        return (absolute, verdict)
    }

    static func format(_ v: Double) -> String { String((v * 10).rounded() / 10) }
}
