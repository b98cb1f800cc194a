import GeoGateCore
import GeoGatePolicy

/// The YAML config (Yams over libyaml, then geogate's own checks). For a config
/// it accepts, each profile's two views of the one precedence must agree on
/// addresses from the input: `decide` (daemon, `check`) and `allowedSet` (the
/// kernel sets), over a small country map.
let configTarget = FuzzTarget("config", "YAML config: parse, checks, then decide vs allowedSet per profile") { input throws(FuzzFailure) in
    let text = String(decoding: input, as: UTF8.self)
    let config: GeoGateConfig
    do throws(ConfigError) {
        config = try GeoGateConfig.parse(text, path: "fuzz.conf")
    } catch {
        try expectShownSafely(error.description, "the config error")
        guard error.description.hasPrefix("fuzz.conf") else { throw FuzzFailure("the config error does not name the file: \(error)") }
        return
    }
    let probes = addresses(from: input, limit: 16) + fixedProbes
    for profile in config.profiles {
        try expectShownSafely(profile.name, limit: 1024, "a profile name")
        let policy = config.policy(profile)
        for family in IPFamily.allCases {
            let map = family == .v4 ? probeCountries.v4 : probeCountries.v6
            let allowed = policy.allowedSet(family, countries: map)
            for address in probes where address.family == family && address.unmappedIPv4 == nil {
                let decision = policy.decide(address, country: map.country(of: address.value))
                guard (decision.verdict == .allow) == allowed.contains(address.value) else {
                    throw FuzzFailure("profile \(profile.name): decide says \(decision) for \(address), the set \(allowed.contains(address.value) ? "allows" : "denies") it")
                }
            }
        }
    }
}

/// Addresses at the edges of the probe map and of common networks.
let fixedProbes: [IPAddress] = ["0.0.0.0", "10.0.0.1", "127.0.0.1", "192.168.1.1", "198.51.100.7", "203.0.113.66",
                                "1.0.0.0", "1.0.0.255", "2.0.0.0", "255.255.255.255", "::", "::1", "2001:db8::1",
                                "2001:db8:42::1", "fe80::1", "fc00::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"]
    .compactMap { IPAddress($0) }

/// A few countries in each family: enough for every rule to matter.
let probeCountries: (v4: RangeMap, v6: RangeMap) = {
    func code(_ s: String) -> CountryCode { CountryCode(s)! }
    let v4 = RangeMap(family: .v4, normalized: [
        AddressRange(start: 0x0100_0000, end: 0x0100_00FF, country: code("AU")),
        AddressRange(start: 0x0200_0000, end: 0x02FF_FFFF, country: code("FR")),
        AddressRange(start: 0x0A00_0000, end: 0x0AFF_FFFF, country: code("IT")),
        AddressRange(start: 0xC633_6400, end: 0xC633_64FF, country: code("CN")),
        AddressRange(start: 0xCB00_7100, end: 0xCB00_71FF, country: code("US")),
    ])
    let v6 = RangeMap(family: .v6, normalized: [
        AddressRange(start: UInt128(0x2001_0db8) << 96, end: (UInt128(0x2001_0db8) << 96) | (UInt128(1) << 96 - 1), country: code("DE")),
        AddressRange(start: UInt128(0x2a00) << 112, end: (UInt128(0x2a00) << 112) | (UInt128(1) << 112 - 1), country: code("IT")),
    ])
    return (v4, v6)
}()
