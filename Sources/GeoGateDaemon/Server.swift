import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import UnixSignals
#if canImport(Glibc)
import Glibc
#endif

/// The socket side of the daemon: SwiftNIO on a Unix socket, one text line a
/// request, answers in order (pipelining), and the guards a shared server needs:
/// a line-length cap, an idle timeout, a connection cap, and backpressure for a
/// client that never reads. A malformed request gets `ERR ...`; only an over-long
/// line ends its connection.
public struct DaemonSettings: Sendable {
    public var socketPath: String
    /// The nginx auth_request endpoint's socket (HTTP/1.1), if wanted.
    public var httpSocketPath: String?
    public var socketMode: mode_t = 0o660
    public var socketGroup: gid_t?
    public var idleTimeoutSeconds: Int64 = 60
    public var maxConnections = 1024

    public init(socketPath: String) { self.socketPath = socketPath }
}

public final class DaemonServer: Service, Sendable {
    let service: LookupService
    let settings: DaemonSettings
    let logger: Logger
    let connections = Atomic<Int>(0)

    public init(service: LookupService, settings: DaemonSettings, logger: Logger) {
        self.service = service
        self.settings = settings
        self.logger = logger
    }

    /// Binds the socket (replacing a stale socket file) and sets its mode and group,
    /// or, given `passedSocket`, serves the socket systemd passed (socket
    /// activation: systemd owns its path, mode and group then).
    public func bind(group: EventLoopGroup, passedSocket: Int32? = nil) async throws -> Channel {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 32 * 1024, high: 256 * 1024))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try self.setUp(channel) }
            }
        if let fd = passedSocket {
            logger.info("using the socket passed by systemd (fd \(fd))")
            return try await bootstrap.withBoundSocket(fd).get()
        }
        return try await bindUnixSocket(bootstrap, path: settings.socketPath)
    }

    /// The HTTP endpoint for nginx auth_request, on its own socket (same mode/group).
    func bindHTTP(group: EventLoopGroup, path: String) async throws -> Channel {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(allTimeout: .seconds(self.settings.idleTimeoutSeconds)))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(HTTPCheckHandler(service: self.service))
                }
            }
        return try await bindUnixSocket(bootstrap, path: path)
    }

    /// Binds `path` and gives it the configured mode and group; closes it on failure.
    func bindUnixSocket(_ bootstrap: ServerBootstrap, path: String) async throws -> Channel {
        let channel = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
        guard chmod(path, settings.socketMode) == 0,
              settings.socketGroup.map({ chown(path, uid_t.max, $0) == 0 }) ?? true else {
            let message = String(cString: strerror(errno))
            try? await channel.close()
            throw ServiceError("\(path): cannot set mode/group: \(message)")
        }
        return channel
    }

    /// Called on the channel's event loop for each new connection.
    func setUp(_ channel: Channel) throws {
        let open = connections.add(1, ordering: .relaxed).newValue
        channel.closeFuture.whenComplete { _ in self.connections.subtract(1, ordering: .relaxed) }
        if open > settings.maxConnections {
            logger.warning("connection refused: \(open - 1) connections open (max-connections \(settings.maxConnections))")
            var buffer = channel.allocator.buffer(capacity: 64)
            buffer.writeString(ProtocolError(.busy, "too many connections").description + "\n")
            channel.writeAndFlush(buffer).whenComplete { _ in channel.close(promise: nil) }
            return
        }
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(IdleStateHandler(allTimeout: .seconds(settings.idleTimeoutSeconds)))
        try sync.addHandler(ByteToMessageHandler(LineDecoder(maxLength: Request.maxLineLength)))
        try sync.addHandler(RequestHandler(service: service, logger: logger))
    }

    /// Serves until graceful shutdown (SIGTERM/SIGINT through ServiceGroup);
    /// SIGHUP reloads the trie and config.
    public func run() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        // Trap SIGHUP before saying READY: a reload sent right after READY=1 must
        // not meet the default action (terminate).
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let passedSocket = Systemd.listenDescriptor()
        let channel = try await bind(group: group, passedSocket: passedSocket)
        logger.info("listening on \(settings.socketPath)")
        var http: Channel?
        if let path = settings.httpSocketPath {
            do { http = try await bindHTTP(group: group, path: path) } catch {
                try? await channel.close()
                throw error
            }
            logger.info("auth_request endpoint on \(path)")
        }
        Systemd.notify("READY=1")
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask {
                    for await _ in hangups {
                        self.reloadAndLog(reason: "SIGHUP")
                    }
                }
                try await channel.closeFuture.get()
                tasks.cancelAll()
            }
        } onGracefulShutdown: {
            self.logger.info("shutting down")
            Systemd.notify("STOPPING=1")
            channel.close(promise: nil)
        }
        if let http {
            try? await http.close()
            unlink(settings.httpSocketPath!)
        }
        if passedSocket == nil { unlink(settings.socketPath) }
    }

    public func reloadAndLog(reason: String) {
        Systemd.notifyReloading()
        defer { Systemd.notify("READY=1") }
        switch service.reload() {
        case .success(let s): logger.info("reloaded (\(reason)): trie built \(s.trie.metadata.buildTime), \(s.config.profiles.count) profiles")
        case .failure(let e): logger.error("reload (\(reason)) failed, still serving the previous data: \(e)")
        }
    }
}

/// Splits the byte stream into lines (LF, optional CR); a line longer than
/// `maxLength` is an error that ends the connection.
struct LineDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    let maxLength: Int

    struct LineTooLong: Error {}

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let view = buffer.readableBytesView
        if let newline = view.firstIndex(of: 0x0A) {
            let length = newline - view.startIndex
            guard length <= maxLength + 1 else { throw LineTooLong() }  // +1: a CR
            let line = buffer.readSlice(length: length)!
            buffer.moveReaderIndex(forwardBy: 1)
            context.fireChannelRead(wrapInboundOut(line))
            return .continue
        }
        if buffer.readableBytes > maxLength + 1 { throw LineTooLong() }
        return .needMoreData
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        // A last request without its newline still gets its answer.
        if seenEOF, buffer.readableBytes > 0, let line = buffer.readSlice(length: buffer.readableBytes) {
            context.fireChannelRead(wrapInboundOut(line))
        }
        return .needMoreData
    }
}

/// `struct ucred` of SO_PEERCRED (Glibc hides it behind _GNU_SOURCE).
struct PeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

/// Answers each line in order. Writes are flushed once per read burst; when the
/// client stops reading and the outbound buffer passes its high-water mark, reads
/// pause until it drains, so a client that never reads costs bounded memory.
final class RequestHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let service: LookupService
    let logger: Logger
    var peerUID: UInt32?
    var inputClosed = false

    init(service: LookupService, logger: Logger) {
        self.service = service
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // SO_PEERCRED: who is calling (RELOAD is for root or our own uid).
        if let provider = context.channel as? SocketOptionProvider {
            let loop = context.eventLoop
            let box = NIOLoopBound(self, eventLoop: loop)
            let credentials: EventLoopFuture<PeerCredentials> = provider.unsafeGetSocketOption(level: .socket, name: .init(rawValue: SO_PEERCRED))
            credentials.whenSuccess { box.value.peerUID = $0.uid }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let line = unwrapInboundIn(data)
        let answer = service.answer(line.readableBytesView, peerUID: peerUID)
        var out = context.channel.allocator.buffer(capacity: answer.utf8.count + 1)
        out.writeString(answer)
        out.writeInteger(UInt8(0x0A))
        context.write(wrapOutboundOut(out), promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
        if !context.channel.isWritable { _ = context.channel.setOption(.autoRead, value: false) }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && !inputClosed { _ = context.channel.setOption(.autoRead, value: true) }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            logger.info("closing an idle connection")
            context.close(promise: nil)
        } else if case .some(.inputClosed) = event as? ChannelEvent {
            // Half-closed: answer what was asked, then close.
            inputClosed = true
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(capacity: 0))).whenComplete { _ in
                channel.close(promise: nil)
            }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if error is LineDecoder.LineTooLong {
            logger.warning("closing a connection: request line over \(Request.maxLineLength) bytes")
            var out = context.channel.allocator.buffer(capacity: 64)
            out.writeString(ProtocolError(.tooLong, "request line over \(Request.maxLineLength) bytes").description + "\n")
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(out)).whenComplete { _ in channel.close(promise: nil) }
        } else {
            logger.debug("connection error: \(error)")
            context.close(promise: nil)
        }
    }
}
