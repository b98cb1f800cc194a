import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A real HTTP/1.1 server on 127.0.0.1 (SwiftNIO), scripted per path: each request
/// takes the next planned answer (the last one repeats). An answer with an ETag
/// answers a matching If-None-Match with 304 and no body. Every request is recorded.
final class TestServer: Sendable {
    struct Answer: Sendable {
        var status: HTTPResponseStatus = .ok
        var body: [UInt8] = []
        var etag: String?
        /// Seconds to wait before answering (a slow server).
        var delay: Double = 0
        /// Seconds between body bytes: a server that drips its body one byte at a time.
        var drip: Double = 0
    }

    struct Seen: Sendable {
        var path: String
        var ifNoneMatch: String?
        var authorization: String?
        var answered: UInt
    }

    let channel: Channel
    let plans = Mutex<[String: [Answer]]>([:])
    let seen = Mutex<[Seen]>([])
    var port: Int { channel.localAddress!.port! }

    init() throws {
        let box = Mutex<TestServer?>(nil)
        channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(server: box.withLock { $0! }))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        box.withLock { $0 = self }
    }

    func plan(_ path: String, _ answers: [Answer]) { plans.withLock { $0[path] = answers } }
    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }
    func requests(_ path: String) -> [Seen] { seen.withLock { $0.filter { $0.path == path } } }
    func stop() { try? channel.close().wait() }

    func next(_ path: String, ifNoneMatch: String?, authorization: String?) -> Answer {
        let answer: Answer = plans.withLock { all in
            guard var list = all[path], !list.isEmpty else { return Answer(status: .notFound) }
            let first = list.count > 1 ? list.removeFirst() : list[0]
            all[path] = list
            return first
        }
        var sent = answer
        if let etag = answer.etag, ifNoneMatch == etag { sent = Answer(status: .notModified, etag: etag, delay: answer.delay) }
        seen.withLock { $0.append(Seen(path: path, ifNoneMatch: ifNoneMatch, authorization: authorization, answered: sent.status.code)) }
        return sent
    }

    final class Handler: ChannelInboundHandler, Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let server: TestServer
        init(server: TestServer) { self.server = server }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .head(let head) = unwrapInboundIn(data) else { return }
            let answer = server.next(head.uri, ifNoneMatch: head.headers.first(name: "If-None-Match"),
                                     authorization: head.headers.first(name: "Authorization"))
            let loop = context.eventLoop
            let bound = NIOLoopBound(context, eventLoop: loop)
            let handler = NIOLoopBound(self, eventLoop: loop)
            loop.scheduleTask(in: .milliseconds(Int64(answer.delay * 1000))) {
                handler.value.send(answer, context: bound.value)
            }
        }

        func send(_ answer: Answer, context: ChannelHandlerContext) {
            var headers = HTTPHeaders()
            headers.add(name: "Content-Length", value: "\(answer.status == .notModified ? 0 : answer.body.count)")
            if let etag = answer.etag { headers.add(name: "ETag", value: etag) }
            if answer.drip > 0 && !answer.body.isEmpty {
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: answer.status, headers: headers))), promise: nil)
                drip(answer, from: 0, context: context)
                return
            }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: answer.status, headers: headers))), promise: nil)
            if answer.status != .notModified && !answer.body.isEmpty {
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: answer.body)))), promise: nil)
            }
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }

        /// One byte now, the next after `answer.drip` seconds, until the body is sent
        /// or the client is gone.
        func drip(_ answer: Answer, from index: Int, context: ChannelHandlerContext) {
            guard context.channel.isActive else { return }
            guard index < answer.body.count else {
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                return
            }
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: [answer.body[index]])))), promise: nil)
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: .milliseconds(Int64(answer.drip * 1000))) {
                handler.value.drip(answer, from: index + 1, context: bound.value)
            }
        }
    }
}
