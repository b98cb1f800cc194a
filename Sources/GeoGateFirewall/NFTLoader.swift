import CNFTables
import GeoGateCore
#if canImport(Glibc)
import Glibc
#endif

/// Loads sets into the kernel's nftables through libnftables: the nft script
/// (`NFTText`) that creates the `inet geogate` table and each interval set if
/// missing, flushes and refills them, run as one transaction, so rules using the
/// sets never see them empty or partial, and a script the kernel refuses changes
/// nothing. The table `inet geogate` is geogate's by its name; nothing outside it
/// is touched. The caller holds the run lock.
public enum NFTLoader {
    public static func load(_ sets: [FirewallSet]) throws(IPSetError) {
        var script = ""
        NFTText.render(sets, into: &script)
        do { try FaultInjection.check("nft-load") } catch { throw IPSetError("nft: \(error)") }
        _ = try run(script, what: "nft refused the sets (table inet \(NFTText.table))")
    }

    /// The script that puts the named sets back as the kernel holds them now: each
    /// live set flushed and refilled with its present elements (`nft list set`
    /// prints them in nft's own syntax), a set that does not exist yet deleted (the
    /// table is never deleted: an admin's chains may live in it). Run as one
    /// transaction by `undo`. Any other error reading the sets is an error here,
    /// before anything changed.
    public static func snapshot(_ names: [String]) throws(IPSetError) -> String {
        let table = "inet \(NFTText.table)"
        var undo = ""
        for name in names {
            do {
                let listed = try run("list set \(table) \(name)", what: "reading set \(name) of table \(table)")
                undo += "flush set \(table) \(name)\n" + listed + "\n"
            } catch where error.description.contains("No such file or directory") {
                undo += "delete set \(table) \(name)\n"
            }
        }
        return undo
    }

    /// Runs a snapshot's script: the sets as they were.
    public static func undo(_ script: String) throws(IPSetError) {
        _ = try run(script, what: "nft refused to put the sets back")
    }

    static func run(_ script: String, what: String) throws(IPSetError) -> String {
        var error = [CChar](repeating: 0, count: 4096)
        var output: UnsafeMutablePointer<CChar>?
        guard gg_nft_run_output(script, &output, &error, error.count) == 0 else {
            let message = String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw IPSetError("\(what): \(SafeText.field(message, limit: 1000))")
        }
        defer { free(output) }
        return output.map { String(cString: $0) } ?? ""
    }
}

/// The full-server sets of one refresh or rollback, built aside, switched in, then
/// finished or put back: with ipset a SetTransaction (temporary sets, swap); with
/// nft the new script and, taken before it runs, the script that restores the sets
/// as they were (each a single nft transaction).
public enum PreparedSets {
    case ipset(SetTransaction)
    case nft(sets: [FirewallSet], undo: String, loaded: Bool)

    /// Builds the new sets aside for `backend` ("ipset" or "nft"). Nothing live changes.
    public static func prepare(_ sets: [FirewallSet], backend: String, loader: () throws(IPSetError) -> SetLoader) throws(IPSetError) -> PreparedSets {
        if backend == "nft" {
            let undo = try NFTLoader.snapshot(sets.map(\.name))
            do { try FaultInjection.check("sets-fill") } catch { throw IPSetError("nft: \(error)") }
            return .nft(sets: sets, undo: undo, loaded: false)
        }
        var ipset = try loader()
        return .ipset(try ipset.prepare(sets))
    }

    /// One line per set: what the switch did.
    public var reportLines: [String] {
        switch self {
        case .ipset(let t): t.report.lines
        case .nft(let sets, _, _): sets.map { "\($0.name) (table inet \(NFTText.table)): \($0.cidrs.count) entries (\($0.origin))" }
        }
    }

    public mutating func switchIn() throws(IPSetError) {
        switch self {
        case .ipset(var t):
            do throws(IPSetError) { try t.switchIn() } catch {
                self = .ipset(t)
                throw error
            }
            self = .ipset(t)
        case .nft(let sets, let undo, _):
            try NFTLoader.load(sets)
            self = .nft(sets: sets, undo: undo, loaded: true)
        }
    }

    /// Puts the old sets back (after a later step of the caller failed).
    public mutating func revert() {
        switch self {
        case .ipset(var t):
            t.revert()
            self = .ipset(t)
        case .nft(let sets, let undo, let loaded):
            if loaded { try? NFTLoader.undo(undo) }
            self = .nft(sets: sets, undo: undo, loaded: false)
        }
    }

    public mutating func finish() {
        if case .ipset(var t) = self {
            t.finish()
            self = .ipset(t)
        }
    }
}
