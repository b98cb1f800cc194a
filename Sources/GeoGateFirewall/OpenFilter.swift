import GeoGateCore
import GeoGatePolicy
#if canImport(Glibc)
import Glibc
#endif

/// The emergency off switch: `geogate apply --open` puts, in place of every
/// full-server set, one that matches every address of its family, with the same
/// swap as any apply, so the rules that use the sets let everyone in and nothing
/// else changes. A marker in the state directory (which outlives a reboot) keeps
/// it so: refresh and the boot unit load open sets while it is there; the next
/// plain `apply` loads the planned sets and removes it.
public enum OpenFilter {
    /// True while the filter is switched open.
    public static func isOpen(_ config: GeoGateConfig) -> Bool { access(config.openMarkerFile, F_OK) == 0 }

    /// The planned profile sets, each holding every address of its family instead,
    /// and the run-time block sets emptied (per-country and run-time allow sets stay
    /// as they are): nobody is dropped.
    public static func opened(_ sets: [FirewallSet]) -> [FirewallSet] {
        sets.map {
            switch $0.kind {
            case .country, .runtimeAllow: $0
            case .profile: FirewallSet(name: $0.name, family: $0.family, addresses: .all($0.family), origin: "\($0.origin), switched open")
            case .runtimeBlock: FirewallSet(name: $0.name, family: $0.family, elements: [], origin: "\($0.origin), switched open", kind: .runtimeBlock)
            }
        }
    }

    /// What to load: the planned sets, or open ones while the filter is open.
    public static func effective(_ planned: [FirewallSet], config: GeoGateConfig) -> [FirewallSet] {
        isOpen(config) ? opened(planned) : planned
    }

    /// Writes (with the time and who) or removes the marker.
    public static func mark(_ config: GeoGateConfig, open: Bool, by command: String) throws(IPSetError) {
        if !open {
            guard unlink(config.openMarkerFile) == 0 || errno == ENOENT else {
                throw IPSetError("\(config.openMarkerFile): cannot remove: \(String(cString: strerror(errno)))")
            }
            return
        }
        do {
            try createDirectories(config.stateDirectory)
            try AtomicFile.write(Array("switched open by `\(command)` (uid \(getuid())) at \(time(nil))\n".utf8), to: config.openMarkerFile)
        } catch { throw IPSetError("\(config.openMarkerFile): cannot record that the filter is open: \(error)") }
    }
}
