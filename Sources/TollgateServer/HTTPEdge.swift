import NIOCore
import NIOHTTP1

/// HTTP/1 connection rules Hummingbird leaves to us, applied where the request's HTTP version
/// is still known (between NIO's decoder and the HTTPTypes codec, which drops the version):
///
/// - **HTTP/1.0** is answered as HTTP/1.0. Without `Connection: keep-alive` the connection is
///   closed after the response; with it, it stays open when the response has a
///   `Content-Length` (a stream has none, and HTTP/1.0 cannot chunk, so it ends by closing).
/// - **A half-closed request is answered.** A client may send its whole request and then shut
///   its write side (`shutdown(SHUT_WR)`); its FIN only means "nothing more to send". The FIN
///   of a client that hung up looks the same until something is written to it, so Tollgate
///   writes an interim `100 Continue` (HTTP/1.1 clients must accept 1xx responses): a client
///   that is still there ignores it, one that has gone answers with a reset, which closes the
///   channel at once and cancels the request (`ConnectionWatch`). The connection is closed
///   after the response. A FIN while no complete request awaits its answer closes at once.
final class HTTPEdge: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private var state = HTTPEdgeState()
    private var nextProbe: Scheduled<Void>?
    /// A gone client's reset can go unnoticed after the first probe (reading stopped at its FIN);
    /// the next write fails for sure, so the probe repeats until the answer starts.
    static let probeInterval = TimeAmount.milliseconds(200)

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head): state.requestHead(version: head.version, keepAlive: head.isKeepAlive)
        case .body: break
        case .end: state.requestEnd()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch Self.unwrapOutboundIn(data) {
        case .head(var head):
            guard !(100..<200).contains(head.status.code) else { return context.write(data, promise: promise) }
            nextProbe?.cancel()
            nextProbe = nil
            state.responseHead(hasLength: head.headers.contains(name: "content-length"))
            if let version = state.responseVersion { head.version = version }
            if state.responseVersion != nil || !state.keepAlive {
                head.headers.replaceOrAdd(name: "connection", value: state.keepAlive ? "keep-alive" : "close")
            }
            context.write(Self.wrapOutboundOut(.head(head)), promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            guard state.responseEnd() == .close else { return context.write(data, promise: promise) }
            let written = context.eventLoop.makePromise(of: Void.self)
            written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            written.futureResult.cascade(to: promise)
            context.writeAndFlush(data, promise: written)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let e = event as? ChannelEvent, case .inputClosed = e else { return context.fireUserInboundEventTriggered(event) }
        switch state.inputClosed() {
        case .answerThenClose(let probe):
            if probe { self.probe(context: context) }
        case .close:
            // Nothing to answer: the client left (ConnectionWatch closes, cancelling any request).
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        nextProbe?.cancel()
        nextProbe = nil
        context.fireChannelInactive()
    }

    /// Writes an interim `100 Continue` now and again every `probeInterval` until the answer
    /// starts: a client still reading ignores them, a gone one makes the write fail, which
    /// closes the channel and cancels the request.
    private func probe(context: ChannelHandlerContext) {
        let head = HTTPResponseHead(version: .http1_1, status: .continue)
        context.writeAndFlush(Self.wrapOutboundOut(.head(head)), promise: nil)
        nextProbe = context.eventLoop.assumeIsolated().scheduleTask(in: Self.probeInterval) { [self] in
            guard state.isProbing, context.channel.isActive else { return }
            probe(context: context)
        }
    }
}

/// The per-connection state of `HTTPEdge`: a value with actions, testable without a socket.
struct HTTPEdgeState {
    private var version = HTTPVersion.http1_1
    private var requestKeepAlive = true
    /// The request has been read whole and its response has not ended.
    private var awaitingResponse = false
    private var responseStarted = false
    private var inputEnded = false
    private(set) var keepAlive = true

    /// The version to answer in when it is not HTTP/1.1's default handling (nil: leave as is).
    var responseVersion: HTTPVersion? { version.major == 1 && version.minor == 0 ? version : nil }

    mutating func requestHead(version: HTTPVersion, keepAlive: Bool) {
        self.version = version
        requestKeepAlive = keepAlive
        responseStarted = false
    }

    mutating func requestEnd() { awaitingResponse = true }

    mutating func responseHead(hasLength: Bool) {
        responseStarted = true
        // HTTP/1.0 has no chunking: a body without a length ends when the connection closes.
        keepAlive = requestKeepAlive && !inputEnded && (responseVersion == nil || hasLength)
    }

    enum EndAction: Equatable { case keepOpen, close }

    mutating func responseEnd() -> EndAction {
        awaitingResponse = false
        if inputEnded { return .close }
        // HTTP/1.1 without keep-alive (`Connection: close`) is closed by Hummingbird itself.
        return responseVersion != nil && !keepAlive ? .close : .keepOpen
    }

    enum InputClosedAction: Equatable {
        /// Answer the request in progress, then close; `probe`: write a `100 Continue` first.
        case answerThenClose(probe: Bool)
        case close
    }

    /// A half-closed request still waits for its answer's head (so a probe may be written).
    var isProbing: Bool { inputEnded && awaitingResponse && !responseStarted && responseVersion == nil }

    mutating func inputClosed() -> InputClosedAction {
        inputEnded = true
        guard awaitingResponse else { return .close }
        // 1xx responses must not be sent to HTTP/1.0 clients, nor after the final head.
        return .answerThenClose(probe: responseVersion == nil && !responseStarted)
    }
}
