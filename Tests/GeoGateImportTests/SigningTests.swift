import Foundation
import Testing

/// Signed tries (the start of the fleet issue): `keygen`, `compile --sign-key`
/// and `info --public-key`, with the refusals a node will rely on: an unknown
/// key, a trie that is not the one signed, a key file that is not one.
@Suite(.serialized) struct SigningTests {
    @Test func keygenSignAndVerify() throws {
        let dir = NSTemporaryDirectory() + "geogate-sign-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let made = try geogate(["keygen", "--out", dir + "/keys"])
        #expect(made.status == 0 && made.stdout.hasPrefix("key "), "\(made.stderr)")
        let id = String(made.stdout.dropFirst(4).prefix(16))
        var st = stat()
        #expect(stat(dir + "/keys/geogate.key", &st) == 0 && st.st_mode & 0o777 == 0o600, "the private key is 0600")
        let again = try geogate(["keygen", "--out", dir + "/keys"])
        #expect(again.status == 1 && again.stderr.contains("never overwrites a key"), "\(again.stderr)")
        #expect(try geogate(["keygen", "--out", dir + "/other"]).status == 0)

        let trie = dir + "/c.trie"
        let compiled = try geogate(["compile", "-q", "-o", trie, "--build-time", "1", "--sign-key", dir + "/keys/geogate.key"])
        #expect(compiled.status == 0, "\(compiled.stderr)")
        let sig = try String(contentsOfFile: trie + ".sig", encoding: .utf8)
        #expect(sig.hasPrefix("geogate-ed25519-signature \(id) ") && sig.hasSuffix("\n"), "\(sig)")
        let ok = try geogate(["info", "--db", trie, "--public-key", dir + "/other/geogate.pub", "--public-key", dir + "/keys/geogate.pub"])
        #expect(ok.status == 0 && ok.stdout.contains("signature: key \(id), verified with \(dir)/keys/geogate.pub"), "\(ok.stdout) \(ok.stderr)")
        #expect(try geogate(["info", "--db", trie]).stdout.contains("signature: key \(id) (not checked: give --public-key)"))

        let stranger = try geogate(["info", "--db", trie, "--public-key", dir + "/other/geogate.pub"])
        #expect(stranger.status == 1 && stranger.stderr.contains("signed by key \(id), which is not among the trusted keys"), "\(stranger.stderr)")
        // Another valid trie (its own checksum right) under the old signature.
        #expect(try geogate(["compile", "-q", "-o", trie, "--build-time", "2"]).status == 0)
        let swapped = try geogate(["info", "--db", trie, "--public-key", dir + "/keys/geogate.pub"])
        #expect(swapped.status == 1 && swapped.stderr.contains("does not match the file's bytes"), "\(swapped.stderr)")
        // A public key given to sign with: refused before anything is written.
        let wrong = try geogate(["compile", "-q", "-o", dir + "/d.trie", "--sign-key", dir + "/keys/geogate.pub"])
        #expect(wrong.status == 2 && wrong.stderr.contains("not a geogate-ed25519-private key file") && access(dir + "/d.trie", F_OK) != 0,
                "\(wrong.stderr)")
        #expect(try geogate(["info", "--db", dir + "/c.trie", "--public-key", dir + "/keys/geogate.key"]).status == 2, "a private key is no public key")
    }
}
