import NIOCore
import NIOPosix
import Testing
@testable import TollgateUpstream

/// A streamed answer's bytes reach the reader as one part per turn of the curl loop, not one per
/// write callback: curl reads a stream 1 KiB at a time (its receive buffer is cut to save memory
/// per open stream), so a burst would otherwise wake the relay and write to the client once per
/// KiB. Parts stay at most `TransferContext.pendingLimit` (16 KiB), so back-pressure still holds.
@Suite("a streamed burst reaches the reader in few parts", .timeLimit(.minutes(1)))
struct UpstreamBurstTests {
    /// Answers the first bytes it reads with the whole canned response in one write, then closes.
    final class CannedAnswer: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let answer: [UInt8]
        var sent = false
        init(_ answer: [UInt8]) { self.answer = answer }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !sent else { return }
            sent = true
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: answer))).whenComplete { _ in context.close(promise: nil) }
        }
    }

    @Test("30,000 bytes written at once arrive as at most 3 parts of at most 16 KiB, all of them in order")
    func burstInFewParts() async throws {
        // SSE-shaped lines, numbered, so order and completeness can be checked byte for byte.
        var body: [UInt8] = []
        for i in 0..<30_000 {
            let letter: UInt8 = 97 + UInt8((i / 100) % 26) // a…z, one per 100-byte line
            body.append(i % 100 == 99 ? 10 : letter)
        }
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { $0.pipeline.addHandler(CannedAnswer(Array(head.utf8) + body)) }
            .bind(host: "127.0.0.1", port: 0).get()
        let curl = try UpstreamClient()
        defer { curl.shutdown() }
        let transfer = curl.start(UpstreamRequest(url: "http://127.0.0.1:\(server.localAddress!.port!)/v1/chat/completions", method: "POST",
                                                  headers: [("Content-Type", "application/json")], body: Array(#"{"stream":true}"#.utf8)))
        var parts: [[UInt8]] = []
        var ended = false
        for await part in transfer.parts {
            switch part {
            case .head(let h): #expect(h.status == 200)
            case .body(let chunk): parts.append(chunk)
            case .end: ended = true
            case .failed(let e): Issue.record("failed: \(e)")
            }
        }
        try await server.close()
        #expect(ended)
        #expect(parts.flatMap { $0 } == body)
        // One 1 KiB callback per part would be 30 parts; a part per turn is 2 (16 KiB + the rest),
        // one more if the curl thread woke while the bytes were still arriving.
        #expect(parts.count <= 3, "\(parts.count) parts: \(parts.map(\.count))")
        #expect(parts.allSatisfy { $0.count <= 16 << 10 }, "\(parts.map(\.count))")
    }
}
