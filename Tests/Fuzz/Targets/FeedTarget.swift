import GeoGateCore

/// allow-lists / block-lists feeds (NetworkList): plain lists, FireHOL netsets,
/// Spamhaus DROP. Byte 0 sets max-entries (1-256). An accepted feed holds at most
/// that many networks, none of every address, and writes and parses back (as
/// geogate keeps it) to the same networks; an error is one bounded printable line
/// naming the feed.
let feedTarget = FuzzTarget("feed", "allow-lists/block-lists feeds: plain, FireHOL netset, Spamhaus DROP; byte 0 the cap") { input throws(FuzzFailure) in
    guard let first = input.first else { return }
    let cap = Int(first) + 1
    let bytes = Array(input.dropFirst())
    do {
        let networks = try NetworkList.parse(bytes, name: "feed web/drop", maxEntries: cap)
        guard networks.count <= cap else { throw FuzzFailure("\(networks.count) networks accepted over the cap \(cap)") }
        for n in networks where n.prefixLength == 0 { throw FuzzFailure("accepted \(n), every address") }
        let again = try NetworkList.parse(NetworkList.text(networks, comment: "kept\nwith a newline"), name: "kept", maxEntries: cap)
        guard again == networks else { throw FuzzFailure("the kept text parses to \(again.count) networks, not \(networks.count)") }
    } catch let failure as FuzzFailure {
        throw failure
    } catch {
        try expectShownSafely("\(error)", limit: 512, "the feed's error")
        guard "\(error)".hasPrefix("feed web/drop") else { throw FuzzFailure("the error does not name the feed: \(error)") }
    }
}
