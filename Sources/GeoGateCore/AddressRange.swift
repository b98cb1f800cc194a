/// One inclusive range of addresses of one family mapped to a country.
public struct AddressRange: Hashable, Sendable {
    public var start: UInt128
    public var end: UInt128
    public var country: CountryCode

    @inlinable public init(start: UInt128, end: UInt128, country: CountryCode) {
        self.start = start
        self.end = end
        self.country = country
    }

    /// How many addresses the range holds, saturating at UInt128.max for ::/0.
    public var addressCount: UInt128 {
        let (d, _) = end.subtractingReportingOverflow(start)
        let (c, o) = d.addingReportingOverflow(1)
        return o ? UInt128.max : c
    }
}
