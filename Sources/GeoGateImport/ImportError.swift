import GeoGateCore
/// An input that cannot be compiled, with where and why. `description` is the line
/// an admin sees: "geoip6:1042: field 3: unknown country code 'UX'".
public struct ImportError: Error, CustomStringConvertible, Sendable, Equatable {
    public var file: String
    public var line: Int?
    public var field: Int?
    public var reason: String

    public init(file: String, line: Int? = nil, field: Int? = nil, reason: String) {
        self.file = file
        self.line = line
        self.field = field
        self.reason = reason
    }

    public var description: String {
        var text = SafeText.field(file, limit: 300)
        if let line { text += ":\(line)" }
        text += ": "
        if let field { text += "field \(field): " }
        return text + reason
    }
}

/// How an importer treats a malformed line.
public struct ImportOptions: Sendable {
    /// Count and skip malformed lines instead of failing on the first one.
    public var skipInvalid = false
    /// The country of every network in a plain CIDR/range list (else taken from the file name).
    public var listCountry: String?
    /// The largest input accepted, as stored and after decompression: a
    /// decompression bomb is refused as soon as it inflates past it, and compile
    /// stays within a few hundred MB on any input (real sources are 10-30 MB).
    public static let defaultMaximumInputBytes = 64 << 20
    public var maximumInputBytes = ImportOptions.defaultMaximumInputBytes
    /// The most ranges all inputs together may hold (the embedded dataset has about
    /// 660,000): with the input limit, it keeps compile under 300 MB on any input.
    public static let defaultMaximumRanges = 1_500_000
    public var maximumRanges = ImportOptions.defaultMaximumRanges
    /// Ranges the inputs before these already hold (SourceLoader adds its own as it goes).
    public var rangesBefore = 0

    public init(skipInvalid: Bool = false, listCountry: String? = nil) {
        self.skipInvalid = skipInvalid
        self.listCountry = listCountry
    }
}
