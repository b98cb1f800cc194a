// swift-tools-version:6.2
import PackageDescription

// geogate: country IP data → a compact radix-trie file (and, later, firewall sets
// and a lookup daemon). The targets follow the data flow; see README.md.
let package = Package(
    name: "geogate",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "geogate", targets: ["geogate"]),
        .executable(name: "geogate-bench", targets: ["GeoGateBench"]),
        .library(name: "GeoGateTrie", targets: ["GeoGateTrie"]),
        .library(name: "GeoGateImport", targets: ["GeoGateImport"]),
        // The fuzz targets' driver (Tests/Fuzz/README.md): libFuzzer's when built by
        // Scripts/fuzz.sh, else a replayer of saved inputs.
        .executable(name: "geogate-fuzz", targets: ["GeoGateFuzzDriver"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        // C libraries, reached through system-library targets.
        .systemLibrary(name: "CMaxMindDB", pkgConfig: "libmaxminddb",
                       providers: [.apt(["libmaxminddb-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CLZMA", pkgConfig: "liblzma", providers: [.apt(["liblzma-dev"])]),
        .systemLibrary(name: "CArchive", pkgConfig: "libarchive", providers: [.apt(["libarchive-dev"])]),
        // libipset's session API behind a small exit()-free C shim (variadic callbacks).
        .target(name: "CIPSet", linkerSettings: [.linkedLibrary("ipset")]),
        // The kernel's connection tracking (libnetfilter_conntrack) for the lockout guard: UDP flows too.
        .target(name: "CConntrack", linkerSettings: [.linkedLibrary("netfilter_conntrack"), .linkedLibrary("nfnetlink")]),
        // nft scripts as one kernel transaction through libnftables (`apply --backend nft`).
        .target(name: "CNFTables", linkerSettings: [.linkedLibrary("nftables")]),

        // Addresses, prefixes, country codes, range maps, CIDR cover.
        .target(name: "GeoGateCore", dependencies: ["CGeoGateSupport"]),
        // One importer per source format, plus decompression of .gz / .xz inputs.
        .target(name: "GeoGateImport",
                dependencies: ["GeoGateCore", "CMaxMindDB", "CZlib", "CLZMA", "CArchive",
                               .product(name: "Crypto", package: "swift-crypto")]),
        // The trie file: builder, writer, mmap reader (Docs/FORMAT.md).
        .target(name: "GeoGateTrie", dependencies: ["GeoGateCore", "CZlib", "CGeoGateSupport"]),
        // Header-only C helpers for the lookup hot path (a prefetch hint).
        .target(name: "CGeoGateSupport"),
        // Config and profiles: the one allow/deny precedence, as decisions and as set algebra.
        .target(name: "GeoGatePolicy", dependencies: ["GeoGateCore", .product(name: "Yams", package: "Yams")]),
        // Firewall sets: ipset and nft text, libipset loading, lockout protection.
        .target(name: "GeoGateFirewall", dependencies: ["GeoGateCore", "GeoGatePolicy", "CIPSet", "CConntrack", "CNFTables"]),
        // The lookup daemon: protocol, snapshots and reload, the SwiftNIO Unix-socket server.
        .target(name: "GeoGateDaemon",
                dependencies: ["GeoGateCore", "GeoGatePolicy", "GeoGateTrie", "GeoGateFirewall", "CGeoGateSupport",
                               .product(name: "NIOCore", package: "swift-nio"),
                               .product(name: "NIOPosix", package: "swift-nio"),
                               .product(name: "NIOHTTP1", package: "swift-nio"),
                               .product(name: "Logging", package: "swift-log"),
                               .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                               .product(name: "UnixSignals", package: "swift-service-lifecycle")]),
        // Scheduled refresh: downloads (AsyncHTTPClient), archives (libarchive), checks,
        // the sanity guard, the swap, then daemon reload and sets.
        .target(name: "GeoGateRefresh",
                dependencies: ["GeoGateCore", "GeoGateImport", "GeoGateTrie", "GeoGatePolicy", "GeoGateFirewall", "GeoGateFleet",
                               .product(name: "AsyncHTTPClient", package: "async-http-client"),
                               .product(name: "Crypto", package: "swift-crypto"),
                               .product(name: "Logging", package: "swift-log")]),
        // A fleet from one compile host: Ed25519 keys, detached trie signatures, publication.
        .target(name: "GeoGateFleet",
                dependencies: ["GeoGateCore", "GeoGateTrie", "CZlib", .product(name: "Crypto", package: "swift-crypto")]),
        // The CLI: thin, calls the libraries.
        .executableTarget(name: "geogate",
                          dependencies: ["GeoGateCore", "GeoGateImport", "GeoGateTrie", "GeoGatePolicy", "GeoGateFirewall",
                                         "GeoGateDaemon", "GeoGateRefresh", "GeoGateFleet",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser"),
                                         .product(name: "Crypto", package: "swift-crypto"),
                                         .product(name: "Logging", package: "swift-log"),
                                         .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")]),
        .executableTarget(name: "GeoGateBench",
                          dependencies: ["GeoGateTrie", "GeoGateCore", "GeoGatePolicy", "GeoGateFirewall", "CMaxMindDB",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser"),
                                         .product(name: "NIOCore", package: "swift-nio"),
                                         .product(name: "NIOPosix", package: "swift-nio")],
                          path: "Benchmarks/GeoGateBench"),

        // Helpers the test targets share (repository root, the built binary).
        .target(name: "GeoGateTestSupport", dependencies: ["GeoGateCore"], path: "Tests/GeoGateTestSupport"),
        .testTarget(name: "GeoGateCoreTests", dependencies: ["GeoGateCore"]),
        .testTarget(name: "GeoGateImportTests",
                    dependencies: ["GeoGateImport", "GeoGateCore", "GeoGateTrie", "CMaxMindDB", "GeoGateTestSupport"]),
        .testTarget(name: "GeoGatePolicyTests", dependencies: ["GeoGatePolicy", "GeoGateCore", "GeoGateTestSupport"]),
        .testTarget(name: "GeoGateFirewallTests",
                    dependencies: ["GeoGateFirewall", "GeoGatePolicy", "GeoGateTrie", "GeoGateCore", "GeoGateTestSupport"]),
        .testTarget(name: "GeoGateDaemonTests", dependencies: ["GeoGateTestSupport", "GeoGateCore"]),
        .testTarget(name: "GeoGateRefreshTests",
                    dependencies: ["GeoGateTestSupport", "GeoGateCore",
                                   .product(name: "NIOCore", package: "swift-nio"),
                                   .product(name: "NIOPosix", package: "swift-nio"),
                                   .product(name: "NIOHTTP1", package: "swift-nio")]),
        .testTarget(name: "GeoGateTrieTests", dependencies: ["GeoGateTrie", "GeoGateCore", "CGeoGateSupport"]),
        // Fuzz targets: one entry per parser of outside bytes, shared by the libFuzzer
        // driver (Scripts/fuzz.sh) and the regression tests (Tests/Fuzz/regressions).
        .target(name: "GeoGateFuzzTargets",
                dependencies: ["GeoGateCore", "GeoGateImport", "GeoGateTrie", "GeoGatePolicy", "GeoGateDaemon", "GeoGateFleet",
                               .product(name: "NIOCore", package: "swift-nio"),
                               .product(name: "NIOEmbedded", package: "swift-nio"),
                               .product(name: "Logging", package: "swift-log")],
                path: "Tests/Fuzz/Targets"),
        .target(name: "CLibFuzzer", path: "Tests/Fuzz/CLibFuzzer"),
        .executableTarget(name: "GeoGateFuzzDriver", dependencies: ["GeoGateFuzzTargets", "CLibFuzzer"], path: "Tests/Fuzz/Driver"),
        .testTarget(name: "GeoGateFuzzTests", dependencies: ["GeoGateFuzzTargets", "GeoGateTestSupport"]),
        // The Debian package (Scripts/package-deb.sh): unpacked, run without the toolchain, installed by dpkg.
        .testTarget(name: "GeoGatePackageTests", dependencies: ["GeoGateTestSupport"]),
    ]
)
