/// A list of networks as allow-list and block-list feeds publish them, one a
/// line, in the three shapes real feeds use:
///
///     203.0.113.0/24                       plain (an address is a host network)
///     # comment                            FireHOL .netset: `#` comments
///     198.51.100.0/24 ; SBL123456          Spamhaus DROP/EDROP: `;` comments, also after the network
///
/// The same text is how geogate keeps a feed it accepted (`<state-dir>/feeds/`).
/// Strict: a line that is not a network names its line and fails the feed (the
/// refresh then keeps the old one), as does a network of every address.
public enum NetworkList {
    public struct Failure: Error, CustomStringConvertible, Sendable, Equatable {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    /// The networks of `bytes`, at most `maxEntries`; `name` for errors.
    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>, name: String, maxEntries: Int) throws(Failure) -> [CIDR] {
        var out: [CIDR] = []
        var start = 0
        var lineNumber = 0
        while start < bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != 0x0A { end += 1 }
            lineNumber += 1
            defer { start = end + 1 }
            // The text before a comment, without blanks around it.
            var first = start, last = start
            while last < end && bytes[last] != UInt8(ascii: "#") && bytes[last] != UInt8(ascii: ";") { last += 1 }
            while first < last && isBlank(bytes[first]) { first += 1 }
            while last > first && isBlank(bytes[last - 1]) { last -= 1 }
            guard first < last else { continue }
            // The network is the first word; Spamhaus's JSON-era files and some
            // netsets add words after it.
            var word = first
            while word < last && !isBlank(bytes[word]) { word += 1 }
            let text = UnsafeBufferPointer(rebasing: bytes[first..<word])
            func fail(_ why: String) -> Failure {
                Failure("\(SafeText.field(name, limit: 120)):\(lineNumber): \(why): \(SafeText.bytes(text, limit: 80))")
            }
            switch CIDR.parse(text) {
            case .success(let cidr):
                guard cidr.prefixLength > 0 else { throw fail("a network of every address") }
                out.append(cidr)
            case .failure(.hostBitsSet): throw fail("host bits set after the prefix length")
            case .failure: throw fail("not an address or a network")
            }
            guard out.count <= maxEntries else {
                throw Failure("\(SafeText.field(name, limit: 120)): more than \(maxEntries) networks (max-entries)")
            }
        }
        return out
    }

    public static func parse(_ bytes: [UInt8], name: String, maxEntries: Int) throws(Failure) -> [CIDR] {
        let result = bytes.withUnsafeBufferPointer { b in Result { () throws(Failure) in try parse(b, name: name, maxEntries: maxEntries) } }
        return try result.get()
    }

    /// The text of `networks` as geogate keeps it: a comment, then one a line.
    public static func text(_ networks: [CIDR], comment: String) -> [UInt8] {
        var out = Array("# \(SafeText.field(comment, limit: 400))\n".utf8)
        out.reserveCapacity(out.count + networks.count * 20)
        for n in networks {
            out += n.description.utf8
            out.append(0x0A)
        }
        return out
    }

    static func isBlank(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0D }
}
