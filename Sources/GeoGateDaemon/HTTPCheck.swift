import GeoGateCore
import Logging
import NIOCore
import NIOHTTP1

/// The nginx `auth_request` endpoint: a minimal HTTP/1.1 responder on a second
/// Unix socket. `GET /check?profile=web` with the client address in `X-Real-IP`
/// (set by nginx) answers 204 (allow) or 403 (deny), with the decision in an
/// `X-Geogate` header; anything else is 400, which nginx turns into a 500 for
/// the user: the guarded location fails closed. `GET /metrics` answers the
/// Prometheus text format (Metrics.swift).
final class HTTPCheckHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let service: LookupService
    var head: HTTPRequestHead?

    init(service: LookupService) { self.service = service }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body: break
        case .end:
            guard let h = head else { return }
            head = nil
            if h.method == .GET && (h.uri == "/metrics" || h.uri.hasPrefix("/metrics?")) {
                sendMetrics(h, context: context)
                return
            }
            let (status, line) = decide(h)
            var headers = HTTPHeaders()
            headers.add(name: "X-Geogate", value: line)
            headers.add(name: "Content-Length", value: "0")
            if !h.isKeepAlive { headers.add(name: "Connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: status, headers: headers))), promise: nil)
            let channel = context.channel
            let keepAlive = h.isKeepAlive
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                if !keepAlive { channel.close(promise: nil) }
            }
        }
    }

    func sendMetrics(_ h: HTTPRequestHead, context: ChannelHandlerContext) {
        var body = context.channel.allocator.buffer(capacity: 4096)
        body.writeString(service.metricsText())
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/plain; version=0.0.4; charset=utf-8")
        headers.add(name: "Content-Length", value: "\(body.readableBytes)")
        if !h.isKeepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: .ok, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let channel = context.channel
        let keepAlive = h.isKeepAlive
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { channel.close(promise: nil) }
        }
    }

    func decide(_ h: HTTPRequestHead) -> (HTTPResponseStatus, String) {
        let parts = h.uri.split(separator: "?", maxSplits: 1)
        guard h.method == .GET, parts.first == "/check" else {
            return (.badRequest, ProtocolError(.syntax, "GET /check?profile=NAME with X-Real-IP").description)
        }
        var profile: Substring?
        for pair in parts.dropFirst().first?.split(separator: "&") ?? [] where pair.hasPrefix("profile=") {
            profile = pair.dropFirst("profile=".count)
        }
        guard let profile, !profile.isEmpty else { return (.badRequest, ProtocolError(.syntax, "missing ?profile=").description) }
        guard let text = h.headers.first(name: "X-Real-IP"), let address = IPAddress(text) else {
            return (.badRequest, ProtocolError(.badAddress, "X-Real-IP is missing or not an IP address").description)
        }
        let line = service.answer(.check(profile: String(profile), address), peerUID: nil)
        if line.hasPrefix("ALLOW ") { return (.noContent, line) }
        if line.hasPrefix("DENY ") { return (.forbidden, line) }
        return (.badRequest, line)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
