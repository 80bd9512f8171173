import Hummingbird
import NIOCore

/// The request context keeps the channel so a route can react the moment the client leaves.
public struct TollgateRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// Hummingbird allows half-closure, so a client's FIN only raises `inputClosed` and the
/// channel stays open until a write fails — seconds later on a quiet stream. An LLM client that
/// hangs up has left; closing here makes `closeFuture` fire at once, which cancels the
/// upstream transfer and settles what was streamed.
final class CloseOnInputClosedHandler: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, case .inputClosed = e {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
