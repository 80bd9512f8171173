import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// One proxy-listener connection, driven by NIO's callbacks on its event loop (`ProxyHTTPChannel`).
///
/// HTTP/1 answers one request at a time (NIO's pipelining handler holds the next one back until
/// this one's answer has ended). For each request:
/// - its head starts a task, on this loop, that works out the answer (`ProxyAnswer`);
/// - a body of a declared length up to `ProxyAnswer.collectLimit` (a usual LLM request) is
///   collected here first, so the task starts with all of it (no sequence, no wait per part);
///   any other body reaches the task through a back-pressured sequence: reading from the socket
///   pauses while the task has enough unread, so a large upload is never buffered whole here;
/// - a whole answer goes out in one flush, from the same task, which then ends. A stream's head
///   goes out at once, and its body is written by a task of its own, so what the request's task
///   took for its deepest frames (reserve, forward) is given back while the stream is open.
///
/// A body the answer did not read is read to its end and dropped, so the next request on the
/// connection starts where it should.
final class ProxyConnection: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart
    typealias Body = NIOThrowingAsyncSequenceProducer<
        ByteBuffer, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, BodyDemand>

    private let answer: ProxyAnswer
    private var context: ChannelHandlerContext?
    /// The current request, counted so a late signal about an earlier one's body is ignored.
    private var request = 0
    /// The current request's body until its end has been read, when it is streamed to its task.
    private var body: Body.Source?
    /// The current request while its (small) body is collected, before its task starts.
    private var collecting: (head: HTTPRequest, body: ByteBuffer)?
    /// Nobody reads the rest of the body (the answer is out, or its reader has gone): dropped.
    private var droppingBody = false
    private var readingPaused = false
    private var readPending = false
    /// An answer has started and not ended.
    private var answering = false
    /// `Connection: close` on the request: close once its answer has ended.
    private var closeAfterAnswer = false

    init(answer: ProxyAnswer) { self.answer = answer }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        collecting = nil
        body?.finish(ChannelError.ioOnClosedChannel)
        body = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            request &+= 1
            closeAfterAnswer = head.headerFields[.connection].map(Self.saysClose) ?? false
            if let length = Self.declaredLength(head), length <= answer.collectLimit {
                collecting = (head, context.channel.allocator.buffer(capacity: length))
            } else {
                stream(head, collected: nil, context: context)
            }
        case .body(var chunk):
            if collecting != nil {
                collecting!.body.writeBuffer(&chunk)
                return
            }
            guard let body, !droppingBody else { return }
            if body.yield(chunk) == .stopProducing { readingPaused = true }
        case .end:
            if let (head, collected) = collecting {
                collecting = nil
                Self.answer(Request(head: head, body: RequestBody(buffer: collected)), by: answer, on: context.channel,
                            NIOLoopBound(self, eventLoop: context.eventLoop))
                return
            }
            body?.finish()
            body = nil
            droppingBody = false
            resumeReading()
        }
    }

    /// A connection that closes mid-upload cuts the body: its reader sees an error, not a short body.
    func channelInactive(context: ChannelHandlerContext) {
        collecting = nil // its task never started: nothing to answer, nothing reserved
        body?.finish(ChannelError.eof)
        body = nil
        context.fireChannelInactive()
    }

    /// A request NIO cannot parse. Mid-body (a broken chunked encoding), the body's reader sees
    /// the error and the request is answered in its API's shape (a 400 that says the body could
    /// not be read); the connection closes after that answer. In a head, the answer is a bare 400,
    /// as Hummingbird answers it. Nothing after the error can be read.
    ///
    /// Any other error (a connection reset by the client) closes the connection: there is no
    /// request to answer between requests, and a request in progress is answered by its task, or
    /// cancelled by the close (`ConnectionWatch`). A 400 written then would answer no request.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        closeAfterAnswer = true
        if let (head, collected) = collecting {
            // Its task sees what came before the error, then the error.
            collecting = nil
            stream(head, collected: collected, context: context)
        }
        if let body {
            body.finish(error)
            self.body = nil
        } else if !answering, error is HTTPParserError {
            answering = true
            context.write(Self.wrapOutboundOut(.head(HTTPResponse(status: .badRequest, headerFields: [.connection: "close", .contentLength: "0"]))),
                          promise: nil)
            _ = writeEnd(nil)
        } else {
            context.close(promise: nil)
        }
    }

    /// Reading pauses while the request's task has enough of its body unread.
    func read(context: ChannelHandlerContext) {
        if readingPaused { readPending = true } else { context.read() }
    }

    private func resumeReading() {
        readingPaused = false
        guard readPending, let context else { return }
        readPending = false
        context.read()
    }

    /// The body's length when it is known from the head: its `Content-Length`, or 0 without one
    /// and without `Transfer-Encoding` (a request with no body).
    static func declaredLength(_ head: HTTPRequest) -> Int? {
        if let length = head.headerFields[.contentLength] { return Int(length) }
        return head.headerFields[.transferEncoding] == nil ? 0 : nil
    }

    /// Starts the request's task with a body streamed to it (`collected` first, when there is some).
    private func stream(_ head: HTTPRequest, collected: ByteBuffer?, context: ChannelHandlerContext) {
        let loop = NIOLoopBound(self, eventLoop: context.eventLoop)
        let body = Body.makeSequence(backPressureStrategy: .init(lowWatermark: 2, highWatermark: 8), finishOnDeinit: false,
                                     delegate: BodyDemand(connection: loop, request: request))
        if let collected, collected.readableBytes > 0 { _ = body.source.yield(collected) }
        self.body = body.source
        droppingBody = false
        Self.answer(Request(head: head, body: RequestBody(asyncSequence: body.sequence)), by: answer, on: context.channel, loop)
    }

    private static func answer(_ request: Request, by answer: ProxyAnswer, on channel: any Channel, _ connection: NIOLoopBound<ProxyConnection>) {
        Task(executorPreference: EventLoopExecutor.of(channel.eventLoop)) {
            let response = await answer.respond(request, channel: channel)
            await send(response, to: connection)
        }
    }

    static func saysClose(_ connection: String) -> Bool {
        connection.split(separator: ",").contains { $0.trimmingCharacters(in: .whitespaces).lowercased() == "close" }
    }

    /// Writes the answer: a whole one in one flush, here; a stream's body in a task of its own.
    private static func send(_ response: Response, to connection: NIOLoopBound<ProxyConnection>) async {
        let streamed = response.body.contentLength == nil
        let headWritten = await connection.onLoop({ $0.writeHead(response.head, flush: streamed) }) == true
        let writer = AnswerBodyWriter(connection: connection, streamed: streamed)
        guard streamed else {
            if headWritten { await write(response.body, writer) }
            return
        }
        // A stream's body runs even when its client has gone before the head: its writes fail, and
        // the relay settles the stream by the disconnect rule (its reservation is never left to
        // the reaper).
        Task(executorPreference: EventLoopExecutor.of(connection.eventLoop)) { await write(response.body, writer) }
    }

    private static func write(_ body: ResponseBody, _ writer: AnswerBodyWriter) async {
        do {
            try await body.write(writer)
            // A body that returned without finishing still ends its answer.
            _ = await writer.connection.onLoop { $0.writeEnd(nil) }
        } catch {
            // The client left mid-answer (or the answer failed): the connection cannot go on.
            _ = await writer.connection.onLoop { $0.context?.close(promise: nil) }
        }
    }

    /// False when the channel has gone.
    private func writeHead(_ head: HTTPResponse, flush: Bool) -> Bool {
        guard let context, context.channel.isActive else { return false }
        answering = true
        if body != nil {
            // The answer is out before the request's body ended: the rest is read and dropped.
            droppingBody = true
            resumeReading()
        }
        context.write(Self.wrapOutboundOut(.head(head)), promise: nil)
        if flush { context.flush() }
        return true
    }

    /// Nil when there is no answer to write to (its head was never written, or the channel has gone).
    fileprivate func writeBody(_ buffer: ByteBuffer, flush: Bool) -> EventLoopFuture<Void>? {
        guard answering, let context else { return nil }
        let written = context.eventLoop.makePromise(of: Void.self)
        context.write(Self.wrapOutboundOut(.body(buffer)), promise: written)
        if flush { context.flush() }
        return written.futureResult
    }

    fileprivate func writeEnd(_ trailers: HTTPFields?) -> EventLoopFuture<Void>? {
        guard answering, let context else { return nil }
        answering = false
        let close = closeAfterAnswer
        let written = context.eventLoop.makePromise(of: Void.self)
        // NIO's pipelining handler may hand over the next request during this write.
        context.writeAndFlush(Self.wrapOutboundOut(.end(trailers)), promise: written)
        if close { context.close(promise: nil) }
        return written.futureResult
    }

    /// A signal from the body's sequence: its reader wants more, or has gone.
    fileprivate func bodyDemand(request: Int, more: Bool) {
        guard request == self.request, body != nil else { return }
        if !more { droppingBody = true }
        resumeReading()
    }
}

/// The body sequence's demand, carried to the connection's loop.
struct BodyDemand: NIOAsyncSequenceProducerDelegate {
    let connection: NIOLoopBound<ProxyConnection>
    let request: Int

    func produceMore() {
        connection.eventLoop.execute { [connection, request] in connection.value.bodyDemand(request: request, more: true) }
    }

    func didTerminate() {
        connection.eventLoop.execute { [connection, request] in connection.value.bodyDemand(request: request, more: false) }
    }
}

/// Writes an answer's body through its connection. A stream's parts are flushed one by one and
/// each write waits until it is written (back-pressure, and a client that left makes it throw);
/// a whole answer's parts are written as they come and flushed with its end.
struct AnswerBodyWriter: ResponseBodyWriter, Sendable {
    let connection: NIOLoopBound<ProxyConnection>
    let streamed: Bool

    mutating func write(_ buffer: ByteBuffer) async throws {
        let streamed = self.streamed
        let written = await connection.onLoop { $0.writeBody(buffer, flush: streamed) }
        guard let written = written ?? nil else { throw ChannelError.ioOnClosedChannel }
        if streamed { try await written.get() }
    }

    consuming func finish(_ trailers: HTTPFields?) async throws {
        let written = await connection.onLoop { $0.writeEnd(trailers) }
        guard let written = written ?? nil else { throw ChannelError.ioOnClosedChannel }
        if streamed { try await written.get() }
    }
}

extension NIOLoopBound where Value == ProxyConnection {
    /// Runs `body` with the connection on its loop: at once when this task is there (it runs on
    /// the connection's loop: `EventLoopExecutor`), after a hop otherwise.
    /// Nil when the loop has shut down.
    func onLoop<T: Sendable>(_ body: @escaping @Sendable (ProxyConnection) -> T) async -> T? {
        if eventLoop.inEventLoop { return body(value) }
        let connection = self
        return try? await eventLoop.submit { body(connection.value) }.get()
    }
}
