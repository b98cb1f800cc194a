#if canImport(Glibc)
import Glibc
#endif

/// Failure injection for the tests of the live-state transactions: with
/// `GEOGATE_FAULT=<point>[,<point>...]` in the environment, `FaultInjection.check`
/// fails at those points of a run as a real failure there would (an I/O error, a
/// kernel refusal, a daemon that says no), so a test can stop a refresh or an apply
/// at every step and see that the old state is fully in place. Without the
/// variable it does nothing. The points are listed in Docs/TRANSACTIONS.md.
public enum FaultInjection {
    public struct Injected: Error, CustomStringConvertible, Sendable {
        public let point: String
        public var description: String { "injected failure at \(point) (GEOGATE_FAULT)" }
    }

    static let points: Set<String> = {
        guard let value = getenv("GEOGATE_FAULT") else { return [] }
        return Set(String(cString: value).split(separator: ",").map(String.init))
    }()

    public static func check(_ point: String) throws(Injected) {
        if points.contains(point) { throw Injected(point: point) }
    }

    public static func isSet(_ point: String) -> Bool { points.contains(point) }
}
