import AsyncHTTPClient
import GeoGateCore
import GeoGatePolicy

/// An HTTP proxy: plain HTTP requests are forwarded to it, HTTPS ones tunnelled
/// through it with CONNECT (AsyncHTTPClient does both).
struct ProxyServer: Hashable, Sendable, CustomStringConvertible {
    var host: String
    var port: Int
    var user: String?
    var password: String?

    /// "http://[user:password@]host[:port][/]", or "host:port" (curl's forms).
    /// Only HTTP proxies: an https:// or socks proxy is refused, not ignored.
    init(parsing text: String, from origin: String) throws(RefreshError) {
        var rest = Substring(text.trimmedOfBlanks)
        if let scheme = rest.range(of: "://") {
            let name = rest[..<scheme.lowerBound].lowercased()
            guard name == "http" else {
                throw RefreshError("\(origin): \(SafeText.field(text)): only http:// proxies are supported (HTTPS goes through them with CONNECT)")
            }
            rest = rest[scheme.upperBound...]
        }
        if let slash = rest.firstIndex(of: "/") {
            guard rest[slash...].allSatisfy({ $0 == "/" }) else {
                throw RefreshError("\(origin): \(SafeText.field(text)): a proxy is host:port, without a path")
            }
            rest = rest[..<slash]
        }
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            let pair = credentials.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            user = percentDecoded(pair[0])
            password = pair.count > 1 ? percentDecoded(pair[1]) : ""
        }
        let (host, port) = splitHostPort(rest)
        guard !host.isEmpty else { throw RefreshError("\(origin): \(SafeText.field(text)): no proxy host") }
        self.host = host
        if let port {
            guard let p = Int(port), (1...65535).contains(p) else {
                throw RefreshError("\(origin): \(SafeText.field(text)): \"\(SafeText.field(port))\" is not a port")
            }
            self.port = p
        } else {
            self.port = 1080
        }
    }

    /// host:port only: never the credentials, in a log line.
    var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    var configuration: HTTPClient.Configuration.Proxy {
        if let user {
            .server(host: host, port: port, authorization: .basic(username: user, password: password ?? ""))
        } else {
            .server(host: host, port: port)
        }
    }
}

/// Which downloads go through which proxy: refresh.proxy for every URL, else the
/// environment as curl reads it ($http_proxy for http:// URLs; $https_proxy or
/// $HTTPS_PROXY for https://; upper-case HTTP_PROXY is ignored, as by curl,
/// because a CGI environment lets a client set it); none for the hosts of
/// refresh.no-proxy, else $no_proxy / $NO_PROXY.
struct ProxyRoutes: Sendable {
    var http: ProxyServer?
    var https: ProxyServer?
    /// no_proxy's entries: "*", a host or domain suffix, an IP address or a CIDR.
    var exceptions: [String]

    init(config: RefreshConfig, environment: [String: String]) throws(RefreshError) {
        func env(_ names: String...) -> String? { names.lazy.compactMap { environment[$0] }.first { !$0.isEmpty } }
        if let proxy = config.proxy {
            let server = try ProxyServer(parsing: proxy, from: "refresh.proxy")
            http = server
            https = server
        } else {
            http = try env("http_proxy").map { (p) throws(RefreshError) in try ProxyServer(parsing: p, from: "$http_proxy") }
            https = try env("https_proxy", "HTTPS_PROXY").map { (p) throws(RefreshError) in try ProxyServer(parsing: p, from: "$https_proxy") }
        }
        exceptions = (config.noProxy ?? env("no_proxy", "NO_PROXY") ?? "")
            .split(separator: ",").map { $0.trimmedOfBlanks.lowercased() }.filter { !$0.isEmpty }
    }

    /// The proxy for `url`, or nil to connect directly.
    func proxy(for url: String) -> ProxyServer? {
        let lower = url.lowercased()
        let server = lower.hasPrefix("https://") ? https : lower.hasPrefix("http://") ? http : nil
        guard let server, let host = Self.host(of: lower) else { return nil }
        return bypasses(host) ? nil : server
    }

    /// True when no_proxy names `host` (already lower-case).
    func bypasses(_ host: String) -> Bool {
        let address = IPAddress(host)
        for entry in exceptions {
            if entry == "*" { return true }
            if let address {
                if let cidr = CIDR(entry), cidr.family == address.family, cidr.first <= address.value, address.value <= cidr.last { return true }
                if let other = IPAddress(entry), other.family == address.family, other.value == address.value { return true }
                continue
            }
            let domain = entry.hasPrefix(".") ? String(entry.dropFirst()) : entry
            if host == domain || host.hasSuffix("." + domain) { return true }
        }
        return false
    }

    /// The host of an absolute URL (brackets of an IPv6 literal removed).
    static func host(of url: String) -> String? {
        guard let scheme = url.range(of: "://") else { return nil }
        var rest = url[scheme.upperBound...]
        if let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) { rest = rest[..<end] }
        if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
        let host = splitHostPort(rest).host
        return host.isEmpty ? nil : host
    }
}

/// "host:port", "[v6]:port", "host" → (host, port?).
private func splitHostPort(_ text: Substring) -> (host: String, port: Substring?) {
    if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
        let host = String(text[text.index(after: text.startIndex)..<close])
        let after = text[text.index(after: close)...]
        return (host, after.hasPrefix(":") ? after.dropFirst() : nil)
    }
    if let colon = text.lastIndex(of: ":"), text.firstIndex(of: ":") == colon {
        return (String(text[..<colon]), text[text.index(after: colon)...])
    }
    return (String(text), nil)
}

/// %XX escapes of a proxy URL's user and password.
private func percentDecoded(_ text: Substring) -> String {
    var bytes: [UInt8] = []
    var i = text.utf8.startIndex
    let utf8 = text.utf8
    while i < utf8.endIndex {
        let b = utf8[i]
        if b == UInt8(ascii: "%"), let h = utf8.index(i, offsetBy: 2, limitedBy: utf8.endIndex), h < utf8.endIndex,
           let v = UInt8(String(decoding: utf8[utf8.index(after: i)...h], as: UTF8.self), radix: 16) {
            bytes.append(v)
            i = utf8.index(after: h)
        } else {
            bytes.append(b)
            i = utf8.index(after: i)
        }
    }
    return String(decoding: bytes, as: UTF8.self)
}

extension StringProtocol {
    /// Without leading and trailing blanks.
    var trimmedOfBlanks: String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" { s = s.dropLast() }
        return String(s)
    }
}
