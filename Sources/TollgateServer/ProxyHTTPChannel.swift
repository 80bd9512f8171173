import Hummingbird
import HummingbirdCore
import TollgateCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1

/// The proxy listener's connections (`server.host`:`server.port`), served by a lean NIO handler
/// (`ProxyConnection`) instead of Hummingbird's connection task (issue 13, item 2).
///
/// Hummingbird still owns the listener (binding, graceful shutdown, `onServerRunning`) and
/// answers every path that is not a proxy route, through its router. What it no longer does here
/// is run a task per connection that reads each request, awaits its answer and writes it: that
/// task kept ~11 KB per open stream (its deepest frames' allocator slabs, and the request and
/// response heads its frames held). Here each request runs in a task of its own that ends when
/// its answer's head is out; a stream's body gets a task that lives only as long as the stream.
///
/// The pipeline is Hummingbird's own (NIO's HTTP/1 codec, the HTTPTypes codec, its idle and
/// quiesce handler), plus NIO's pipelining handler, which Hummingbird's async channel did the
/// work of, and `ConnectionWatch` / `HTTPEdge`.
struct ProxyHTTPChannel: ServerChildChannel {
    struct Value: ServerChildChannelValue {
        let channel: any Channel
    }

    let answer: ProxyAnswer
    let idleTimeout: Duration?

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            // Pipelined requests wait in NIO's pipelining handler until the answer before them
            // has ended. A request NIO cannot parse is answered by `ProxyConnection`.
            try pipeline.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: false,
                                                     withOutboundHeaderValidation: false)
            try pipeline.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try pipeline.addHandler(ConnectionWatch())
            try pipeline.addHandler(HTTPConnectionStateHandler(idleTimeout: idleTimeout, logger: logger))
            try pipeline.addHandler(ProxyConnection(answer: answer))
            return Value(channel: channel)
        }
    }

    /// Hummingbird's server keeps a task per connection until this returns; it holds nothing but
    /// the wait for the channel to close.
    func handle(value: Value, logger: Logger) async {
        let channel = value.channel
        await withTaskCancellationHandler {
            try? await channel.closeFuture.get()
        } onCancel: {
            channel.close(mode: .input, promise: nil)
        }
    }
}

/// Who answers a request on the proxy listener: the proxy pipeline for its routes, Hummingbird's
/// router for everything else (health, metrics, models, the client's budget, unknown paths).
final class ProxyAnswer: Sendable {
    let pipeline: ProxyPipeline
    let router: RouterResponder<TollgateRequestContext>
    let logger: Logger
    let serverName: String
    let date = HTTPDateCache()
    /// A body of a declared length up to this is collected before its request's task starts: below
    /// the body limits, so a body they refuse is refused before it is read (`ProxyPipeline.readBody`).
    let collectLimit: Int

    init(pipeline: ProxyPipeline, router: RouterResponder<TollgateRequestContext>, logger: Logger, serverName: String) {
        self.pipeline = pipeline
        collectLimit = min(64 << 10, pipeline.config.server.maxBodyBytes, pipeline.config.server.largeBodyBytes - 1)
        self.router = router
        self.logger = logger
        self.serverName = serverName
    }

    /// The answer to one request, with the headers every answer carries. Never throws: an error a
    /// route throws is its HTTP answer (or a 500, as Hummingbird's application answers it).
    func respond(_ request: Request, channel: any Channel) async -> Response {
        let context = TollgateRequestContext(source: .init(channel: channel, logger: logger))
        var response: Response
        if request.method == .post, let route = ProxyRoute.matching(path: request.uri.path) {
            response = await pipeline.proxy(route, request, context)
        } else {
            do {
                response = try await router.respond(to: request, context: context)
            } catch {
                logger.debug("unrecognised error", metadata: ["error": "\(error)"])
                response = Response(status: .internalServerError)
            }
        }
        response.headers[.date] = date.now()
        response.headers[.server] = serverName
        return response
    }
}

extension ProxyRoute {
    /// The proxy route of a request path as Hummingbird's router matched it: empty segments are
    /// ignored (`//v1/chat/completions`, `/v1/chat/completions/`).
    static func matching(path: String) -> ProxyRoute? {
        let canonical = ProxyPipeline.canonicalPath(path)
        return allCases.first { $0.path == canonical }
    }
}
