/// A two-letter country code, packed into 16 bits (first letter in the high byte).
///
/// Only codes that mean something are accepted: ISO 3166-1 alpha-2 assigned codes
/// and the documented special codes that real data sets use (see `specialCodes`).
/// A typo such as "UX" in a source is an error, not a new country.
public struct CountryCode: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16

    @inlinable public init(unchecked rawValue: UInt16) { self.rawValue = rawValue }

    /// Accepts an upper- or lower-case two-letter code that is assigned or special.
    public init?(_ text: some StringProtocol) {
        let bytes = Array(text.utf8)
        guard bytes.count == 2, let code = CountryCode.validated(bytes[0], bytes[1]) else { return nil }
        self = code
    }

    /// The fast path for importers: two ASCII bytes, validated against the table.
    @inlinable
    public static func validated(_ first: UInt8, _ second: UInt8) -> CountryCode? {
        let a = first & 0xDF, b = second  // upper-case the first letter; digits in the second are kept
        let upperB = (b >= 0x61 && b <= 0x7A) ? b & 0xDF : b
        guard a >= 0x41 && a <= 0x5A else { return nil }
        guard (upperB >= 0x41 && upperB <= 0x5A) || (upperB >= 0x30 && upperB <= 0x39) else { return nil }
        let raw = UInt16(a) << 8 | UInt16(upperB)
        guard CountryCode.isKnown(raw) else { return nil }
        return CountryCode(unchecked: raw)
    }

    public var description: String {
        String(decoding: [UInt8(rawValue >> 8), UInt8(rawValue & 0xff)], as: UTF8.self)
    }

    public static func < (a: CountryCode, b: CountryCode) -> Bool { a.rawValue < b.rawValue }

    /// ISO 3166-1 alpha-2, officially assigned (249 codes).
    public static let assignedCodes: [String] = """
        AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ \
        BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM \
        DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS \
        GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN \
        KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ \
        MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM \
        PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV \
        SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI \
        VN VU WF WS YE YT ZA ZM ZW
        """.split(separator: " ").map(String.init)

    /// Special codes that real country data uses, with what they mean. Docs/FORMAT.md
    /// and the README list the same table.
    public static let specialCodes: [(code: String, meaning: String)] = [
        ("EU", "European Union (ISO exceptionally reserved; RIR and IPFire data)"),
        ("AP", "Asia/Pacific region (RIR and legacy MaxMind data)"),
        ("A1", "anonymous proxy (legacy MaxMind, IPFire)"),
        ("A2", "satellite provider (legacy MaxMind, IPFire)"),
        ("A3", "anycast network (IPFire)"),
        ("O1", "other country (legacy MaxMind)"),
        ("XK", "Kosovo (user-assigned code in common use)"),
        ("ZZ", "unknown or unassigned (user-assigned; RIR data)"),
        ("AB", "Abkhazia (de facto code in IPFire data)"),
        ("OS", "South Ossetia (de facto code in IPFire data)"),
        ("UK", "United Kingdom (ISO exceptionally reserved alias of GB)"),
        ("SU", "Soviet Union (ISO exceptionally reserved)"),
        ("UN", "United Nations (ISO exceptionally reserved)"),
        ("AC", "Ascension Island (ISO exceptionally reserved)"),
        ("CP", "Clipperton Island (ISO exceptionally reserved)"),
        ("DG", "Diego Garcia (ISO exceptionally reserved)"),
        ("EA", "Ceuta and Melilla (ISO exceptionally reserved)"),
        ("EZ", "Eurozone (ISO exceptionally reserved)"),
        ("FX", "Metropolitan France (ISO exceptionally reserved)"),
        ("IC", "Canary Islands (ISO exceptionally reserved)"),
        ("TA", "Tristan da Cunha (ISO exceptionally reserved)"),
        ("AN", "Netherlands Antilles (ISO transitionally reserved)"),
        ("BU", "Burma (ISO transitionally reserved)"),
        ("CS", "Serbia and Montenegro (ISO transitionally reserved)"),
        ("NT", "Neutral Zone (ISO transitionally reserved)"),
        ("TP", "East Timor (ISO transitionally reserved)"),
        ("YU", "Yugoslavia (ISO transitionally reserved)"),
    ]

    /// Membership bitmap over all 26×36 two-character codes.
    @usableFromInline static let knownTable: [Bool] = {
        var table = [Bool](repeating: false, count: 65536)
        for code in assignedCodes + specialCodes.map(\.code) {
            let b = Array(code.utf8)
            table[Int(UInt16(b[0]) << 8 | UInt16(b[1]))] = true
        }
        return table
    }()

    @inlinable static func isKnown(_ raw: UInt16) -> Bool { knownTable[Int(raw)] }
}
