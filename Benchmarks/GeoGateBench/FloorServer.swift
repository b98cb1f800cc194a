import ArgumentParser
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// `floor --socket PATH`: the framework's floor for the daemon rows. A bare SwiftNIO
/// line server with the daemon's bootstrap (backlog, half-closure, write-buffer
/// water marks, 4 KiB reads, one event loop) that answers every request line with a
/// fixed answer of the daemon's shape, one write a read and one flush a read burst,
/// as the daemon does. No parsing, no lookup, no decision: what is left of the
/// daemon's CPU per request above this is geogate's own.
struct FloorServer: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "floor")

    @Option(help: "The Unix socket to serve (replaced if it exists).") var socket: String

    func run() throws {
        unlink(socket)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let channel = try ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 32 * 1024, high: 256 * 1024))
            .childChannelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 4096))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(FixedAnswerHandler()) }
            }
            .bind(unixDomainSocketPath: socket).wait()
        try channel.closeFuture.wait()
    }
}

/// One fixed answer per newline received.
final class FixedAnswerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    static let answer: StaticString = "DENY US country\n"
    var output = ByteBufferAllocator().buffer(capacity: 4096)

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let input = unwrapInboundIn(data)
        let lines = input.withUnsafeReadableBytes { bytes in bytes.reduce(0) { $0 &+ ($1 == 0x0A ? 1 : 0) } }
        guard lines > 0 else { return }
        output.clear()
        for _ in 0..<lines { output.writeStaticString(FixedAnswerHandler.answer) }
        context.write(wrapOutboundOut(output), promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) { context.flush() }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .some(.inputClosed) = event as? ChannelEvent { context.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}
