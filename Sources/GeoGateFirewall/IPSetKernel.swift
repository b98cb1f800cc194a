import CIPSet
import GeoGateCore

public struct IPSetError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The kernel's ipsets through libipset (the CIPSet shim): one netlink session.
public final class IPSetKernel {
    private let ctx: OpaquePointer

    public init() throws(IPSetError) {
        guard let ctx = gg_ipset_open() else { throw IPSetError("cannot start a libipset session (out of memory)") }
        self.ctx = ctx
    }

    deinit { gg_ipset_close(ctx) }

    private func check(_ ret: Int32, _ what: String) throws(IPSetError) {
        if ret < 0 { throw IPSetError("\(what): \(String(cString: gg_ipset_error(ctx)))") }
    }

    public func exists(_ name: String) throws(IPSetError) -> Bool {
        let r = gg_ipset_exists(ctx, name)
        try check(r, "ipset \(name)")
        return r == 1
    }

    /// A live set's type and family, or nil when there is no set of that name.
    public func header(_ name: String) throws(IPSetError) -> (type: String, family: IPFamily?)? {
        var type = [CChar](repeating: 0, count: 32)
        var family: Int32 = 0
        let r = gg_ipset_header(ctx, name, &type, &family)
        try check(r, "ipset \(name)")
        guard r == 1 else { return nil }
        let typeName = String(decoding: type.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return (typeName, family == 4 ? .v4 : family == 6 ? .v6 : nil)
    }

    /// How many entries the kernel says a live set holds (nil: it does not say).
    public func count(_ name: String) throws(IPSetError) -> Int? {
        let n = gg_ipset_count(ctx, name)
        if n == -2 { try check(-1, "ipset \(name)") }
        return n >= 0 ? Int(n) : nil
    }

    /// `withTimeout`: elements may carry timeouts (run-time entries' sets).
    public func createHashNet(_ name: String, family: IPFamily, hashSize: Int, maxElements: Int, withTimeout: Bool = false) throws(IPSetError) {
        try check(gg_ipset_create_hash_net(ctx, name, family == .v4 ? 4 : 6, UInt32(hashSize), UInt32(maxElements), withTimeout ? 1 : 0),
                  "creating ipset \(name)")
    }

    /// Adds every network (batched), then commits; `timeouts` (seconds, 0: none),
    /// one per network, for a set made with timeouts.
    public func add(_ cidrs: [CIDR], timeouts: [UInt32]? = nil, to name: String) throws(IPSetError) {
        var bytes = [UInt8](repeating: 0, count: 16)
        for (i, cidr) in cidrs.enumerated() {
            let width = cidr.family == .v4 ? 4 : 16
            for b in 0..<width {
                bytes[b] = UInt8(truncatingIfNeeded: cidr.address >> UInt128(8 * (width - 1 - b)))
            }
            let r = gg_ipset_add_net(ctx, name, cidr.family == .v4 ? 4 : 6, bytes, UInt8(cidr.prefixLength), UInt32(i + 1),
                                     timeouts.map { Int64($0[i]) } ?? -1)
            try check(r, "adding \(cidr) to ipset \(name)")
        }
        try check(gg_ipset_commit(ctx), "adding to ipset \(name)")
    }

    /// Adds one network to a live set (an element already there takes the new
    /// timeout, seconds, 0: none; nil for a set without timeouts) or deletes it (a
    /// missing one is no error), at once.
    public func change(_ cidr: CIDR, in name: String, add: Bool, timeout: UInt32? = nil) throws(IPSetError) {
        var bytes = [UInt8](repeating: 0, count: 16)
        let width = cidr.family == .v4 ? 4 : 16
        for b in 0..<width { bytes[b] = UInt8(truncatingIfNeeded: cidr.address >> UInt128(8 * (width - 1 - b))) }
        try check(gg_ipset_change_net(ctx, name, cidr.family == .v4 ? 4 : 6, bytes, UInt8(cidr.prefixLength), add ? 1 : 0,
                                      timeout.map { Int64($0) } ?? -1),
                  "\(add ? "adding \(cidr) to" : "deleting \(cidr) from") ipset \(name)")
    }

    public func swap(_ a: String, _ b: String) throws(IPSetError) { try check(gg_ipset_swap(ctx, a, b), "swapping ipsets \(a) and \(b)") }
    public func rename(_ a: String, to b: String) throws(IPSetError) { try check(gg_ipset_rename(ctx, a, b), "renaming ipset \(a) to \(b)") }
    public func destroy(_ name: String) throws(IPSetError) { try check(gg_ipset_destroy(ctx, name), "destroying ipset \(name)") }

    /// The networks in a set, read back from the kernel (`ipset save` form).
    public func members(of name: String) throws(IPSetError) -> [CIDR] {
        gg_ipset_output_reset(ctx)
        try check(gg_ipset_save(ctx, name), "listing ipset \(name)")
        var length = 0
        let p = gg_ipset_output(ctx, &length)!
        let text = String(decoding: UnsafeRawBufferPointer(start: p, count: length), as: UTF8.self)
        gg_ipset_output_reset(ctx)
        var out: [CIDR] = []
        for line in text.split(separator: "\n") where line.hasPrefix("add ") {
            let parts = line.split(separator: " ")
            guard parts.count >= 3, let cidr = CIDR(parts[2]) else { continue }
            out.append(cidr)
        }
        return out
    }
}
