import Crypto
import GeoGateCore
import GeoGateFleet
import GeoGateImport
import GeoGatePolicy
import GeoGateTrie
#if canImport(Glibc)
import Glibc
#endif

/// A fleet node's source (`trie:` in refresh.sources): the trie a compile host
/// published (`geogate publish`), taken only when it checks out:
/// 1. the manifest, with a conditional GET (a day without a change costs a 304);
/// 2. nothing more when the live trie already has the manifest's SHA-256;
/// 3. the trie it names, then its size and SHA-256 against the manifest (a cut
///    transfer, a swapped file), then the signature against the node's own keys,
///    all before the bytes are opened as a trie;
/// 4. a trie built before the live one is refused without --force (an old
///    publication replayed, or a publisher's directory restored from a backup).
/// What is taken then goes through the same guard and transaction as any refresh.
struct Publication {
    var manifest: Manifest
    var bytes: [UInt8]
    /// The signature line (with its newline), kept as `<database>.sig`.
    var signature: [UInt8]
    var key: TrieSigning.PublicKey
    var trie: TrieFile

    enum Fetch {
        /// The live trie is the publication; `why` for the log.
        case unchanged(String)
        case fetched(Publication)
    }

    static let cacheName = "published-manifest"
}

extension Refresher {
    /// Steps 1-4 above. `manifestRecord` is the new manifest for the cache, kept
    /// only when the whole refresh succeeds (so a refused publication is asked for
    /// again, never answered by a 304).
    func fetchPublication(_ source: RefreshSource, url base: String, fetcher: HTTPFetcher, work: String,
                          force: Bool, liveBuildTime: Int64?) async throws(RefreshError) -> (Publication.Fetch, manifestRecord: Fetched?) {
        // Read each run: a rotated key file is picked up by the next one.
        let keys: [TrieSigning.PublicKey]
        do { keys = try TrieSigning.trustedKeys(source.publicKeys) } catch { throw RefreshError("public-key: \(error)") }
        var root = base
        while root.hasSuffix("/") { root.removeLast() }
        let live: String
        do { live = try config.trieFile(override: nil) } catch { throw RefreshError("\(error)") }

        // 1. The manifest.
        let name = Publication.cacheName
        let manifestURL = root + "/" + Publisher.manifestName
        let cached = cacheDirectory + "/" + name
        let validators = cachedValidators(name)
        let target = work + "/manifest"
        var record: Fetched?
        let manifestPath: String
        let manifestFetcher = fetcher.capped(at: Manifest.maxBytes, by: "a manifest's size")
        switch try await manifestFetcher.fetch(manifestURL, to: target, validators: validators, user: nil, password: nil, name: "publisher") {
        case .notModified:
            logger.info("publisher: \(fetcher.redacted(manifestURL)) not modified (conditional request)")
            manifestPath = cached
        case .downloaded(let v, let n):
            logger.info("publisher: downloaded the manifest, \(n) bytes, from \(fetcher.redacted(manifestURL))")
            manifestPath = target
            record = Fetched(download: Download(name: name, location: .url(manifestURL), inputName: name), inputs: [],
                             downloaded: (target, v))
        case .notFound:
            throw RefreshError("publisher: \(fetcher.redacted(manifestURL)): HTTP 404")
        }
        let manifestBytes: [UInt8]
        do { manifestBytes = try readWholeFile(manifestPath, limit: Manifest.maxBytes) } catch {
            throw RefreshError(error.errno == EFBIG ? "publisher: \(fetcher.redacted(manifestURL)): over \(Manifest.maxBytes) bytes: not a geogate manifest"
                                                    : "publisher: \(error)")
        }
        let manifest: Manifest
        do { manifest = try Manifest.parse(manifestBytes, name: fetcher.redacted(manifestURL)) } catch {
            throw RefreshError("publisher: \(error)")
        }

        // The manifest is trusted for nothing, its sizes neither: what it asks a
        // node to read stays within refresh.max-input-mb (a trie is a few MB).
        let limit = settings.maxInputMegabytes << 20
        for (what, size) in [(manifest.trieName, manifest.size), (manifest.gzipName ?? "", manifest.gzipSize ?? 0)] where size > limit {
            throw RefreshError("publisher: the manifest names \(what) of \(size) bytes, over refresh.max-input-mb (\(settings.maxInputMegabytes) MB)")
        }

        // 2. The live trie is the publication already.
        if access(live, R_OK) == 0, try digest(live, md5: false, name: live) == manifest.sha256 {
            try resign(live: live, manifest: manifest, keys: keys)
            return (.unchanged("the live trie is the publisher's \(manifest.trieName)"), record)
        }

        // Data rolled back from on this node is not fetched again each day: the
        // manifest's source list says it is the same (checked again on the trie's
        // own metadata when a trie is fetched).
        let announced = SourceFingerprint(line: Substring(manifest.sources.map(\.sha256).joined(separator: ",")))
        if !force, !manifest.sources.isEmpty, RolledBackList(path: rolledBackFile).contains(announced) {
            return (.unchanged("the publisher's \(manifest.trieName) has the sources of data rolled back from with `geogate rollback` (--force takes it)"), record)
        }

        // 3. The trie the manifest names (gzipped when the publisher offers it),
        // checked before it is opened.
        let bytes = try await fetchTrie(manifest, root: root, fetcher: fetcher, work: work)
        guard bytes.count == manifest.size else {
            throw RefreshError("publisher: \(manifest.trieName): \(bytes.count) bytes, the manifest says \(manifest.size) (a cut transfer, or the file changed under its name)")
        }
        let sha = hexString(Array(SHA256.hash(data: bytes)))
        guard sha == manifest.sha256 else {
            throw RefreshError("publisher: \(manifest.trieName): SHA-256 \(sha), the manifest names \(manifest.sha256)")
        }
        let signature = Array((manifest.signatureLine + "\n").utf8)
        let trieURL = root + "/" + manifest.trieName
        let key: TrieSigning.PublicKey
        do { key = try bytes.withUnsafeBytes { b throws(TrieSigning.Failure) in try TrieSigning.verify(b, signature: signature, keys: keys, name: trieURL) } } catch {
            throw RefreshError("publisher: \(error)")
        }
        logger.info("publisher: \(manifest.trieName) verified: \(bytes.count) bytes, SHA-256 \(sha.prefix(16))…, signed by key \(key.id) (\(key.origin))")
        let trie: TrieFile
        do { trie = try TrieFile(bytes: bytes, name: trieURL) } catch { throw RefreshError("publisher: \(error)") }

        // 4. No step back in time.
        if let liveBuildTime, trie.metadata.buildTime < liveBuildTime {
            let why = "the publisher's trie was built \(trie.metadata.buildTime), before the live one (\(liveBuildTime)): an old publication"
            guard force else { throw RefreshError("publisher: refused: \(why) (--force takes it)") }
            logger.warning("--force: taking it although \(why)")
        }
        return (.fetched(Publication(manifest: manifest, bytes: bytes, signature: signature, key: key, trie: trie)), record)
    }

    /// The trie's bytes as the manifest names them: the `.gz` inflated (never past
    /// the manifest's size), or the plain file (never more than its size read).
    func fetchTrie(_ manifest: Manifest, root: String, fetcher: HTTPFetcher, work: String) async throws(RefreshError) -> [UInt8] {
        let name = manifest.gzipName ?? manifest.trieName
        let path = work + "/" + name
        let expected = manifest.gzipSize ?? manifest.size
        // Never more than the manifest says is stored: a server that sends more is cut off.
        let trieFetcher = fetcher.capped(at: expected, by: "the manifest's size of \(name)")
        if case .notFound = try await trieFetcher.fetch(root + "/" + name, to: path, validators: nil, user: nil, password: nil, name: "publisher") {
            throw RefreshError("publisher: \(fetcher.redacted(root + "/" + name)): HTTP 404")
        }
        let raw: [UInt8]
        do { raw = try readWholeFile(path, limit: expected) } catch {
            throw RefreshError("publisher: \(name): \(error.errno == EFBIG ? "larger than the manifest's \(expected) bytes" : "\(error)")")
        }
        guard let gzipSize = manifest.gzipSize else { return raw }
        guard raw.count == gzipSize else {
            throw RefreshError("publisher: \(name): \(raw.count) bytes, the manifest says \(gzipSize) (a cut transfer, or the file changed under its name)")
        }
        guard raw.count >= 2 && raw[0] == 0x1f && raw[1] == 0x8b else { throw RefreshError("publisher: \(name): not gzip data") }
        var options = ImportOptions()
        options.maximumInputBytes = manifest.size
        do { return try SourceFile.decoding(raw, path: name, options: options).content } catch {
            throw RefreshError("publisher: \(error)")
        }
    }

    /// The publisher re-signed the bytes the node already has (a new key): the
    /// new signature replaces `<database>.sig` once it verifies with a trusted key.
    func resign(live: String, manifest: Manifest, keys: [TrieSigning.PublicKey]) throws(RefreshError) {
        let signature = Array((manifest.signatureLine + "\n").utf8)
        if let kept = try? readWholeFile(live + ".sig", limit: 4096), kept == signature { return }
        let bytes: [UInt8]
        do { bytes = try readWholeFile(live, limit: 1 << 30) } catch { throw RefreshError("\(error)") }
        let key: TrieSigning.PublicKey
        do { key = try bytes.withUnsafeBytes { b throws(TrieSigning.Failure) in try TrieSigning.verify(b, signature: signature, keys: keys, name: "the publisher's manifest") } } catch {
            throw RefreshError("publisher: \(error)")
        }
        do { try AtomicFile.write(signature, to: live + ".sig") } catch { throw RefreshError("\(error)") }
        logger.notice("\(live): the same data, now signed by key \(key.id) (\(key.origin))")
    }
}
