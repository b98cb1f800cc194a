import Crypto
import Foundation
import GeoGateCore
#if canImport(Glibc)
import Glibc
#endif

/// Signed tries for a fleet (Docs/FORMAT.md, "Signatures"): an Ed25519 key pair
/// made once on the compile host (`geogate keygen`), and a detached signature
/// over every byte of a trie file (`<trie>.sig`, `compile --sign-key`), which a
/// node checks against the public keys it trusts before it opens the trie.
///
///     geogate.key   geogate-ed25519-private <base64 of the 32-byte seed>
///     geogate.pub   geogate-ed25519 <base64 of the 32-byte public key>
///     <trie>.sig    geogate-ed25519-signature <key id> <base64 of the 64-byte signature>
///
/// The key id is the first 8 bytes of the SHA-256 of the public key, in hex: it
/// names a key in logs and in `info` without showing it whole.
public enum TrieSigning {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    public struct PublicKey: Sendable {
        /// The 32 bytes of the key (checked to be one when read).
        public let raw: Data
        /// Where it was read from, for messages.
        public let origin: String
        public var id: String { hexString(Array(SHA256.hash(data: raw)).prefix(8)) }
    }

    static let privateTag = "geogate-ed25519-private"
    static let publicTag = "geogate-ed25519"
    static let signatureTag = "geogate-ed25519-signature"

    public static func keyID(_ key: Curve25519.Signing.PublicKey) -> String {
        hexString(Array(SHA256.hash(data: key.rawRepresentation)).prefix(8))
    }

    /// Writes `DIR/geogate.key` (mode 0600) and `DIR/geogate.pub` (0644); refuses
    /// when either exists. Returns the key id.
    public static func makeKeyPair(in directory: String) throws(Failure) -> String {
        let privatePath = directory + "/geogate.key", publicPath = directory + "/geogate.pub"
        for path in [privatePath, publicPath] where access(path, F_OK) == 0 {
            throw Failure("\(path) exists: geogate keygen never overwrites a key (move it away first)")
        }
        do { try createDirectories(directory) } catch { throw Failure("\(directory): \(error)") }
        let key = Curve25519.Signing.PrivateKey()
        do {
            try AtomicFile.write(Array("\(privateTag) \(key.rawRepresentation.base64EncodedString())\n".utf8), to: privatePath, mode: 0o600)
            try AtomicFile.write(Array("\(publicTag) \(key.publicKey.rawRepresentation.base64EncodedString())\n".utf8), to: publicPath, mode: 0o644)
        } catch { throw Failure("\(error)") }
        return keyID(key.publicKey)
    }

    /// The second word of a one-line key file that starts with `tag`, decoded.
    static func field(_ path: String, tag: String, length: Int) throws(Failure) -> Data {
        let bytes: [UInt8]
        do { bytes = try readWholeFile(path, limit: 4096) } catch { throw Failure("\(error)") }
        let words = String(decoding: bytes, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\r" || $0 == "\t" })
        guard words.count >= 2, words[0] == tag, let data = Data(base64Encoded: String(words[1])), data.count == length else {
            throw Failure("\(SafeText.field(path)): not a \(tag) key file")
        }
        return data
    }

    public static func privateKey(_ path: String) throws(Failure) -> Curve25519.Signing.PrivateKey {
        let seed = try field(path, tag: privateTag, length: 32)
        do { return try Curve25519.Signing.PrivateKey(rawRepresentation: seed) } catch { throw Failure("\(SafeText.field(path)): \(error)") }
    }

    /// A trusted key as a node's config gives it: a key file's path, or the
    /// file's line inline ("geogate-ed25519 <base64>").
    public static func trustedKey(_ spec: String, origin: String) throws(Failure) -> PublicKey {
        guard spec.hasPrefix(publicTag + " ") else { return try publicKey(spec) }
        let words = spec.split(separator: " ")
        guard words.count == 2, let raw = Data(base64Encoded: String(words[1])), raw.count == 32,
              let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else {
            throw Failure("\(origin): not a \(publicTag) key")
        }
        return PublicKey(raw: key.rawRepresentation, origin: origin)
    }

    /// A `trie:` source's `public-key` list, each a file or a key inline.
    public static func trustedKeys(_ specs: [String]) throws(Failure) -> [PublicKey] {
        var keys: [PublicKey] = []
        for (i, spec) in specs.enumerated() {
            keys.append(try trustedKey(spec, origin: "refresh.sources public-key[\(i)] (inline)"))
        }
        return keys
    }

    public static func publicKey(_ path: String) throws(Failure) -> PublicKey {
        let raw = try field(path, tag: publicTag, length: 32)
        do { return PublicKey(raw: try Curve25519.Signing.PublicKey(rawRepresentation: raw).rawRepresentation, origin: path) } catch {
            throw Failure("\(SafeText.field(path)): \(error)")
        }
    }

    /// The signature line for `bytes`.
    public static func sign(_ bytes: [UInt8], with key: Curve25519.Signing.PrivateKey) throws(Failure) -> [UInt8] {
        let signature: Data
        do { signature = try key.signature(for: bytes) } catch { throw Failure("signing: \(error)") }
        return Array("\(signatureTag) \(keyID(key.publicKey)) \(signature.base64EncodedString())\n".utf8)
    }

    /// The key of `keys` whose signature `signatureLine` is over exactly `bytes`;
    /// a signature by no key given, or one that does not verify, is an error that
    /// says which.
    public static func verify(_ bytes: UnsafeRawBufferPointer, signature signatureLine: [UInt8], keys: [PublicKey],
                              name: String) throws(Failure) -> PublicKey {
        let words = String(decoding: signatureLine.prefix(512), as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\r" })
        guard words.count == 3, words[0] == signatureTag, let signature = Data(base64Encoded: String(words[2])), signature.count == 64 else {
            throw Failure("\(SafeText.field(name)): the signature file is not a \(signatureTag) line")
        }
        let id = String(words[1])
        guard let key = keys.first(where: { $0.id == id }) else {
            throw Failure("\(SafeText.field(name)): signed by key \(SafeText.field(id, limit: 32)), which is not among the trusted keys (\(keys.map(\.id).joined(separator: ", ")))")
        }
        guard let verifier = try? Curve25519.Signing.PublicKey(rawRepresentation: key.raw), verifier.isValidSignature(signature, for: bytes) else {
            throw Failure("\(SafeText.field(name)): the signature by key \(id) does not match the file's bytes (changed or cut after signing)")
        }
        return key
    }
}
