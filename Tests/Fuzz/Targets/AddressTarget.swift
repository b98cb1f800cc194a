import GeoGateCore

/// Address text, as `geogate lookup`, the importers and the daemon's requests
/// parse it (`IPAddress.parse`): each line of the input is one text. The IPv6
/// fast path (`parseIPv6Groups`, four bytes a load) must answer exactly as the
/// full parser wherever it answers, `IPAddress.parse` as the full parsers, and an
/// accepted address must format and parse back to itself.
let addressTarget = FuzzTarget("address", "address text: the IPv6 fast path against the full parsers, one text a line") { input throws(FuzzFailure) in
    let bytes = input.assumingMemoryBound(to: UInt8.self)
    var start = 0
    var texts = 0
    while start <= bytes.count && texts < 256 {
        var end = start
        while end < bytes.count && bytes[end] != 0x0A { end += 1 }
        let text = UnsafeBufferPointer(rebasing: bytes[start..<end])
        texts += 1
        start = end + 1
        let full = parseIPv6(text)
        if let fast = parseIPv6Groups(text), fast != full {
            throw FuzzFailure("\(SafeText.bytes(text)): fast path \(fast), full parser \(String(describing: full))")
        }
        let reference: IPAddress? = text.contains(UInt8(ascii: ":")) ? full.map { IPAddress(family: .v6, value: $0) }
                                                                      : parseIPv4(text).map { IPAddress(v4: $0) }
        let parsed = IPAddress.parse(text)
        guard parsed == reference else {
            throw FuzzFailure("\(SafeText.bytes(text)): IPAddress.parse \(String(describing: parsed)), full parsers \(String(describing: reference))")
        }
        if let parsed, IPAddress(parsed.description) != parsed {
            throw FuzzFailure("\(SafeText.bytes(text)): \(parsed) does not parse back to itself")
        }
    }
}
