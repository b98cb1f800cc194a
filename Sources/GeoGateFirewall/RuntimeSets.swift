import GeoGateCore
import GeoGatePolicy

/// A full-server profile's run-time entries in the kernel: two sets per family,
/// `<set-name>-rt-block-v4` and `<set-name>-rt-allow-v4` (and -v6), hash:net with
/// timeouts (or nft interval sets with timeouts), whose elements expire by the
/// kernel's own clock. The firewall uses them before the profile set:
///
///     block set  → drop      (a run-time block)
///     allow set  → accept    (a run-time allow)
///     profile set → accept   (trusted, static networks, countries)
///     else drop
///
/// Their elements leave out the trusted and static networks (Policy.runtimeElements),
/// so this order gives, address by address, the precedence `decide` gives.
public enum RuntimeSets {
    public static func plan(config: GeoGateConfig, profile: Profile, policy: Policy, entries: RuntimeEntries,
                            now: Int64) -> [FirewallSet] {
        guard config.entries.maxPerProfile > 0 else { return [] }
        var sets: [FirewallSet] = []
        for action in [RuntimeEntry.Action.block, .allow] {
            for family in IPFamily.allCases {
                guard let name = profile.runtimeSetName(action, family) else { continue }
                let elements = policy.runtimeElements(action, family, entries: entries.entries, now: now)
                sets.append(FirewallSet(name: name, family: family, elements: elements,
                                        origin: "profile \(profile.name), run-time \(action.rawValue) entries",
                                        kind: action == .block ? .runtimeBlock : .runtimeAllow))
            }
        }
        return sets
    }
}
