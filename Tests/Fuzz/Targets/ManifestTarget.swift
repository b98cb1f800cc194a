import GeoGateCore
import GeoGateFleet

/// A publisher's manifest as a fleet node reads it (issue 16): the one file of a
/// publication a node parses before anything is verified. An accepted manifest
/// names a plain file name (nothing outside the publisher's directory), a size
/// and a SHA-256 of the right shape, and writes and parses back to itself; an
/// error is one bounded printable line naming the manifest.
let manifestTarget = FuzzTarget("manifest", "a fleet publisher's manifest (geogate-manifest 1)") { input throws(FuzzFailure) in
    do {
        let m = try Manifest.parse(Array(input), name: "http://publisher/manifest")
        guard Manifest.isSafeFileName(m.trieName), !m.trieName.contains("/"), m.trieName != "..", m.trieName != "." else {
            throw FuzzFailure("accepted the trie name \(SafeText.field(m.trieName))")
        }
        guard m.size > 0, m.sha256.utf8.count == 64 else { throw FuzzFailure("accepted size \(m.size), sha256 \(SafeText.field(m.sha256))") }
        let again: Manifest
        do { again = try Manifest.parse(Array(m.text.utf8), name: "written") } catch {
            throw FuzzFailure("the written manifest does not parse: \(error)")
        }
        guard again == m else { throw FuzzFailure("the written manifest parses to another one") }
    } catch let failure as FuzzFailure {
        throw failure
    } catch {
        try expectShownSafely("\(error)", limit: 512, "the manifest's error")
        guard "\(error)".hasPrefix("http://publisher/manifest") else { throw FuzzFailure("the error does not name the manifest: \(error)") }
    }
}
