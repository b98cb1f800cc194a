import AsyncHTTPClient
import Foundation
import GeoGateCore
import Logging
import NIOCore
import NIOHTTP1

/// Why a refresh failed: what, and why; the live data was not changed.
public struct RefreshError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// What a server said about a download last time, sent back as a conditional
/// request so an unchanged file is not downloaded again (MaxMind counts downloads).
struct Validators: Equatable, Sendable {
    var etag: String?
    var lastModified: String?

    var isEmpty: Bool { etag == nil && lastModified == nil }

    /// `etag: ...` and `last-modified: ...` lines.
    init(text: String) {
        for line in text.split(separator: "\n") {
            if line.hasPrefix("etag: ") { etag = String(line.dropFirst(6)) }
            if line.hasPrefix("last-modified: ") { lastModified = String(line.dropFirst(15)) }
        }
    }

    init(etag: String?, lastModified: String?) {
        self.etag = etag
        self.lastModified = lastModified
    }

    var text: String {
        (etag.map { "etag: \($0)\n" } ?? "") + (lastModified.map { "last-modified: \($0)\n" } ?? "")
    }
}

/// HTTP(S) through AsyncHTTPClient: conditional requests, retries with exponential
/// backoff on 5xx, 429 and network errors (none on other 4xx), a size cap checked
/// while the body streams to disk, and three clocks: the client's idle timeout (no
/// byte for refresh.idle-timeout), a deadline for each whole transfer, head and
/// body (refresh.timeout), and the whole run's deadline (refresh.deadline), which
/// no retry outlives. A server that drips one byte a second trips the transfer's
/// deadline, not only the idle timeout that each byte restarts.
struct HTTPFetcher {
    /// Direct (nil) and through each proxy in use.
    let clients: [ProxyServer?: HTTPClient]
    let routes: ProxyRoutes
    /// One transfer, head and body.
    let timeout: TimeAmount
    /// The whole refresh's deadline (monotonicSeconds).
    let runDeadline: Double
    let retries: Int
    let retryDelay: TimeAmount
    private(set) var maxBytes: Int
    /// What sets `maxBytes`, for the refusal.
    private(set) var limitName = "refresh.max-size-mb"
    let logger: Logger

    init(clients: [ProxyServer?: HTTPClient], routes: ProxyRoutes, timeout: TimeAmount, runDeadline: Double, retries: Int,
         retryDelay: TimeAmount, maxBytes: Int, logger: Logger) {
        self.clients = clients; self.routes = routes; self.timeout = timeout; self.runDeadline = runDeadline
        self.retries = retries; self.retryDelay = retryDelay; self.maxBytes = maxBytes; self.logger = logger
    }

    /// The same fetcher with a smaller cap: a publisher's manifest, a trie of the size it names.
    func capped(at bytes: Int, by name: String) -> HTTPFetcher {
        var f = self
        if bytes < maxBytes { f.maxBytes = bytes; f.limitName = name }
        return f
    }

    var limitText: String {
        maxBytes >= 1 << 20 && maxBytes % (1 << 20) == 0 ? "the \(maxBytes >> 20) MB limit (\(limitName))" : "the \(maxBytes)-byte limit (\(limitName))"
    }

    enum Outcome: Equatable {
        case notModified
        case downloaded(Validators, bytes: Int)
        /// 404: for a source with a fallback (DB-IP's next month is not out yet).
        case notFound
    }

    /// Fetches `url` into `path` (created or truncated); nothing is written on 304.
    func fetch(_ url: String, to path: String, validators: Validators?, user: String?, password: String?,
               name: String, notFoundIsAnAnswer: Bool = false) async throws(RefreshError) -> Outcome {
        var attempt = 0
        while true {
            do {
                return try await once(url, to: path, validators: validators, user: user, password: password, name: name,
                                      notFoundIsAnAnswer: notFoundIsAnAnswer)
            } catch let failure as Failure {
                guard failure.retryable, attempt < retries else {
                    throw RefreshError("\(name): \(redacted(url)): \(failure.message)\(attempt > 0 ? " (after \(attempt + 1) attempts)" : "")")
                }
                let wait = retryDelay * Int64(1 << min(attempt, 16))
                guard monotonicSeconds() + Double(wait.nanoseconds) / 1e9 < runDeadline else {
                    throw RefreshError("\(name): \(redacted(url)): \(failure.message); no time left for a retry before the refresh's deadline (refresh.deadline)")
                }
                logger.warning("\(name): \(failure.message); retrying in \(Double(wait.nanoseconds) / 1e9) s (attempt \(attempt + 2) of \(retries + 1))")
                try? await Task.sleep(nanoseconds: UInt64(wait.nanoseconds))
                attempt += 1
            } catch {
                throw RefreshError("\(name): \(redacted(url)): \(error)")
            }
        }
    }

    struct Failure: Error {
        let message: String
        let retryable: Bool
    }

    /// One transfer against the clock: whichever ends first, the transfer or the
    /// deadline (this transfer's, or the run's if sooner); a late transfer is cancelled.
    private func once(_ url: String, to path: String, validators: Validators?, user: String?, password: String?,
                      name: String, notFoundIsAnAnswer: Bool) async throws -> Outcome {
        let left = runDeadline - monotonicSeconds()
        let transferSeconds = Double(timeout.nanoseconds) / 1e9
        guard left > 0 else { throw Failure(message: "the refresh's deadline has passed (refresh.deadline)", retryable: false) }
        let limit = min(transferSeconds, left)
        let clock = limit < transferSeconds ? "the refresh's deadline (refresh.deadline)" : "\(Int(transferSeconds)) s (refresh.timeout)"
        return try await withThrowingTaskGroup(of: Outcome?.self) { group in
            group.addTask {
                try await self.transfer(url, to: path, validators: validators, user: user, password: password,
                                        notFoundIsAnAnswer: notFoundIsAnAnswer)
            }
            group.addTask {
                try await Task.sleep(nanoseconds: UInt64(limit * 1e9))
                return nil
            }
            let first = try await group.next()!
            group.cancelAll()
            guard let outcome = first else {
                throw Failure(message: "the transfer did not complete within \(clock)", retryable: false)
            }
            return outcome
        }
    }

    private func transfer(_ url: String, to path: String, validators: Validators?, user: String?, password: String?,
                          notFoundIsAnAnswer: Bool) async throws -> Outcome {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "User-Agent", value: "geogate-refresh")
        if let etag = validators?.etag { request.headers.add(name: "If-None-Match", value: etag) }
        if let date = validators?.lastModified { request.headers.add(name: "If-Modified-Since", value: date) }
        if let user, let password {
            request.headers.add(name: "Authorization", value: "Basic " + Data("\(user):\(password)".utf8).base64EncodedString())
        }
        let response: HTTPClientResponse
        let proxy = routes.proxy(for: url)
        if let proxy { logger.info("\(redacted(url)): through the proxy \(proxy)") }
        do { response = try await clients[proxy]!.execute(request, timeout: timeout) } catch {
            throw Failure(message: "\(describe(error))\(proxy.map { " (through the proxy \($0))" } ?? "")", retryable: true)
        }
        let status = response.status.code
        if status == 304 { return .notModified }
        if status == 404 && notFoundIsAnAnswer { return .notFound }
        guard status == 200 else {
            throw Failure(message: "HTTP \(status) \(response.status.reasonPhrase)", retryable: status >= 500 || status == 429)
        }
        if let length = response.headers.first(name: "Content-Length").flatMap(Int.init), length > maxBytes {
            throw Failure(message: "\(length) bytes is over \(limitText)", retryable: false)
        }
        guard let file = fopen(path, "wb") else { throw Failure(message: "cannot write \(path): \(String(cString: strerror(errno)))", retryable: false) }
        defer { fclose(file) }
        var total = 0
        do {
            for try await chunk in response.body {
                total += chunk.readableBytes
                guard total <= maxBytes else {
                    throw Failure(message: "over \(limitText)", retryable: false)
                }
                let written = chunk.withUnsafeReadableBytes { fwrite($0.baseAddress, 1, $0.count, file) }
                guard written == chunk.readableBytes else { throw Failure(message: "cannot write \(path)", retryable: false) }
            }
        } catch let failure as Failure { throw failure } catch {
            throw Failure(message: "body cut off after \(total) bytes: \(describe(error))", retryable: true)
        }
        guard fflush(file) == 0, fsync(fileno(file)) == 0 else { throw Failure(message: "cannot write \(path)", retryable: false) }
        return .downloaded(Validators(etag: response.headers.first(name: "ETag"),
                                      lastModified: response.headers.first(name: "Last-Modified")), bytes: total)
    }

    /// AsyncHTTPClient's errors say little in their default description.
    private func describe(_ error: Error) -> String {
        if let e = error as? HTTPClientError {
            switch e {
            case .deadlineExceeded: return "no answer within \(timeout.nanoseconds / 1_000_000_000) s (refresh.timeout)"
            case .readTimeout: return "no data for too long (refresh.idle-timeout)"
            case .connectTimeout: return "connect timed out"
            case .remoteConnectionClosed: return "the server closed the connection"
            default: return "\(e)"
            }
        }
        return "\(error)"
    }

    /// A URL for a log line: no user info, no query (MaxMind keys can sit there).
    func redacted(_ url: String) -> String {
        var u = url
        if let q = u.firstIndex(of: "?") { u = String(u[..<q]) + "?…" }
        return u
    }
}
