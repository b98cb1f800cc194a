/// Address families. Every address is held as a `UInt128`: an IPv4 address in its
/// low 32 bits, an IPv6 address in all 128. One integer type keeps the range map,
/// the CIDR cover and the trie builder single code paths for both families.
public enum IPFamily: Int, Sendable, CaseIterable, CustomStringConvertible {
    case v4 = 4
    case v6 = 6

    /// Bits in an address of this family.
    @inlinable public var bitWidth: Int { self == .v4 ? 32 : 128 }

    /// The largest address of the family.
    @inlinable public var maxAddress: UInt128 { self == .v4 ? UInt128(UInt32.max) : UInt128.max }

    public var description: String { self == .v4 ? "IPv4" : "IPv6" }
}

/// An IP address with its family.
public struct IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var family: IPFamily
    public var value: UInt128

    @inlinable public init(family: IPFamily, value: UInt128) {
        self.family = family
        self.value = value
    }

    public init(v4: UInt32) { self.init(family: .v4, value: UInt128(v4)) }

    /// Parses dotted IPv4 or textual IPv6 (RFC 4291, with an embedded IPv4 tail).
    public init?(_ text: some StringProtocol) {
        var bytes = Array(text.utf8)
        let parsed: IPAddress? = bytes.withUnsafeMutableBufferPointer { buffer in
            IPAddress.parse(UnsafeBufferPointer(buffer))
        }
        guard let parsed else { return nil }
        self = parsed
    }

    /// Parses an address from raw ASCII bytes: IPv4 if it has no ':'; IPv6 in its
    /// usual forms through the fast path, anything else through the full parser.
    @inlinable
    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> IPAddress? {
        if bytes.contains(UInt8(ascii: ":")) {
            guard let v = parseIPv6Groups(bytes) ?? parseIPv6(bytes) else { return nil }
            return IPAddress(family: .v6, value: v)
        }
        guard let v = parseIPv4(bytes) else { return nil }
        return IPAddress(family: .v4, value: UInt128(v))
    }

    /// If this is an IPv4-mapped IPv6 address (::ffff:a.b.c.d), its IPv4 address.
    @inlinable public var unmappedIPv4: IPAddress? {
        guard family == .v6, value >> 32 == 0xffff else { return nil }
        return IPAddress(family: .v4, value: value & 0xffff_ffff)
    }

    /// True for IPv6 addresses in the tunnelling prefixes that embed an IPv4 address,
    /// Teredo (2001::/32) and 6to4 (2002::/16). GeoLite2-style MMDBs alias these to
    /// their IPv4 tree; geogate answers them from the data as given.
    public var isInIPv4TunnelPrefix: Bool {
        family == .v6 && (value >> 112 == 0x2002 || value >> 96 == 0x2001_0000)
    }

    public static func < (a: IPAddress, b: IPAddress) -> Bool {
        (a.family.rawValue, a.value) < (b.family.rawValue, b.value)
    }

    public var description: String { IPAddress.format(value, family: family) }
}

// MARK: - Parsing fast paths (no allocation; the importers call these per line)

/// Parses a dotted-quad IPv4 address. Rejects leading zeros ("01"), which some
/// parsers read as octal: an ambiguous address is an error, not a guess.
@inlinable
public func parseIPv4(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt32? {
    var result: UInt32 = 0
    var octet: UInt32 = 0
    var digits = 0
    var dots = 0
    var leadingZero = false
    for byte in bytes {
        if byte >= 0x30 && byte <= 0x39 {
            if digits == 1 && leadingZero { return nil }
            if digits == 0 { leadingZero = byte == 0x30 }
            octet = octet * 10 + UInt32(byte - 0x30)
            digits += 1
            if digits > 3 || octet > 255 { return nil }
        } else if byte == UInt8(ascii: ".") {
            if digits == 0 || dots == 3 { return nil }
            result = result << 8 | octet
            octet = 0
            digits = 0
            dots += 1
        } else {
            return nil
        }
    }
    if digits == 0 || dots != 3 { return nil }
    return result << 8 | octet
}

@inlinable
func hexValue(_ byte: UInt8) -> UInt32? {
    switch byte {
    case 0x30...0x39: return UInt32(byte - 0x30)
    case 0x61...0x66: return UInt32(byte - 0x61 + 10)
    case 0x41...0x46: return UInt32(byte - 0x41 + 10)
    default: return nil
    }
}

/// Parses a textual IPv6 address: up to eight hex groups, at most one "::", and an
/// optional dotted IPv4 tail in place of the last two groups. Zone ids are rejected.
@inlinable
public func parseIPv6(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt128? {
    let count = bytes.count
    if count < 2 || count > 45 { return nil }
    var head: UInt128 = 0   // groups before "::"
    var headGroups = 0
    var tail: UInt128 = 0   // groups after "::"
    var tailGroups = 0
    var sawDoubleColon = false
    var index = 0
    // A leading "::".
    if bytes[0] == UInt8(ascii: ":") {
        guard bytes[1] == UInt8(ascii: ":") else { return nil }
        sawDoubleColon = true
        index = 2
        if index == count { return 0 }
    }
    while index < count {
        // One group: 1-4 hex digits, or an IPv4 tail.
        var group: UInt32 = 0
        var digits = 0
        let groupStart = index
        while index < count, let h = hexValue(bytes[index]) {
            group = group << 4 | h
            digits += 1
            index += 1
            if digits > 4 { break }
        }
        if index < count && bytes[index] == UInt8(ascii: ".") {
            // Embedded IPv4: the rest of the text, taking two groups.
            let rest = UnsafeBufferPointer(rebasing: bytes[groupStart..<count])
            guard let v4 = parseIPv4(rest) else { return nil }
            if sawDoubleColon {
                guard headGroups + tailGroups + 2 <= 7 else { return nil }
                tail = tail << 32 | UInt128(v4)
                tailGroups += 2
            } else {
                guard headGroups + 2 == 8 else { return nil }
                head = head << 32 | UInt128(v4)
                headGroups += 2
            }
            index = count
            break
        }
        if digits == 0 || digits > 4 { return nil }
        if sawDoubleColon {
            tail = tail << 16 | UInt128(group)
            tailGroups += 1
        } else {
            head = head << 16 | UInt128(group)
            headGroups += 1
        }
        if headGroups + tailGroups > 8 { return nil }
        if index == count { break }
        guard bytes[index] == UInt8(ascii: ":") else { return nil }
        index += 1
        if index < count && bytes[index] == UInt8(ascii: ":") {
            if sawDoubleColon { return nil }
            sawDoubleColon = true
            index += 1
            if index == count { break }
        } else if index == count {
            return nil  // a trailing single ':'
        }
    }
    if sawDoubleColon {
        let total = headGroups + tailGroups
        if total > 7 { return nil }
        let shiftedHead = headGroups == 0 ? 0 : head << UInt128((8 - headGroups) * 16)
        return shiftedHead | tail
    }
    return headGroups == 8 ? head : nil
}

/// IPv6 in its usual forms (hex groups of 1-4 digits, at most one "::", no IPv4
/// tail) without a branch per character: each group is one 4-byte load decoded
/// byte-parallel (`hexRun`). Per-character branches, mispredicted on every
/// group's varying length, made `parseIPv6` most of the time of `geogate lookup`
/// on IPv6 input and of the daemon's parse. nil for anything else (an IPv4 tail,
/// a zone, an error): `parseIPv6` then has the last word, so the two always agree
/// (the tests and the `address` fuzz target check it). The text is copied into a
/// padded buffer first, so the loads never read past the caller's bytes.
@inlinable
public func parseIPv6Groups(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt128? {
    let n = bytes.count
    guard n >= 2 && n <= 39, let source = bytes.baseAddress else { return nil }
    return withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 6) { padded -> UInt128? in
        let p = UnsafeMutableRawPointer(padded.baseAddress!).assumingMemoryBound(to: UInt8.self)
        p.initialize(repeating: 0, count: 48)
        p.update(from: source, count: n)
        return parseIPv6Groups(padded: p, count: n)
    }
}

/// The body of `parseIPv6Groups`, on text followed by at least 3 readable bytes.
@inlinable @inline(__always)
func parseIPv6Groups(padded p: UnsafePointer<UInt8>, count n: Int) -> UInt128? {
    // Every group goes into `groups` in order; where a "::" stood is noted, and
    // the groups after it are moved to the end at the finish.
    var groups: UInt128 = 0
    var count = 0
    var beforeGap = -1  // groups before the "::", if there is one
    var i = 0
    if p[0] == 0x3A {
        guard p[1] == 0x3A else { return nil }
        beforeGap = 0
        i = 2
        if n == 2 { return 0 }
    }
    while true {
        let (value, digits) = hexRun(UnsafeRawPointer(p + i).loadUnaligned(as: UInt32.self))
        let length = min(digits, n - i)
        guard length > 0 else { return nil }
        groups = groups << 16 | UInt128(value >> (4 * UInt32(4 - length)))
        count += 1
        i += length
        if i == n { break }
        guard p[i] == 0x3A, count < 8 else { return nil }  // a 5th digit, '.', '%'...
        i += 1
        guard i < n else { return nil }  // a trailing single ':'
        if p[i] == 0x3A {
            guard beforeGap < 0 else { return nil }
            beforeGap = count
            i += 1
            if i == n { break }
        }
    }
    guard beforeGap >= 0 else { return count == 8 ? groups : nil }
    guard count <= 7 else { return nil }
    let after = UInt128((count - beforeGap) * 16)
    let tail = after == 0 ? 0 : groups & (UInt128(1) << after &- 1)
    return beforeGap == 0 ? tail : (groups >> after) << UInt128((8 - beforeGap) * 16) | tail
}

/// The four bytes of `word` (the first in the low byte) as hex digits: their
/// value as a 16-bit group (the first digit highest), and how many of them, from
/// the first, are hex digits (0-4). Byte-parallel (SWAR): each byte's class is a
/// range test on its low seven bits, with no carry between bytes.
@inlinable @inline(__always)
func hexRun(_ word: UInt32) -> (value: UInt32, digits: Int) {
    let ascii = ~word & 0x8080_8080                  // bytes < 0x80
    let low7 = word & 0x7F7F_7F7F
    // Bit 7 of byte b + (0x80 - lo) is set when b >= lo; of b + (0x7F - hi), when b > hi.
    let digit = (low7 &+ 0x5050_5050) & ~(low7 &+ 0x4646_4646) & ascii           // '0'...'9'
    let folded = low7 | 0x2020_2020                                                  // 'A'-'F' as 'a'-'f'
    let letter = (folded &+ 0x1F1F_1F1F) & ~(folded &+ 0x1919_1919) & ascii       // 'a'...'f'
    let notHex = ~(digit | letter) & 0x8080_8080
    let digits = Int((UInt64(notHex) | 0x80_0000_0000).trailingZeroBitCount >> 3)
    // Each byte's value (0-15): its low nibble, plus 9 for a letter.
    let nibbles = (word & 0x0F0F_0F0F) &+ (letter >> 7) &* 9
    // The first byte's nibble highest: byte-swap, then pack pairs of nibbles.
    let swapped = nibbles.byteSwapped
    let pairs = (swapped | swapped >> 4) & 0x00FF_00FF
    return ((pairs | pairs >> 8) & 0xFFFF, digits)
}

// MARK: - Formatting

extension IPAddress {
    /// Formats an address: dotted IPv4, or RFC 5952 IPv6 (lower case, the longest run
    /// of two or more zero groups as "::", IPv4-mapped addresses as ::ffff:a.b.c.d).
    public static func format(_ value: UInt128, family: IPFamily) -> String {
        if family == .v4 { return formatIPv4(UInt32(truncatingIfNeeded: value)) }
        if value >> 32 == 0xffff { return "::ffff:" + formatIPv4(UInt32(truncatingIfNeeded: value)) }
        var groups = [UInt16](repeating: 0, count: 8)
        for i in 0..<8 { groups[i] = UInt16(truncatingIfNeeded: value >> UInt128((7 - i) * 16)) }
        var bestStart = -1, bestLength = 0, runStart = -1
        for i in 0...8 {
            if i < 8 && groups[i] == 0 {
                if runStart < 0 { runStart = i }
            } else if runStart >= 0 {
                if i - runStart > bestLength { bestStart = runStart; bestLength = i - runStart }
                runStart = -1
            }
        }
        if bestLength < 2 { bestStart = -1 }
        var text = ""
        var i = 0
        while i < 8 {
            if i == bestStart {
                text += "::"
                i += bestLength
                continue
            }
            if !text.isEmpty && !text.hasSuffix(":") { text += ":" }
            text += String(groups[i], radix: 16)
            i += 1
        }
        return text
    }

    public static func formatIPv4(_ v: UInt32) -> String {
        "\(v >> 24).\((v >> 16) & 255).\((v >> 8) & 255).\(v & 255)"
    }
}
