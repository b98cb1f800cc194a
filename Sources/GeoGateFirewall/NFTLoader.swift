import CNFTables
import GeoGateCore

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
        var error = [CChar](repeating: 0, count: 4096)
        guard gg_nft_run(script, &error, error.count) == 0 else {
            let message = String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw IPSetError("nft refused the sets (table inet \(NFTText.table)): \(SafeText.field(message, limit: 1000))")
        }
    }
}
