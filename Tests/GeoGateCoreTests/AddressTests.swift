import Testing
@testable import GeoGateCore

@Suite struct AddressParsing {
    @Test func ipv4RoundTrips() {
        for text in ["0.0.0.0", "1.2.3.4", "81.2.69.160", "255.255.255.255", "10.0.0.1"] {
            let a = IPAddress(text)
            #expect(a?.family == .v4)
            #expect(a?.description == text)
        }
    }

    @Test func ipv4RejectsMalformed() {
        for text in ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1..2.3", "1.2.3.", ".1.2.3", "a.b.c.d", "1.2.3.4 ", "1.2.3.1234"] {
            #expect(IPAddress(text) == nil, "\(text) should be rejected")
        }
    }

    @Test func ipv6ParsesRFC4291Forms() {
        let cases: [(String, UInt128)] = [
            ("::", 0),
            ("::1", 1),
            ("1::", UInt128(1) << 112),
            ("2001:db8::1", UInt128(0x2001_0db8) << 96 | 1),
            ("2001:DB8:0:0:0:0:0:1", UInt128(0x2001_0db8) << 96 | 1),
            ("::ffff:1.2.3.4", UInt128(0xffff) << 32 | 0x0102_0304),
            ("1:2:3:4:5:6:7:8", UInt128(0x0001_0002_0003_0004) << 64 | 0x0005_0006_0007_0008),
            ("1:2:3:4:5:6:1.2.3.4", UInt128(0x0001_0002_0003_0004) << 64 | 0x0005_0006_0102_0304),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", .max),
        ]
        for (text, value) in cases {
            let a = IPAddress(text)
            #expect(a?.family == .v6, "\(text)")
            #expect(a?.value == value, "\(text)")
        }
    }

    @Test func ipv6RejectsMalformed() {
        for text in [":", ":::", "1:::2", "1::2::3", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "12345::", "g::1", "1:", ":1",
                     "::1.2.3", "1:2:3:4:5:6:7:1.2.3.4", "fe80::1%eth0", "1::2:3:4:5:6:7:8"] {
            #expect(IPAddress(text) == nil, "\(text) should be rejected")
        }
    }

    @Test func ipv6FormatsPerRFC5952() {
        let cases = ["::", "::1", "2001:db8::1", "2001:db8:0:1::", "2001:0:0:1::1", "1:0:2::", "::ffff:1.2.3.4",
                     "2001:db8:1:2:3:4:5:6", "2001:db8::1:0:0:1"]
        for text in cases {
            #expect(IPAddress(text)?.description == text, "\(text)")
        }
        #expect(IPAddress("2001:db8:0:0:1:0:0:1")?.description == "2001:db8::1:0:0:1")
        #expect(IPAddress("2001:db8:0:1:1:1:1:1")?.description == "2001:db8:0:1:1:1:1:1")
    }

    @Test func formatThenParseIsIdentityOnRandomAddresses() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            var v = UInt128(rng.next()) << 64 | UInt128(rng.next())
            // Sprinkle zero groups so "::" compression gets exercised.
            for g in 0..<8 where rng.next() % 3 == 0 { v &= ~(UInt128(0xffff) << UInt128(g * 16)) }
            let text = IPAddress.format(v, family: .v6)
            #expect(IPAddress(text)?.value == v, "\(text)")
        }
    }

    /// The IPv6 fast path answers exactly as the full parser wherever it answers:
    /// every address in the forms people write (RFC 5952, every group in full,
    /// upper case, "::" anywhere it may stand), then strings near those forms.
    @Test func theIPv6FastPathAgreesWithTheFullParser() {
        func both(_ text: String) -> (UInt128?, UInt128?) {
            let bytes = Array(text.utf8)
            return bytes.withUnsafeBufferPointer { (parseIPv6Groups($0), parseIPv6($0)) }
        }
        var rng = SystemRandomNumberGenerator()
        var taken = 0
        for i in 0..<100_000 {
            // Random groups, some of them zero, so "::" lands everywhere.
            var value: UInt128 = 0
            for _ in 0..<8 { value = value << 16 | (rng.next() % 3 == 0 ? 0 : UInt128(rng.next() & (i % 2 == 0 ? 0xFFFF : 0xF))) }
            let groups = (0..<8).map { UInt16(truncatingIfNeeded: value >> UInt128((7 - $0) * 16)) }
            let full = groups.map { let h = String($0, radix: 16); return String(repeating: "0", count: 4 - h.count) + h }.joined(separator: ":")
            for text in [IPAddress.format(value, family: .v6), full, full.uppercased(), groups.map { String($0, radix: 16) }.joined(separator: ":")] {
                let (fast, reference) = both(text)
                #expect(reference == value, "\(text)")
                if fast != nil { taken += 1 }
                if fast != nil && fast != reference { Issue.record("\(text): fast \(String(describing: fast)), full \(String(describing: reference))") }
            }
        }
        #expect(taken > 350_000, "the fast path took \(taken) of 400,000 plain forms")
        // Near misses: random strings over the characters of addresses and a few others.
        let alphabet = Array("0123456789abcdefABCDEF::::....%gG /\0\u{80}".utf8)
        for _ in 0..<300_000 {
            let length = Int(rng.next() % 46)
            let bytes = (0..<length).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }
            let (fast, reference) = bytes.withUnsafeBufferPointer { (parseIPv6Groups($0), parseIPv6($0)) }
            if let fast, fast != reference {
                Issue.record("\(bytes): fast \(fast), full \(String(describing: reference))")
                return
            }
            // And the entry point everyone calls agrees with the full parser.
            let parsed = bytes.withUnsafeBufferPointer { IPAddress.parse($0) }
            if bytes.contains(UInt8(ascii: ":")) && parsed?.value != reference {
                Issue.record("\(bytes): IPAddress.parse \(String(describing: parsed)), full \(String(describing: reference))")
                return
            }
        }
    }

    @Test func mappedIPv4IsRecognised() {
        #expect(IPAddress("::ffff:8.8.8.8")?.unmappedIPv4 == IPAddress("8.8.8.8"))
        #expect(IPAddress("::8.8.8.8")?.unmappedIPv4 == nil)
    }
}

@Suite struct CountryCodes {
    @Test func assignedListIsISO3166() {
        #expect(CountryCode.assignedCodes.count == 249)
        #expect(Set(CountryCode.assignedCodes).count == 249)
    }

    @Test func acceptsAssignedAndSpecialCodes() {
        for code in ["DE", "ch", "Gb", "EU", "AP", "A1", "A2", "A3", "XK", "ZZ"] {
            #expect(CountryCode(code) != nil, "\(code)")
        }
        #expect(CountryCode("ch")?.description == "CH")
    }

    @Test func rejectsUnknownCodes() {
        for code in ["", "C", "CHE", "UX", "QQ", "12", "??", "--", "Ä1", "A9"] {
            #expect(CountryCode(code) == nil, "\(code)")
        }
    }
}

@Suite struct CIDRs {
    @Test func parsesAndRejects() {
        #expect(CIDR("10.0.0.0/8")?.description == "10.0.0.0/8")
        #expect(CIDR("2001:db8::/32")?.last == IPAddress("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")!.value)
        #expect(CIDR("1.2.3.4")?.prefixLength == 32)
        #expect(CIDR("10.0.0.1/8") == nil)       // host bits
        #expect(CIDR("10.0.0.0/33") == nil)      // too long
        #expect(CIDR("::/129") == nil)
        #expect(CIDR("10.0.0.0/") == nil)
        #expect(CIDR("10.0.0.0/x") == nil)
    }

    @Test func coverOfWholeFamilies() {
        #expect(CIDR.cover(start: 0, end: UInt128(UInt32.max), family: .v4).map(\.description) == ["0.0.0.0/0"])
        #expect(CIDR.cover(start: 0, end: .max, family: .v6).map(\.description) == ["::/0"])
        #expect(CIDR.cover(start: 1, end: 6, family: .v4).map(\.description) == ["0.0.0.1/32", "0.0.0.2/31", "0.0.0.4/31", "0.0.0.6/32"])
    }

    /// The cover is exact, in order, and minimal: no two neighbours could merge into
    /// one aligned block (the standard greedy cover is optimal, so checking that
    /// property against a brute-force count on small ranges pins it).
    @Test func coverIsExactAndMinimalOnRandomRanges() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<5_000 {
            let a = UInt128(rng.next() % 4096), b = UInt128(rng.next() % 4096)
            let (start, end) = (min(a, b), max(a, b))
            let cover = CIDR.cover(start: start, end: end, family: .v4)
            var cursor = start
            for c in cover {
                #expect(c.first == cursor)
                #expect(c.address & c.hostMask == 0)
                cursor = c.last + 1
            }
            #expect(cursor == end + 1)
            #expect(cover.count == bruteForceMinimalCover(start, end))
        }
    }

    /// Dynamic programming over [start, end]: the fewest aligned blocks.
    func bruteForceMinimalCover(_ start: UInt128, _ end: UInt128) -> Int {
        let n = Int(end - start + 1)
        var best = [Int](repeating: Int.max, count: n + 1)
        best[0] = 0
        for i in 0..<n where best[i] != Int.max {
            let address = start + UInt128(i)
            var size: UInt128 = 1
            while true {
                if address % size != 0 || Int(size) + i > n { break }
                best[i + Int(size)] = min(best[i + Int(size)], best[i] + 1)
                size *= 2
            }
        }
        return best[n]
    }
}
