import GeoGateCore

/// What a publisher's directory says is current (Docs/FORMAT.md, "Publication"):
/// the trie's file name, size and SHA-256, its signature line, and for people
/// the build time and sources. Nodes fetch it with a conditional GET each run; a
/// trie file is named by its hash and never rewritten, so the manifest is the one
/// file that changes, and its rename is the publication.
///
///     geogate-manifest 1
///     trie geogate-0123456789abcdef.trie
///     size 5242880
///     sha256 <64 hex>
///     gzip geogate-0123456789abcdef.trie.gz 1256701
///     signature geogate-ed25519-signature <key id> <base64>
///     built 1764471600
///     published 1764472000
///     source <name> <sha256 hex> <bytes> <format>
///
/// The manifest is not signed and is trusted for nothing: a node checks the trie it
/// names against the size and hash, then the signature against its own keys, and
/// refuses a trie built before the one it has (a replayed old publication).
public struct Manifest: Sendable, Equatable {
    public struct Source: Sendable, Equatable {
        public var name: String
        public var sha256: String
        public var size: UInt64
        public var format: String
        public init(name: String, sha256: String, size: UInt64, format: String) {
            self.name = name; self.sha256 = sha256; self.size = size; self.format = format
        }
    }

    public var trieName: String
    public var size: Int
    public var sha256: String
    public var signatureLine: String
    public var buildTime: Int64
    public var publishedTime: Int64
    public var sources: [Source]
    /// The same trie gzipped, and its size: what a node fetches when it is there
    /// (a trie compresses to about 40%); the checks are on the bytes it inflates to.
    public var gzipName: String?
    public var gzipSize: Int?

    public init(trieName: String, size: Int, sha256: String, signatureLine: String, buildTime: Int64, publishedTime: Int64,
                sources: [Source], gzipName: String? = nil, gzipSize: Int? = nil) {
        self.trieName = trieName; self.size = size; self.sha256 = sha256; self.signatureLine = signatureLine
        self.buildTime = buildTime; self.publishedTime = publishedTime; self.sources = sources
        self.gzipName = gzipName; self.gzipSize = gzipSize
    }

    public static let tag = "geogate-manifest 1"
    /// A manifest is a few hundred bytes; anything near this is not one.
    public static let maxBytes = 64 << 10
    public static let maxSources = 256

    /// The key id the signature line names (for logs; the node verifies it).
    public var keyID: String {
        let words = signatureLine.split(separator: " ")
        return words.count > 1 ? String(words[1]) : "?"
    }

    public var text: String {
        var out = "\(Self.tag)\ntrie \(trieName)\nsize \(size)\nsha256 \(sha256)\n"
        if let gzipName, let gzipSize { out += "gzip \(gzipName) \(gzipSize)\n" }
        out += "signature \(signatureLine)\n"
        out += "built \(buildTime)\npublished \(publishedTime)\n"
        for s in sources { out += "source \(Self.word(s.name)) \(s.sha256) \(s.size) \(Self.word(s.format))\n" }
        return out
    }

    /// A source name as one word of printable ASCII (names come from outside).
    static func word(_ text: String) -> String {
        let cleaned = String(text.unicodeScalars.prefix(100).map { $0.isASCII && $0.value > 32 && $0.value < 127 ? Character($0) : "_" })
        return cleaned.isEmpty ? "_" : cleaned
    }

    /// A trie file name the manifest may name: one path component of safe
    /// characters, so it joins to the publisher's URL and names nothing else.
    public static func isSafeFileName(_ name: some StringProtocol) -> Bool {
        !name.isEmpty && name.count <= 100 && name.first != "." &&
            name.unicodeScalars.allSatisfy(isFileNameScalar)
    }

    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// Reads a manifest; errors name `name` and the line, with outside text escaped.
    public static func parse(_ bytes: [UInt8], name: String) throws(ParseError) -> Manifest {
        func fail(_ line: Int, _ why: String) -> ParseError {
            ParseError(description: "\(SafeText.field(name)):\(line): \(why)")
        }
        guard bytes.count <= maxBytes else { throw ParseError(description: "\(SafeText.field(name)): over \(maxBytes) bytes: not a geogate manifest") }
        var fields: [String: String] = [:]
        var sources: [Source] = []
        var number = 0
        var sawTag = false
        for rawLine in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            number += 1
            var line = rawLine[...]
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            if line.isEmpty { continue }
            guard line.count <= 1024, let text = String(validating: line, as: UTF8.self) else {
                throw fail(number, "not a line of text: \(SafeText.bytes(line, limit: 80))")
            }
            if !sawTag {
                guard text == tag else { throw fail(number, "expected \"\(tag)\", found \"\(SafeText.field(text, limit: 80))\"") }
                sawTag = true
                continue
            }
            let words = text.split(separator: " ", omittingEmptySubsequences: false)
            let key = String(words[0])
            switch key {
            case "trie", "size", "sha256", "built", "published":
                guard words.count == 2 else { throw fail(number, "\(key): expected one value") }
                guard fields[key] == nil else { throw fail(number, "\(key) given twice") }
                fields[key] = String(words[1])
            case "gzip":
                guard words.count == 3 else { throw fail(number, "gzip: expected <file name> <bytes>") }
                guard fields[key] == nil else { throw fail(number, "gzip given twice") }
                fields[key] = String(words[1])
                fields["gzip-size"] = String(words[2])
            case "signature":
                guard fields[key] == nil else { throw fail(number, "signature given twice") }
                fields[key] = String(text.dropFirst(key.count + 1))
            case "source":
                guard sources.count < maxSources else { throw fail(number, "more than \(maxSources) sources") }
                guard words.count == 5, isHex(words[2], 64), let size = UInt64(words[3]) else {
                    throw fail(number, "source: expected <name> <sha256> <bytes> <format>")
                }
                sources.append(Source(name: word(String(words[1])), sha256: String(words[2]), size: size, format: word(String(words[4]))))
            default:
                // A later version may add fields; they are skipped.
                continue
            }
        }
        guard sawTag else { throw ParseError(description: "\(SafeText.field(name)): empty: not a geogate manifest") }
        func required(_ key: String) throws(ParseError) -> String {
            guard let v = fields[key] else { throw ParseError(description: "\(SafeText.field(name)): no \(key) line") }
            return v
        }
        let trie = try required("trie")
        guard isSafeFileName(trie) else { throw ParseError(description: "\(SafeText.field(name)): trie: \"\(SafeText.field(trie, limit: 100))\" is not a plain file name") }
        guard let size = Int(try required("size")), size > 0 else { throw ParseError(description: "\(SafeText.field(name)): size: not a positive number") }
        let sha = try required("sha256")
        guard isHex(sha, 64) else { throw ParseError(description: "\(SafeText.field(name)): sha256: expected 64 lowercase hex digits") }
        let signature = try required("signature")
        guard let built = Int64(try required("built")) else { throw ParseError(description: "\(SafeText.field(name)): built: not a number") }
        let published = Int64(fields["published"] ?? "0") ?? 0
        var gzipSize: Int?
        if let gz = fields["gzip"] {
            guard isSafeFileName(gz) else { throw ParseError(description: "\(SafeText.field(name)): gzip: \"\(SafeText.field(gz, limit: 100))\" is not a plain file name") }
            guard let n = Int(fields["gzip-size"] ?? ""), n > 0 else { throw ParseError(description: "\(SafeText.field(name)): gzip: the size is not a positive number") }
            gzipSize = n
        }
        return Manifest(trieName: trie, size: size, sha256: sha, signatureLine: signature, buildTime: built, publishedTime: published,
                        sources: sources, gzipName: fields["gzip"], gzipSize: gzipSize)
    }

    static func isHex(_ text: some StringProtocol, _ length: Int) -> Bool {
        text.utf8.count == length && text.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }
}

/// Letters, digits, - . _ : safe in a URL path and in a directory.
func isFileNameScalar(_ s: Unicode.Scalar) -> Bool {
    (s >= "a" && s <= "z") || (s >= "A" && s <= "Z") || (s >= "0" && s <= "9") || s == "-" || s == "." || s == "_"
}
