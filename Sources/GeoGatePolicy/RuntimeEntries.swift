import GeoGateCore
#if canImport(Glibc)
import Glibc
#endif

/// One run-time entry: a network allowed or blocked in one profile, for a time or
/// until unlisted (`geogate allow|block|unlist`, or the socket's ALLOW, BLOCK and
/// UNLIST). Its place in the precedence is after the admin's static networks and
/// before the country rule (Policy.decide); a block wins over an allow.
public struct RuntimeEntry: Sendable, Equatable {
    public enum Action: String, Sendable, CaseIterable {
        case allow, block
    }

    public var action: Action
    public var profile: String
    public var network: CIDR
    /// When it ends, in Unix seconds of the system clock; nil: until unlisted.
    public var expires: Int64?
    /// When it was added (Unix seconds).
    public var added: Int64
    /// Who added it: the uid of the command, or of the socket's peer.
    public var uid: UInt32
    /// Why, as given (escaped and cut to `RuntimeEntries.maxReasonBytes`).
    public var reason: String

    /// `reason` as given is escaped and cut; `reasonIsStored`: it comes from the
    /// state file, where it already is.
    public init(action: Action, profile: String, network: CIDR, expires: Int64?, added: Int64, uid: UInt32, reason: String,
                reasonIsStored: Bool = false) {
        self.action = action
        self.profile = profile
        self.network = network
        self.expires = expires
        self.added = added
        self.uid = uid
        self.reason = reasonIsStored ? reason : RuntimeEntries.cleanReason(reason)
    }

    public func isLive(at now: Int64) -> Bool { expires.map { now < $0 } ?? true }

    /// "block full 203.0.113.7/32 for 3600 s (uid 0: scanner)", for logs and answers.
    public func summary(now: Int64) -> String {
        let time = expires.map { "for \(max(0, $0 - now)) s" } ?? "until unlisted"
        return "\(action.rawValue) \(profile) \(network) \(time) (uid \(uid)\(reason.isEmpty ? "" : ": \(reason)"))"
    }
}

public struct EntryError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable {
        /// The profile holds its cap of live entries.
        case full
        case notFound = "not-found"
        case badRequest = "bad-request"
        case forbidden
        /// The run lock is held (a refresh or apply is running).
        case busy
        /// The state file, the kernel, or the config failed.
        case failed
    }

    public let code: Code
    public let description: String
    public init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }
}

/// Every run-time entry of every profile, as the state file holds them
/// (`<state-dir>/entries`, written atomically under the run lock):
///
///     # geogate run-time entries: geogate allow|block|unlist change them
///     v1
///     <allow|block> <profile> <network> <expires|-> <added> <uid> <reason...>
///
/// Expired entries stay harmless until the next change drops them: every reader
/// compares `expires` with its own clock, and the kernel forgets them by itself
/// (ipset and nft element timeouts).
public struct RuntimeEntries: Sendable, Equatable {
    public private(set) var entries: [RuntimeEntry]

    /// ipset's longest element timeout is 2,147,483 s: 24 days fit, with room.
    public static let maxDurationSeconds: Int64 = 24 * 86400
    public static let maxReasonBytes = 200
    /// The state file's size limit (the caps keep it far below).
    static let maxFileBytes = 64 << 20

    public init(_ entries: [RuntimeEntry] = []) { self.entries = entries }

    /// A reason as stored: printable, one line, at most maxReasonBytes.
    static func cleanReason(_ text: String) -> String {
        var s = SafeText.field(text, limit: maxReasonBytes)
        if s.utf8.count > maxReasonBytes + 40 { s = String(decoding: Array(s.utf8.prefix(maxReasonBytes)), as: UTF8.self) }
        return s.trimmingBlanks()
    }

    /// The live entries of one profile, in the order they were added.
    public func entries(profile: String, now: Int64) -> [RuntimeEntry] {
        entries.filter { $0.profile == profile && $0.isLive(at: now) }
    }

    /// Adds `entry`, replacing the entry of the same profile and network (an allow
    /// becomes a block, a time is renewed). Refused when the profile already has
    /// `cap` live entries and this one is new. Expired entries are dropped.
    /// Returns the entry it replaced.
    @discardableResult
    public mutating func put(_ entry: RuntimeEntry, cap: Int, now: Int64) throws(EntryError) -> RuntimeEntry? {
        entries.removeAll { !$0.isLive(at: now) }
        if let i = entries.firstIndex(where: { $0.profile == entry.profile && $0.network == entry.network }) {
            let old = entries[i]
            entries[i] = entry
            return old
        }
        let count = entries.reduce(0) { $0 + ($1.profile == entry.profile ? 1 : 0) }
        guard count < cap else {
            throw EntryError(.full, "profile \(entry.profile) holds its cap of \(cap) run-time entries (entries.max-per-profile); unlist some first")
        }
        entries.append(entry)
        return nil
    }

    /// Removes the entry of `profile` for exactly `network`; nil when there is none.
    @discardableResult
    public mutating func remove(profile: String, network: CIDR, now: Int64) -> RuntimeEntry? {
        entries.removeAll { !$0.isLive(at: now) }
        guard let i = entries.firstIndex(where: { $0.profile == profile && $0.network == network }) else { return nil }
        return entries.remove(at: i)
    }

    /// Drops expired entries and those of profiles no longer configured.
    public mutating func prune(now: Int64, profiles: Set<String>) {
        entries.removeAll { !$0.isLive(at: now) || !profiles.contains($0.profile) }
    }

    // MARK: - The state file

    public static func load(path: String) throws(EntryError) -> RuntimeEntries {
        guard access(path, F_OK) == 0 else { return RuntimeEntries() }
        let bytes: [UInt8]
        do { bytes = try readWholeFile(path, limit: maxFileBytes) } catch { throw EntryError(.failed, "\(error)") }
        return try parse(bytes, path: path)
    }

    /// Parses the file in place (no copy per line or field: a daemon with
    /// thousands of entries reads it on every change).
    public static func parse(_ bytes: [UInt8], path: String) throws(EntryError) -> RuntimeEntries {
        var out: [RuntimeEntry] = []
        let result: Result<Void, EntryError> = bytes.withUnsafeBufferPointer { all in
            var sawVersion = false
            var lineNumber = 0
            var start = 0
            while start < all.count {
                var end = start
                while end < all.count && all[end] != 0x0A { end += 1 }
                lineNumber += 1
                let line = UnsafeBufferPointer(rebasing: all[start..<end])
                start = end + 1
                if line.isEmpty || line[0] == 0x23 { continue }  // blank, or "#"
                func fail(_ why: String) -> Result<Void, EntryError> {
                    .failure(EntryError(.failed, "\(SafeText.field(path)):\(lineNumber): \(why): \(SafeText.bytes(line, limit: 120)) "
                                        + "(fix or remove the line; `geogate entries` lists what is valid)"))
                }
                for byte in line where byte < 0x20 || byte == 0x7F { return fail("control characters") }
                if !sawVersion {
                    guard line.count == 2 && line[0] == UInt8(ascii: "v") && line[1] == UInt8(ascii: "1") else {
                        return fail("not a geogate entries file of version v1")
                    }
                    sawVersion = true
                    continue
                }
                // Six fields separated by single spaces, then the reason (the rest).
                var fields: [Range<Int>] = []
                fields.reserveCapacity(7)
                var f = 0
                while fields.count < 6, f <= line.count {
                    var g = f
                    while g < line.count && line[g] != 0x20 { g += 1 }
                    fields.append(f..<g)
                    f = g + 1
                }
                guard fields.count == 6, fields.allSatisfy({ !$0.isEmpty }) else {
                    return fail("expected <action> <profile> <network> <expires|-> <added> <uid> [reason]")
                }
                func field(_ i: Int) -> UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(rebasing: line[fields[i]]) }
                func number(_ i: Int) -> Int64? {
                    let d = field(i)
                    guard d.count <= 18 else { return nil }
                    var n: Int64 = 0
                    for c in d {
                        guard c >= 0x30 && c <= 0x39 else { return nil }
                        n = n * 10 + Int64(c - 0x30)
                    }
                    return n
                }
                let action: RuntimeEntry.Action
                if field(0).elementsEqual("allow".utf8) { action = .allow } else if field(0).elementsEqual("block".utf8) { action = .block } else {
                    return fail("the action is not allow or block")
                }
                guard case .success(let network) = CIDR.parse(field(2)), network.prefixLength > 0 else { return fail("not a network") }
                let expires: Int64?
                if field(3).count == 1 && field(3)[0] == UInt8(ascii: "-") { expires = nil } else {
                    guard let e = number(3), e > 0 else { return fail("the expiry is not a time") }
                    expires = e
                }
                guard let added = number(4), let uid = number(5), uid <= Int64(UInt32.max) else {
                    return fail("the time added or the uid is not a number")
                }
                let profile = String(decoding: field(1), as: UTF8.self)
                guard Self.isProfileName(profile) else { return fail("not a profile name") }
                let reason = f < line.count ? storedReason(UnsafeBufferPointer(rebasing: line[f...])) : ""
                out.append(RuntimeEntry(action: action, profile: profile, network: network, expires: expires, added: added,
                                        uid: UInt32(uid), reason: reason, reasonIsStored: true))
            }
            return .success(())
        }
        try result.get()
        return RuntimeEntries(out)
    }

    /// A reason read from the file, bounded whatever the file holds: invalid UTF-8
    /// becomes U+FFFD (three bytes for one), so the text is cut again after
    /// decoding (found by the entries fuzz target).
    static func storedReason(_ raw: UnsafeBufferPointer<UInt8>) -> String {
        let text = String(decoding: raw.prefix(maxReasonBytes + 40), as: UTF8.self)
        return text.utf8.count <= maxReasonBytes + 40 ? text : String(decoding: Array(text.utf8.prefix(maxReasonBytes)), as: UTF8.self)
    }

    public static func isProfileName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 20
            && s.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x5F }
    }

    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256 + entries.count * 80)
        out += "# geogate run-time entries: `geogate allow|block|unlist` change them (do not edit while geogate runs)\n".utf8
        out += "# <action> <profile> <network> <expires, Unix seconds, or - for until unlisted> <added> <uid> <reason>\n".utf8
        out += "v1\n".utf8
        func number(_ n: Int64) {
            var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                         UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
                (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            withUnsafeMutableBytes(of: &digits) { d in
                var v = n.magnitude, k = d.count
                repeat { k -= 1; d[k] = UInt8(v % 10) + 0x30; v /= 10 } while v > 0 && k > 0
                if n < 0 && k > 0 { k -= 1; d[k] = UInt8(ascii: "-") }
                out += d[k...]
            }
        }
        for e in entries {
            out += e.action.rawValue.utf8
            out.append(0x20)
            out += e.profile.utf8
            out.append(0x20)
            out += e.network.description.utf8
            out.append(0x20)
            if let x = e.expires { number(x) } else { out.append(UInt8(ascii: "-")) }
            out.append(0x20)
            number(e.added)
            out.append(0x20)
            number(Int64(e.uid))
            if !e.reason.isEmpty {
                out.append(0x20)
                out += e.reason.utf8
            }
            out.append(0x0A)
        }
        return out
    }

    /// Writes the file atomically (temp file, fsync, rename).
    public func save(path: String) throws(EntryError) {
        do { try AtomicFile.write(encoded(), to: path) } catch { throw EntryError(.failed, "\(error)") }
    }

    // MARK: - Durations

    /// "90", "90s", "15m", "2h", "7d", "1w", "1h30m": seconds; nil when it is not
    /// a duration. Bounded by maxDurationSeconds (the caller says so).
    public static func parseDuration(_ text: String) -> Int64? {
        var total: Int64 = 0, number: Int64 = 0, digits = 0, sawUnit = false
        for byte in text.utf8 {
            switch byte {
            case 0x30...0x39:
                guard digits < 10 else { return nil }
                number = number * 10 + Int64(byte - 0x30)
                digits += 1
            default:
                let unit: Int64
                switch byte {
                case UInt8(ascii: "s"): unit = 1
                case UInt8(ascii: "m"): unit = 60
                case UInt8(ascii: "h"): unit = 3600
                case UInt8(ascii: "d"): unit = 86400
                case UInt8(ascii: "w"): unit = 7 * 86400
                default: return nil
                }
                guard digits > 0 else { return nil }
                total += number * unit
                number = 0
                digits = 0
                sawUnit = true
            }
        }
        if digits > 0 { total += number } else if !sawUnit { return nil }
        return total
    }
}

extension String {
    func trimmingBlanks() -> String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}

/// One profile's live entries ready for a decision per request: a hash table per
/// action keyed by (network, prefix length), and the prefix lengths in use, most
/// specific first, so a request costs one probe per length in use (entries are
/// mostly single addresses: one or two lengths), never a scan of the entries.
public struct EntryTable: Sendable {
    struct Key: Hashable, Sendable {
        var value: UInt128
        var length: UInt8
        var v6: Bool
    }

    struct Hit: Sendable {
        var network: CIDR
        var expires: Int64
    }

    private var block: [Key: Hit] = [:]
    private var allow: [Key: Hit] = [:]
    /// Lengths in use, most specific first: [action][family].
    private var blockLengths: ([UInt8], [UInt8]) = ([], [])
    private var allowLengths: ([UInt8], [UInt8]) = ([], [])
    public let count: Int

    public static let empty = EntryTable([])

    public init(_ entries: [RuntimeEntry]) {
        count = entries.count
        var lengths: [RuntimeEntry.Action: (Set<UInt8>, Set<UInt8>)] = [.allow: ([], []), .block: ([], [])]
        for e in entries {
            let key = Key(value: e.network.address, length: UInt8(e.network.prefixLength), v6: e.network.family == .v6)
            let hit = Hit(network: e.network, expires: e.expires ?? .max)
            if e.action == .block { block[key] = hit } else { allow[key] = hit }
            if e.network.family == .v4 { lengths[e.action]!.0.insert(key.length) } else { lengths[e.action]!.1.insert(key.length) }
        }
        blockLengths = (lengths[.block]!.0.sorted(by: >), lengths[.block]!.1.sorted(by: >))
        allowLengths = (lengths[.allow]!.0.sorted(by: >), lengths[.allow]!.1.sorted(by: >))
    }

    public var isEmpty: Bool { count == 0 }

    /// The entry that decides for `address` at `now`: the most specific live block,
    /// else the most specific live allow, else nil.
    public func match(_ address: IPAddress, now: Int64) -> (action: RuntimeEntry.Action, network: CIDR)? {
        let v6 = address.family == .v6
        if let net = Self.probe(block, v6 ? blockLengths.1 : blockLengths.0, address, v6: v6, now: now) { return (.block, net) }
        if let net = Self.probe(allow, v6 ? allowLengths.1 : allowLengths.0, address, v6: v6, now: now) { return (.allow, net) }
        return nil
    }

    private static func probe(_ table: [Key: Hit], _ lengths: [UInt8], _ address: IPAddress, v6: Bool, now: Int64) -> CIDR? {
        let width = v6 ? 128 : 32
        for length in lengths {
            let hostBits = width - Int(length)
            let mask: UInt128 = hostBits == 0 ? .max : (hostBits == 128 ? 0 : ~((UInt128(1) << UInt128(hostBits)) - 1))
            if let hit = table[Key(value: address.value & mask, length: length, v6: v6)], now < hit.expires { return hit.network }
        }
        return nil
    }
}
