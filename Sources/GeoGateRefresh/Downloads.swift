import GeoGateCore
import GeoGatePolicy
#if canImport(Glibc)
import Glibc
#endif

/// One thing to fetch: a URL (or a local file), how to check it, and which of its
/// archive members are inputs. A provider expands into one or more of these.
struct Download: Sendable, Equatable {
    /// Names the download in logs and in the state directory (letters, digits, - . _).
    var name: String
    var location: Location
    var check: Check = .none
    /// For an archive (.tar.gz, .zip): the members to extract, by name suffix.
    var members: [String] = []
    /// Basic authentication (MaxMind: account id and license key).
    var user: String?
    var password: String?
    /// The name the input gets for the compiler (a zone file's name carries its country).
    var inputName: String
    /// For a DB-IP monthly file: an earlier month to fall back to when this one is not out yet.
    var fallback: String?

    var isLocal: Bool { if case .file = location { true } else { false } }

    enum Location: Sendable, Equatable {
        case url(String)
        case file(String)
    }

    enum Check: Sendable, Equatable {
        case none
        case sha256(String)
        /// A sidecar file whose first hex word is the SHA-256 or MD5 of the download.
        case sha256Sidecar(String)
        case md5Sidecar(String)
    }
}

enum Providers {
    static let rirFiles: [(String, String)] = [
        ("arin", "https://ftp.arin.net/pub/stats/arin/delegated-arin-extended-latest"),
        ("ripencc", "https://ftp.ripe.net/pub/stats/ripencc/delegated-ripencc-extended-latest"),
        ("apnic", "https://ftp.apnic.net/stats/apnic/delegated-apnic-extended-latest"),
        ("lacnic", "https://ftp.lacnic.net/pub/stats/lacnic/delegated-lacnic-extended-latest"),
        ("afrinic", "https://ftp.afrinic.net/pub/stats/afrinic/delegated-afrinic-extended-latest"),
    ]

    /// The downloads of `source`, in merge order. `now` picks DB-IP's monthly file.
    static func downloads(_ source: RefreshSource, index: Int, now: Int64) -> [Download] {
        func base(_ standard: String) -> String {
            var b = source.baseURL ?? standard
            while b.hasSuffix("/") { b.removeLast() }
            return b
        }
        func pinned(_ d: Download) -> Download {
            var d = d
            if let hex = source.sha256 { d.check = .sha256(hex) } else if let url = source.sha256URL { d.check = .sha256Sidecar(url) }
            return d
        }
        switch source.kind {
        case .trie:
            return []  // a fleet node's publication: Publication.swift
        case .file(let path):
            let name = "file\(index)-" + safeName(lastComponent(path))
            return [pinned(Download(name: name, location: .file(path), inputName: lastComponent(path)))]
        case .url(let url):
            let file = lastComponent(url.split(separator: "?").first.map(String.init) ?? url)
            let d = Download(name: "url\(index)-" + safeName(file), location: .url(url),
                             members: archiveMembers(file), inputName: stripArchive(file))
            return [pinned(d)]
        case .provider(.dbipLite):
            let (year, month) = yearMonth(now)
            let (py, pm) = month == 1 ? (year - 1, 12) : (year, month - 1)
            let root = base("https://download.db-ip.com/free")
            let suffix = (source.edition ?? "csv") == "mmdb" ? "mmdb.gz" : "csv.gz"
            func url(_ y: Int, _ m: Int) -> String { "\(root)/dbip-country-lite-\(y)-\(m < 10 ? "0" : "")\(m).\(suffix)" }
            return [pinned(Download(name: "dbip-lite", location: .url(url(year, month)), inputName: "dbip-country-lite.\(suffix)",
                                    fallback: url(py, pm)))]
        case .provider(.maxmind):
            let edition = source.edition ?? "GeoLite2-Country"
            let csv = edition.hasSuffix("-CSV")
            let suffix = csv ? "zip" : "tar.gz"
            let url = "\(base("https://download.maxmind.com/geoip/databases"))/\(edition)/download?suffix=\(suffix)"
            var d = Download(name: "maxmind-" + safeName(edition), location: .url(url),
                             check: .sha256Sidecar(url + ".sha256"),
                             members: csv ? ["-Blocks-IPv4.csv", "-Blocks-IPv6.csv", "-Locations-en.csv"] : [".mmdb"],
                             user: source.accountID, password: source.licenseKey, inputName: edition)
            if let hex = source.sha256 { d.check = .sha256(hex) }
            return [d]
        case .provider(.rir):
            return rirFiles.map { registry, standard in
                let url = source.baseURL.map { "\(base($0))/delegated-\(registry)-extended-latest" } ?? standard
                return Download(name: "rir-\(registry)", location: .url(url), check: .md5Sidecar(url + ".md5"),
                                inputName: "delegated-\(registry)-extended-latest")
            }
        case .provider(.ipdeny):
            let root = base("https://www.ipdeny.com")
            return source.countries.flatMap { cc -> [Download] in
                let c = cc.description.lowercased()
                return [Download(name: "ipdeny-\(c)-v4", location: .url("\(root)/ipblocks/data/aggregated/\(c)-aggregated.zone"),
                                 inputName: "\(c).zone"),
                        Download(name: "ipdeny-\(c)-v6", location: .url("\(root)/ipv6/ipaddresses/aggregated/\(c)-aggregated.zone"),
                                 inputName: "ipv6-\(c).zone")]
            }
        case .provider(.tor):
            let root = base("https://gitlab.torproject.org/tpo/core/tor/-/raw/main/src/config")
            return [Download(name: "tor-geoip", location: .url("\(root)/geoip"), inputName: "geoip"),
                    Download(name: "tor-geoip6", location: .url("\(root)/geoip6"), inputName: "geoip6")]
        }
    }

    static func lastComponent(_ path: String) -> String {
        String(path.split(separator: "/").last ?? Substring(path))
    }

    static func safeName(_ text: String) -> String {
        String(text.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == "_" ? $0 : "_" }.prefix(80))
    }

    /// A .tar.gz/.tgz/.zip download is an archive; its members ending like an input are extracted.
    static func archiveMembers(_ file: String) -> [String] {
        let lower = file.lowercased()
        guard lower.hasSuffix(".tar.gz") || lower.hasSuffix(".tgz") || lower.hasSuffix(".zip") || lower.hasSuffix(".tar.xz") else { return [] }
        return [".mmdb", ".csv", ".zone", ".txt"]
    }

    static func stripArchive(_ file: String) -> String {
        for suffix in [".tar.gz", ".tgz", ".zip", ".tar.xz"] where file.lowercased().hasSuffix(suffix) {
            return String(file.dropLast(suffix.count))
        }
        return file
    }

    static func yearMonth(_ seconds: Int64) -> (Int, Int) {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        return (Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1)
    }
}
