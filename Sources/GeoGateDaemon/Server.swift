import Logging
import NIOCore
import NIOHTTP1
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
    /// Event-loop threads answering requests.
    public var threads = 1
    /// Seconds between looks for a replaced trie or config file; 0: no looking.
    public var watchIntervalSeconds = 5
    /// The command of one refresh (`geogate refresh --config ...`), run on the
    /// config's daemon.refresh-interval; nil: the daemon never refreshes itself.
    public var refreshCommand: [String]?

    public init(socketPath: String) { self.socketPath = socketPath }
}

public final class DaemonServer: Service, Sendable {
    let service: LookupService
    let settings: DaemonSettings
    let logger: Logger

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
            .childChannelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 4096))
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
                    try DaemonServer.addHTTPHandlers(channel.pipeline.syncOperations, service: self.service,
                                                     idleTimeout: .seconds(self.settings.idleTimeoutSeconds))
                }
            }
        return try await bindUnixSocket(bootstrap, path: path)
    }

    /// Binds `path` and gives it the configured mode and group; closes it on failure.
    /// A socket file another daemon answers on is never taken over (only a stale one,
    /// where nobody listens, is replaced), and every error names the path and the
    /// errno in words.
    func bindUnixSocket(_ bootstrap: ServerBootstrap, path: String) async throws -> Channel {
        let limit = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1
        guard path.utf8.count <= limit else {
            throw ServiceError("\(path): a Unix socket path is at most \(limit) bytes; this one has \(path.utf8.count)")
        }
        try SocketFile.removeIfStale(path)
        let fd = try SocketFile.listen(path, mode: settings.socketMode, group: settings.socketGroup, backlog: 1024)
        let channel: Channel
        do { channel = try await bootstrap.withBoundSocket(fd).get() } catch {
            // (NIO owns the descriptor from here and closes it.)
            unlink(path)
            throw ServiceError("\(path): cannot serve: \(SocketFile.describe(error))")
        }
        return channel
    }

    /// Called on the channel's event loop for each new connection.
    func setUp(_ channel: Channel) throws {
        let open = service.openConnections.add(1, ordering: .relaxed).newValue
        channel.closeFuture.whenComplete { _ in self.service.openConnections.subtract(1, ordering: .relaxed) }
        if open > settings.maxConnections {
            service.refusedConnections.add(1, ordering: .relaxed)
            logger.warning("connection refused: \(open - 1) connections open (max-connections \(settings.maxConnections))")
            var buffer = channel.allocator.buffer(capacity: 64)
            buffer.writeString(ProtocolError(.busy, "too many connections").description + "\n")
            channel.writeAndFlush(buffer).whenComplete { _ in channel.close(promise: nil) }
            return
        }
        try DaemonServer.addLineHandlers(channel.pipeline.syncOperations, service: service, logger: logger,
                                         idleTimeout: .seconds(settings.idleTimeoutSeconds))
    }

    /// The handlers of one line-protocol connection (also what the fuzz target drives).
    public static func addLineHandlers(_ pipeline: ChannelPipeline.SynchronousOperations, service: LookupService,
                                       logger: Logger, idleTimeout: TimeAmount) throws {
        try pipeline.addHandler(RequestHandler(service: service, logger: logger, idleTimeout: idleTimeout))
    }

    /// The handlers of one auth_request (HTTP/1.1) connection (also what the fuzz target drives).
    public static func addHTTPHandlers(_ pipeline: ChannelPipeline.SynchronousOperations, service: LookupService,
                                       idleTimeout: TimeAmount) throws {
        try pipeline.addHandler(IdleStateHandler(allTimeout: idleTimeout))
        try pipeline.configureHTTPServerPipeline()
        try pipeline.addHandler(HTTPCheckHandler(service: service))
    }

    /// Serves until graceful shutdown (SIGTERM/SIGINT through ServiceGroup);
    /// SIGHUP, or a replaced trie or config file, reloads them.
    public func run() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: settings.threads)
        // Trap SIGHUP before saying READY: a reload sent right after READY=1 must
        // not meet the default action (terminate).
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let passedSocket = Systemd.listenDescriptor()
        let channel = try await bind(group: group, passedSocket: passedSocket)
        // Which file is ours: at shutdown only that one is removed, never a socket
        // that another daemon put at the same path since.
        let ownSocket = passedSocket == nil ? SocketFile.identity(settings.socketPath) : nil
        if passedSocket != nil {
            // The path systemd bound (geogate.socket's ListenStream), not daemon.socket.
            let actual = channel.localAddress?.pathname ?? "(unnamed)"
            logger.info("listening on \(actual) (socket passed by systemd)")
            if actual != settings.socketPath {
                logger.warning("systemd passed \(actual), not daemon.socket \(settings.socketPath): clients that use the config's path will not reach this daemon")
            }
        } else {
            logger.info("listening on \(settings.socketPath)")
        }
        var http: Channel?
        var ownHTTPSocket: SocketFile.Identity?
        if let path = settings.httpSocketPath {
            do { http = try await bindHTTP(group: group, path: path) } catch {
                try? await channel.close()
                if let ownSocket { SocketFile.remove(settings.socketPath, ifStill: ownSocket) }
                throw error
            }
            ownHTTPSocket = SocketFile.identity(path)
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
                if settings.watchIntervalSeconds > 0 {
                    tasks.addTask {
                        // A look every few seconds (two stat calls) instead of inotify: it
                        // also sees a file replaced on another mount or through a symlink.
                        while !Task.isCancelled {
                            try? await Task.sleep(for: .seconds(self.settings.watchIntervalSeconds))
                            if self.service.filesChanged() { self.reloadAndLog(reason: "file replaced") }
                        }
                    }
                }
                if let command = settings.refreshCommand, !command.isEmpty {
                    tasks.addTask { await RefreshSchedule(command: command, service: self.service, logger: self.logger).run() }
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
            if let ownHTTPSocket { SocketFile.remove(settings.httpSocketPath!, ifStill: ownHTTPSocket) }
        }
        if let ownSocket { SocketFile.remove(settings.socketPath, ifStill: ownSocket) }
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

/// `struct ucred` of SO_PEERCRED (Glibc hides it behind _GNU_SOURCE).
struct PeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

/// Answers each line in order. Every read is answered as one batch: all its
/// complete lines are parsed in place and their answers written into one buffer
/// (one write per read, one flush per read burst); a line cut by the read waits
/// in `partial` for its end. When the client stops reading and the outbound
/// buffer passes its high-water mark, reads pause until it drains, so a client
/// that never reads costs bounded memory. A connection that sends nothing for
/// `idleTimeout` is closed (a timer of our own: NIO's IdleStateHandler tracks
/// write completions with a promise per write, a cost on every answer). The time
/// counts from the last complete request: a client trickling a partial line byte
/// by byte cannot hold a connection slot past the timeout.
final class RequestHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let service: LookupService
    let logger: Logger
    var peerUID: UInt32?
    var inputClosed = false
    /// The start of a line whose newline has not arrived yet.
    var partial: ByteBuffer?
    var output = ByteBufferAllocator().buffer(capacity: 4096)
    var cache = LookupService.CachedSnapshot()
    let idleTimeout: TimeAmount
    /// When the last complete request line arrived (or the connection opened).
    var lastRequest = NIODeadline.now()
    var idleCheck: Scheduled<Void>?

    init(service: LookupService, logger: Logger, idleTimeout: TimeAmount) {
        self.service = service
        self.logger = logger
        self.idleTimeout = idleTimeout
    }

    func channelActive(context: ChannelHandlerContext) {
        scheduleIdleCheck(context: context, in: idleTimeout)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleCheck?.cancel()
        context.fireChannelInactive()
    }

    /// Closes the connection when no complete request came for `idleTimeout`, else
    /// looks again when that much time will have passed since the last one.
    func scheduleIdleCheck(context: ChannelHandlerContext, in delay: TimeAmount) {
        let box = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        idleCheck = context.eventLoop.scheduleTask(in: delay) {
            let (handler, context) = box.value
            let idle = NIODeadline.now() - handler.lastRequest
            if idle >= handler.idleTimeout {
                handler.logger.info("closing an idle connection")
                context.close(promise: nil)
            } else {
                handler.scheduleIdleCheck(context: context, in: handler.idleTimeout - idle)
            }
        }
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
        var input = unwrapInboundIn(data)
        if var carried = partial {
            carried.writeBuffer(&input)
            input = carried
            partial = nil
        }
        // The answers go into one buffer kept across reads: once the socket has
        // taken the last answers, NIO no longer holds it and it is reused as is
        // (while NIO still holds it, writing copies it first: never a shared write).
        output.clear()
        let (consumed, tooLong) = input.withUnsafeReadableBytes { service.answerLines($0, peerUID: peerUID, cache: &cache, into: &output) }
        input.moveReaderIndex(forwardBy: consumed)
        if consumed > 0 { lastRequest = .now() }
        if output.readableBytes > 0 { context.write(wrapOutboundOut(output), promise: nil) }
        if tooLong {
            logger.warning("closing a connection: request line over \(Request.maxLineLength) bytes")
            var out = context.channel.allocator.buffer(capacity: 64)
            out.writeString(ProtocolError(.tooLong, "request line over \(Request.maxLineLength) bytes").description + "\n")
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(out)).whenComplete { _ in channel.close(promise: nil) }
            _ = context.channel.setOption(.autoRead, value: false)
            return
        }
        if input.readableBytes > 0 {
            // Copied out, so the read buffer it came in is not kept alive.
            var carried = context.channel.allocator.buffer(capacity: max(64, input.readableBytes))
            carried.writeBuffer(&input)
            partial = carried
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    /// Reads stop while the answers wait past the high-water mark (NIO says so as
    /// the write that crosses it is queued) and resume once they drained below the
    /// low mark: no look at the channel's state on every read.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let writable = context.channel.isWritable
        if !writable || !inputClosed { _ = context.channel.setOption(.autoRead, value: writable) }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .some(.inputClosed) = event as? ChannelEvent {
            // Half-closed: answer what was asked (a last line may lack its newline), then close.
            inputClosed = true
            let channel = context.channel
            var output = channel.allocator.buffer(capacity: 128)
            if let last = partial, last.readableBytes > 0 {
                last.withUnsafeReadableBytes { service.answerLastLine($0, peerUID: peerUID, into: &output) }
                partial = nil
            }
            context.writeAndFlush(wrapOutboundOut(output)).whenComplete { _ in
                channel.close(promise: nil)
            }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        logger.debug("connection error: \(error)")
        context.close(promise: nil)
    }
}
