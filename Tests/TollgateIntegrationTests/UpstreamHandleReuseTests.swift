import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing
@testable import TollgateUpstream

/// curl's easy handles are reset and reused across transfers (`UpstreamClient.takeHandle`): a
/// reused handle must carry nothing of its last request (method, body, headers, limits) into
/// the next one.
@Suite("a reused curl handle carries nothing of its last request", .timeLimit(.minutes(1)))
struct UpstreamHandleReuseTests {
    struct Seen: Sendable, Equatable {
        var method: String
        var uri: String
        var headers: [String: String]
        var bodyBytes: Int
    }

    /// Records each request and answers it with a small 200, keeping the connection open.
    final class Recorder: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let seen: NIOLockedValueBox<[Seen]>
        var current: Seen?
        init(_ seen: NIOLockedValueBox<[Seen]>) { self.seen = seen }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                current = Seen(method: head.method.rawValue, uri: head.uri,
                               headers: Dictionary(head.headers.map { ($0.name.lowercased(), $0.value) }, uniquingKeysWith: { $1 }),
                               bodyBytes: 0)
            case .body(let chunk):
                current?.bodyBytes += chunk.readableBytes
            case .end:
                if let current { seen.withLockedValue { $0.append(current) } }
                if current?.uri == "/hold" { return } // never answered: the test cancels it
                var headers = HTTPHeaders()
                headers.add(name: "Content-Length", value: "2")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "ok")))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }

    static func recordingServer(_ seen: NIOLockedValueBox<[Seen]>) async throws -> any Channel {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap { channel.pipeline.addHandler(Recorder(seen)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    /// One transfer read to its end: its status, body and failure.
    static func run(_ request: UpstreamRequest, on curl: UpstreamClient) async -> (status: Int?, body: [UInt8], failed: UpstreamError?) {
        var status: Int?, body: [UInt8] = [], failed: UpstreamError?
        for await part in curl.start(request).parts {
            switch part {
            case .head(let h): status = h.status
            case .body(let chunk): body += chunk
            case .end: break
            case .failed(let e): failed = e
            }
        }
        return (status, body, failed)
    }

    @Test("POST, PATCH, GET, then POST again: each as asked, on one reused handle per kind")
    func reusedHandleStartsClean() async throws {
        let seen = NIOLockedValueBox<[Seen]>([])
        let server = try await Self.recordingServer(seen)
        let curl = try UpstreamClient()
        defer { curl.shutdown() }
        let base = "http://127.0.0.1:\(server.localAddress!.port!)"

        let requests = [
            UpstreamRequest(url: base + "/first", method: "POST", headers: [("X-First", "1"), ("Content-Type", "application/json")],
                            body: Array(#"{"model":"m"}"#.utf8), collectBody: true, timeoutMilliseconds: 5_000),
            UpstreamRequest(url: base + "/second", method: "PATCH", headers: [("X-Second", "2")], body: Array("abc".utf8), collectBody: true),
            UpstreamRequest(url: base + "/third?q=3", method: "GET", headers: [], body: [], collectBody: true),
            // A streamed answer's handle is kept apart from the collected ones (its receive buffer is smaller).
            UpstreamRequest(url: base + "/fourth", method: "POST", headers: [], body: [], collectBody: false),
            UpstreamRequest(url: base + "/fifth", method: "POST", headers: [], body: Array("xy".utf8), collectBody: false),
            UpstreamRequest(url: base + "/sixth", method: "POST", headers: [], body: Array("z".utf8), collectBody: true),
        ]
        for request in requests {
            let answer = await Self.run(request, on: curl)
            #expect(answer.failed == nil, "\(request.url): \(String(describing: answer.failed))")
            #expect(answer.status == 200)
            #expect(answer.body == Array("ok".utf8))
        }
        try await server.close()

        let got = seen.withLockedValue { $0 }
        // A handle that kept its last options would send the GET as a PATCH (CURLOPT_CUSTOMREQUEST
        // outlives CURLOPT_HTTPGET), and the last POST as one too.
        #expect(got.map(\.method) == ["POST", "PATCH", "GET", "POST", "POST", "POST"])
        #expect(got.map(\.uri) == ["/first", "/second", "/third?q=3", "/fourth", "/fifth", "/sixth"])
        #expect(got.map(\.bodyBytes) == [13, 3, 0, 0, 2, 1])
        #expect(got[0].headers["x-first"] == "1")
        #expect(got[1].headers["x-second"] == "2" && got[1].headers["x-first"] == nil)
        #expect(got[2].headers["x-second"] == nil && got[2].headers["content-type"] == nil && got[2].headers["content-length"] == nil)
        #expect(got[5].headers["x-second"] == nil && got[5].headers["content-length"] == "1")
        // One handle for the four collected answers, one for the two streamed ones.
        #expect(curl.easyHandlesMade == 2)
    }

    @Test("a handle whose transfer was cancelled mid-request is reused for the next one, which is answered")
    func reusedAfterCancel() async throws {
        let seen = NIOLockedValueBox<[Seen]>([])
        let server = try await Self.recordingServer(seen)
        let curl = try UpstreamClient()
        defer { curl.shutdown() }
        let base = "http://127.0.0.1:\(server.localAddress!.port!)"

        let held = curl.start(UpstreamRequest(url: base + "/hold", method: "POST", headers: [], body: Array("held".utf8), collectBody: true))
        // Cancelled once the server holds the whole request.
        let deadline = ContinuousClock.now + .seconds(20)
        while seen.withLockedValue({ $0.isEmpty }), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(seen.withLockedValue { $0.count } == 1)
        held.cancel()
        var failure: UpstreamError?
        for await part in held.parts { if case .failed(let e) = part { failure = e } }
        #expect(failure?.kind == .cancelled)

        let next = await Self.run(UpstreamRequest(url: base + "/after", method: "GET", headers: [], body: [], collectBody: true), on: curl)
        try await server.close()
        #expect(next.failed == nil, "the next transfer failed: \(String(describing: next.failed))")
        #expect(next.status == 200 && next.body == Array("ok".utf8))
        #expect(seen.withLockedValue { $0.map(\.method) } == ["POST", "GET"])
        #expect(curl.easyHandlesMade == 1)
    }
}
