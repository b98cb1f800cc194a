#if canImport(Glibc)
import Glibc
#endif

extension IPAddress {
    /// The address as a `sockaddr_in` or `sockaddr_in6` (port 0) in a
    /// `sockaddr_storage`: what C APIs such as libmaxminddb's lookup take.
    public var socketAddress: sockaddr_storage {
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { raw in
            if family == .v4 {
                var sin = sockaddr_in()
                sin.sin_family = sa_family_t(AF_INET)
                sin.sin_addr.s_addr = UInt32(truncatingIfNeeded: value).bigEndian
                withUnsafeBytes(of: sin) { raw.copyMemory(from: $0) }
            } else {
                var sin6 = sockaddr_in6()
                sin6.sin6_family = sa_family_t(AF_INET6)
                withUnsafeMutableBytes(of: &sin6.sin6_addr) { bytes in
                    for i in 0..<16 { bytes[i] = UInt8(truncatingIfNeeded: value >> UInt128(8 * (15 - i))) }
                }
                withUnsafeBytes(of: sin6) { raw.copyMemory(from: $0) }
            }
        }
        return storage
    }
}

/// A small, fast, seedable generator (SplitMix64) for reproducible samples in
/// benchmarks and tests.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
