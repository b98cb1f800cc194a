/// A network in CIDR notation.
public struct CIDR: Hashable, Sendable, CustomStringConvertible {
    public var family: IPFamily
    public var address: UInt128
    public var prefixLength: Int

    public init(family: IPFamily, address: UInt128, prefixLength: Int) {
        self.family = family
        self.address = address
        self.prefixLength = prefixLength
    }

    /// Parses "a.b.c.d/n" or "x::/n"; a bare address is a host route. Host bits that
    /// are set are an error ("10.0.0.1/8" is almost always a typo).
    public init?(_ text: some StringProtocol) {
        var bytes = Array(text.utf8)
        let parsed = bytes.withUnsafeMutableBufferPointer { CIDR.parse(UnsafeBufferPointer($0)) }
        guard case .success(let cidr) = parsed else { return nil }
        self = cidr
    }

    public enum ParseError: Error, Equatable, Sendable {
        case badAddress, badPrefixLength(Int), hostBitsSet
    }

    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> Result<CIDR, ParseError> {
        var slash = -1
        for i in bytes.indices where bytes[i] == UInt8(ascii: "/") { slash = i; break }
        let addressBytes = slash < 0 ? bytes : UnsafeBufferPointer(rebasing: bytes[0..<slash])
        guard let address = IPAddress.parse(addressBytes) else { return .failure(.badAddress) }
        let width = address.family.bitWidth
        var length = width
        if slash >= 0 {
            let digits = bytes[(slash + 1)...]
            guard !digits.isEmpty, digits.count <= 3 else { return .failure(.badPrefixLength(-1)) }
            length = 0
            for d in digits {
                guard d >= 0x30 && d <= 0x39 else { return .failure(.badPrefixLength(-1)) }
                length = length * 10 + Int(d - 0x30)
            }
            guard length <= width else { return .failure(.badPrefixLength(length)) }
        }
        let cidr = CIDR(family: address.family, address: address.value, prefixLength: length)
        guard cidr.address & cidr.hostMask == 0 else { return .failure(.hostBitsSet) }
        return .success(cidr)
    }

    /// Bits below the prefix.
    public var hostMask: UInt128 {
        let hostBits = family.bitWidth - prefixLength
        return hostBits == 0 ? 0 : (hostBits == 128 ? .max : (UInt128(1) << UInt128(hostBits)) - 1)
    }

    public var first: UInt128 { address }
    public var last: UInt128 { address | hostMask }

    public var description: String { "\(IPAddress.format(address, family: family))/\(prefixLength)" }

    /// The minimal list of CIDR networks whose union is exactly [start, end].
    public static func cover(start: UInt128, end: UInt128, family: IPFamily) -> [CIDR] {
        var out: [CIDR] = []
        cover(start: start, end: end, family: family) { out.append($0) }
        return out
    }

    /// Calls `body` with each network of the minimal cover, in address order.
    @inlinable
    public static func cover(start: UInt128, end: UInt128, family: IPFamily, _ body: (CIDR) -> Void) {
        let width = family.bitWidth
        var cursor = start
        while true {
            // The largest block aligned at `cursor`...
            var hostBits = cursor == 0 ? width : min(width, cursor.trailingZeroBitCount)
            // ...that does not pass `end`.
            let remaining = end - cursor  // addresses after cursor, inclusive count - 1
            while hostBits > 0 {
                let blockMinusOne: UInt128 = hostBits == 128 ? .max : (UInt128(1) << UInt128(hostBits)) - 1
                if blockMinusOne <= remaining { break }
                hostBits -= 1
            }
            body(CIDR(family: family, address: cursor, prefixLength: width - hostBits))
            let blockMinusOne: UInt128 = hostBits == 128 ? .max : (UInt128(1) << UInt128(hostBits)) - 1
            let last = cursor + blockMinusOne
            if last >= end { return }
            cursor = last + 1
        }
    }
}
