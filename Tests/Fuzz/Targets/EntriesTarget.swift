import GeoGateCore
import GeoGateDaemon
import GeoGatePolicy

/// Run-time entries from outside: the state file (`<state-dir>/entries`, which an
/// admin may edit) and the socket's ALLOW, BLOCK, UNLIST and ENTRIES lines (a web
/// application's, a PBX hook's). The whole input is parsed as a state file: an
/// accepted file must hold only entries geogate could have written (a network
/// that is not every address, a valid profile name, a printable bounded reason),
/// and write and parse back to the same entries; an error is one bounded
/// printable line naming the file and line. Then each line of the input is a
/// request: entry requests must carry a network that is not every address and a
/// duration from 0, and every error is one bounded printable answer.
let entriesTarget = FuzzTarget("entries", "the run-time entries file, then each line as an ALLOW/BLOCK/UNLIST/ENTRIES request") { input throws(FuzzFailure) in
    let bytes = Array(input.assumingMemoryBound(to: UInt8.self))
    do {
        let parsed = try RuntimeEntries.parse(bytes, path: "/var/lib/geogate/entries")
        for e in parsed.entries {
            guard e.network.prefixLength > 0 else { throw FuzzFailure("an accepted entry is every address: \(e.network)") }
            guard RuntimeEntries.isProfileName(e.profile) else { throw FuzzFailure("an accepted profile name \(SafeText.field(e.profile))") }
            try expectShownSafely(e.reason, limit: RuntimeEntries.maxReasonBytes + 40, "an accepted reason")
        }
        let again = try RuntimeEntries.parse(parsed.encoded(), path: "again")
        guard again == parsed else { throw FuzzFailure("the entries do not write and parse back to themselves") }
    } catch let error as EntryError {
        try expectShownSafely(error.description, limit: 1024, "the entries file's error")
        guard error.description.hasPrefix("/var/lib/geogate/entries:") else { throw FuzzFailure("the error does not name the file and line: \(error)") }
    } catch let failure as FuzzFailure {
        throw failure
    } catch {
        throw FuzzFailure("unexpected error \(error)")
    }
    var start = 0
    var lines = 0
    while start < bytes.count && lines < 64 {
        var end = start
        while end < bytes.count && bytes[end] != 0x0A { end += 1 }
        let line = Array(bytes[start..<min(end, start + Request.maxLineLength)])
        start = end + 1
        lines += 1
        let parsed = line.withUnsafeBytes { Request.parse($0) }
        switch parsed {
        case .failure(let error):
            try expectShownSafely(error.description, limit: 1024, "the answer to a bad request")
        case .success(.entry(let request)):
            switch request {
            case .put(_, let profile, let network, let seconds, let reason):
                guard network.prefixLength > 0, seconds >= 0 else { throw FuzzFailure("accepted \(network) for \(seconds) s") }
                try expectShownSafely(profile + reason, limit: 2048, "an entry request's words")
            case .unlist(_, let network):
                guard network.prefixLength > 0 else { throw FuzzFailure("accepted UNLIST of every address") }
            case .count:
                break
            }
        case .success:
            break
        }
    }
}
