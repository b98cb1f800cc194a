/// The on-disk layout of a geogate trie file, in one place. Docs/FORMAT.md describes
/// the same bytes for someone writing another reader. All integers little-endian.
///
/// ```
/// header (64 bytes)        magic "GEOGATE\0", version, CRC-32 of bytes 16..<end, size
/// section table            sectionCount × 24 bytes {kind u32, flags u32, offset u64, length u64}
/// sections (64-aligned)    countries, metadata, IPv4 root, IPv6 root, nodes
/// ```
///
/// A slot (u32) is either a leaf (bit 31 clear: country index in bits 0-15) or a node
/// reference (bit 31 set: bits 0-30 = node byte offset / 4 in the nodes section).
/// A node covers a block of 2^rem addresses and splits it on the next 16 bits: a
/// sorted list of 16-bit run starts, each with a value (leaf or child). A node's
/// children follow it as one group (the nodes are laid out breadth first), so a
/// 16-bit value can reach a child directly: no table in between.
public enum TrieFormat {
    public static let magic: [UInt8] = Array("GEOGATE".utf8) + [0]
    public static let version: UInt32 = 3
    public static let headerSize = 64
    public static let sectionEntrySize = 24
    public static let sectionAlignment = 64

    /// Section kinds, in the order the writer lays them out.
    public enum Section: UInt32, CaseIterable, Sendable {
        case countries = 1
        case metadata = 2
        case ipv4Root = 3
        case ipv6Root = 4
        case nodes = 5
    }

    /// Node kinds (byte 0 of a node header).
    public enum NodeKind: UInt8, Sendable {
        /// Values are u8 country indexes: no children. Country indexes are given by
        /// frequency, so nearly every leaf node fits here.
        case leaves8 = 1
        /// Values are u16 country indexes: a leaf node holding a rare country (index > 255).
        case leaves16 = 2
        /// Values are u16: bit 15 clear = leaf (country index in bits 0-14), set = a
        /// child c (bits 0-14) at node unit `childBase + 2c` (8-byte steps from the
        /// header's `childBase`, a slot's 4-byte unit).
        case mixed16 = 3
        /// Values are u32 slots (when the children span more than 16-bit values reach).
        case mixed32 = 4

        @inlinable public var hasChildren: Bool { self == .mixed16 || self == .mixed32 }
    }

    /// kind u8, index shift u8 (NodeSearch), key count - 1 u16, childBase u32.
    public static let nodeHeaderSize = 8
    /// The IPv4 root indexes the first 16 bits directly.
    public static let ipv4RootSlots = 1 << 16
    /// The IPv6 root: slot 0 is the tree for addresses outside 2000::/3 (its part
    /// inside 2000::/3 holds no country and is never consulted); slots 1...8192 are
    /// the /16s of 2000::/3, where all global unicast data lives, indexed directly.
    public static let ipv6DirectSlots = 8192
    public static let ipv6RootSlots = 1 + ipv6DirectSlots
    /// The top three bits of 2000::/3.
    public static let ipv6DirectTopBits: UInt128 = 1
    /// The first and last address of 2000::/3.
    public static let ipv6DirectFirst = ipv6DirectTopBits << 125
    public static let ipv6DirectLast = ipv6DirectFirst | (UInt128(1) << 125 - 1)

    /// Every node consumes 16 bits.
    public static let strideBits = 16

    public static let nodeFlag: UInt32 = 0x8000_0000
    public static let mixed16ChildFlag: UInt16 = 0x8000
    /// The largest child step a mixed16 value holds (in 8-byte units after childBase).
    public static let maxMixed16ChildStep = 0x7FFF
    /// Nodes reached through a mixed16 value start on 8 bytes.
    public static let childAlignment = 8

    /// Country index 0 means "no country"; index i ≥ 1 is entry i-1 of the countries
    /// section. The writer numbers countries by how many ranges they have, most first.
    public static let noCountry: UInt16 = 0
    public static let maxCountries = 0x7FFF

    /// Source format ids in the metadata.
    public static let formatIDs: [String] = ["unknown", "tor", "dbip-csv", "maxmind-csv", "mmdb", "rir", "cidr-list"]

    public static let metadataFixedSize = 56
    public static let sourceRecordSize = 56
}
