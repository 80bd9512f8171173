import Hummingbird
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// The request context keeps the channel so a route can react the moment the client leaves.
public struct TollgateRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// Runs `cancel` if the client's connection closes before `unwatch`. One slot per connection:
    /// HTTP/1 serves one request at a time. (Hooking `closeFuture` per request instead piles a
    /// callback per request onto a keep-alive connection: a leak the soak benchmark found.)
    func watchDisconnect(_ cancel: @escaping @Sendable () -> Void) async -> ConnectionWatch? {
        // Request tasks run on their connection's loop (EventLoopExecutor): look the handler up
        // synchronously there instead of through a future and a suspension.
        let handler: ConnectionWatch?
        if channel.eventLoop.inEventLoop {
            handler = try? channel.pipeline.syncOperations.handler(type: ConnectionWatch.self)
        } else {
            handler = try? await channel.pipeline.handler(type: ConnectionWatch.self).get()
        }
        guard let handler else {
            // A closed channel has taken its handlers down: the client is already gone.
            if !channel.isActive { cancel() }
            return nil
        }
        handler.watch(cancel)
        return handler
    }
}

/// Hummingbird allows half-closure, so a client's FIN only raises `inputClosed` and the
/// channel stays open until a write fails — seconds later on a quiet stream. An LLM client that
/// hangs up has left; closing here makes the disconnect visible at once, and the watched
/// request's upstream transfer is cancelled (then settled with what was streamed).
/// `HTTPEdge` (which it installs) sees the FIN first: a complete request awaiting its answer is
/// answered instead, and only a client that has really gone (reset) closes the channel.
final class ConnectionWatch: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = NIOAny
    private let state = NIOLockedValueBox<(closed: Bool, cancel: (@Sendable () -> Void)?)>((false, nil))

    func watch(_ cancel: @escaping @Sendable () -> Void) {
        let alreadyClosed = state.withLockedValue { s in
            if !s.closed { s.cancel = cancel }
            return s.closed
        }
        if alreadyClosed { cancel() }
    }

    func unwatch() { state.withLockedValue { $0.cancel = nil } }

    /// This handler sits after the HTTPTypes codec, which has dropped the request's HTTP version;
    /// `HTTPEdge` needs it, so it goes before that codec: after NIO's pipelining handler, which
    /// hands requests on one at a time, in the order they are answered (or right after NIO's
    /// decoder when there is none).
    func handlerAdded(context: ChannelHandlerContext) {
        let pipeline = context.pipeline.syncOperations
        if let pipelining = try? pipeline.handler(type: HTTPServerPipelineHandler.self) {
            try? pipeline.addHandler(HTTPEdge(), position: .after(pipelining))
        } else if let decoder = try? pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self) {
            try? pipeline.addHandler(HTTPEdge(), position: .after(decoder))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let cancel = state.withLockedValue { s in
            defer { s = (true, nil) }
            return s.cancel
        }
        cancel?()
        MemoryTrim.afterConnectionClosed()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, case .inputClosed = e {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
