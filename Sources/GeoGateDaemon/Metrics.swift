import CGeoGateSupport
import GeoGateCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// `GET /metrics` on the daemon's HTTP socket: the Prometheus text format (0.0.4),
/// from the counters the daemon keeps anyway. Every label value is the daemon's
/// own (a validated profile name, a two-character code, a fixed word).
extension LookupService {
    public func metricsText() -> String {
        let snap = snapshot
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        family("geogate_requests_total", "counter", "Requests answered, on the line socket and the HTTP endpoint.")
        out += "geogate_requests_total \(requests.load(ordering: .relaxed))\n"
        family("geogate_errors_total", "counter", "Requests answered with ERR.")
        out += "geogate_errors_total \(errors.load(ordering: .relaxed))\n"
        family("geogate_decisions_total", "counter", "CHECK verdicts by profile and country (country \"--\": none).")
        let counters = verdictCounters.byName.withLock { $0 }
        for (profile, c) in counters.sorted(by: { $0.key < $1.key }) {
            for slot in 0..<VerdictCounters.countrySlots {
                for deny in [false, true] {
                    let n = geogate_counter_load(c.byCountry + 2 * slot + (deny ? 1 : 0))
                    guard n > 0 else { continue }
                    out += "geogate_decisions_total{profile=\"\(profile)\",verdict=\"\(deny ? "deny" : "allow")\",country=\"\(VerdictCounters.code(slot) ?? "--")\"} \(n)\n"
                }
            }
        }
        family("geogate_reloads_total", "counter", "Reloads of the trie and config, by outcome.")
        out += "geogate_reloads_total{outcome=\"ok\"} \(reloads.load(ordering: .relaxed))\n"
        out += "geogate_reloads_total{outcome=\"failed\"} \(failedReloads.load(ordering: .relaxed))\n"
        family("geogate_connections", "gauge", "Connections open on the line socket.")
        out += "geogate_connections \(openConnections.load(ordering: .relaxed))\n"
        family("geogate_connections_refused_total", "counter", "Connections refused at daemon.max-connections.")
        out += "geogate_connections_refused_total \(refusedConnections.load(ordering: .relaxed))\n"
        family("geogate_trie_build_time_seconds", "gauge", "When the live trie was built (Unix time).")
        out += "geogate_trie_build_time_seconds \(snap.trie.metadata.buildTime)\n"
        family("geogate_trie_loaded_time_seconds", "gauge", "When the live trie and config were loaded (Unix time).")
        out += "geogate_trie_loaded_time_seconds \(snap.loadedAt)\n"
        family("geogate_trie_ranges", "gauge", "Ranges in the live trie, by family.")
        out += "geogate_trie_ranges{family=\"ipv4\"} \(snap.trie.metadata.v4RangeCount)\n"
        out += "geogate_trie_ranges{family=\"ipv6\"} \(snap.trie.metadata.v6RangeCount)\n"
        family("geogate_start_time_seconds", "gauge", "When the daemon started (Unix time).")
        out += "geogate_start_time_seconds \(startTime)\n"
        family("geogate_answer_duration_seconds", "histogram", "Time to answer one read's requests (most reads carry one request).")
        out += answerDurations.text(name: "geogate_answer_duration_seconds")
        return out
    }
}

/// A Prometheus histogram of durations, in fixed buckets, lock-free: relaxed
/// atomic adds (CGeoGateSupport) on a table of its own.
final class DurationHistogram: @unchecked Sendable {
    /// Upper bounds in nanoseconds, 1 µs to 10 ms (`observe` spells them out too).
    static let bounds: [UInt64] = [1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000, 10_000_000]
    /// One count per bucket, +Inf last, then the sum in nanoseconds.
    private let cells: UnsafeMutablePointer<UInt64>

    init() {
        cells = .allocate(capacity: Self.bounds.count + 2)
        cells.initialize(repeating: 0, count: Self.bounds.count + 2)
    }

    deinit { cells.deallocate() }

    static func now() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }

    func observe(since start: UInt64) {
        let elapsed = Self.now() &- start
        // The bucket by plain comparisons (on the answer path: no array access).
        let i = switch elapsed {
        case ...1_000: 0
        case ...2_500: 1
        case ...5_000: 2
        case ...10_000: 3
        case ...25_000: 4
        case ...50_000: 5
        case ...100_000: 6
        case ...250_000: 7
        case ...1_000_000: 8
        case ...10_000_000: 9
        default: 10
        }
        geogate_counter_add(cells + i, 1)
        geogate_counter_add(cells + 11, elapsed)
    }

    func text(name: String) -> String {
        var out = ""
        var cumulative: UInt64 = 0
        for (i, bound) in Self.bounds.enumerated() {
            cumulative += geogate_counter_load(cells + i)
            out += "\(name)_bucket{le=\"\(Double(bound) / 1e9)\"} \(cumulative)\n"
        }
        cumulative += geogate_counter_load(cells + Self.bounds.count)
        out += "\(name)_bucket{le=\"+Inf\"} \(cumulative)\n"
        out += "\(name)_sum \(Double(geogate_counter_load(cells + Self.bounds.count + 1)) / 1e9)\n"
        out += "\(name)_count \(cumulative)\n"
        return out
    }
}
