import NIOCore
import NIOHTTP1
import NIOPosix
import Testing
@testable import TollgateServer

/// The connection rules of `HTTPEdge` as a value: no socket needed.
@Suite("HTTPEdge state")
struct HTTPEdgeStateTests {
    @Test("HTTP/1.1 keep-alive stays open; a FIN with no request in progress closes")
    func http11() {
        var s = HTTPEdgeState()
        s.requestHead(version: .http1_1, keepAlive: true)
        s.requestEnd()
        s.responseHead(hasLength: false)
        #expect(s.responseVersion == nil)
        #expect(s.responseEnd() == .keepOpen)
        #expect(s.inputClosed() == .close)
    }

    @Test("a FIN after a whole request: answer it (probe with 100 Continue before the head), then close")
    func halfClosed() {
        var s = HTTPEdgeState()
        s.requestHead(version: .http1_1, keepAlive: true)
        s.requestEnd()
        #expect(s.inputClosed() == .answerThenClose(probe: true))
        s.responseHead(hasLength: true)
        #expect(!s.keepAlive)
        #expect(s.responseEnd() == .close)
    }

    @Test("a FIN once the answer has started needs no probe: the next write finds a gone client")
    func halfClosedMidStream() {
        var s = HTTPEdgeState()
        s.requestHead(version: .http1_1, keepAlive: true)
        s.requestEnd()
        s.responseHead(hasLength: false)
        #expect(s.inputClosed() == .answerThenClose(probe: false))
        #expect(s.responseEnd() == .close)
    }

    @Test("a FIN in the middle of a request body closes: there is no whole request to answer")
    func finMidBody() {
        var s = HTTPEdgeState()
        s.requestHead(version: .http1_1, keepAlive: true)
        #expect(s.inputClosed() == .close)
    }

    @Test("HTTP/1.0: answered as 1.0; closed unless keep-alive with a length; never probed")
    func http10() {
        var s = HTTPEdgeState()
        s.requestHead(version: .http1_0, keepAlive: false)
        s.requestEnd()
        s.responseHead(hasLength: true)
        #expect(s.responseVersion == .http1_0)
        #expect(s.responseEnd() == .close)

        s.requestHead(version: .http1_0, keepAlive: true)
        s.requestEnd()
        s.responseHead(hasLength: true)
        #expect(s.keepAlive)
        #expect(s.responseEnd() == .keepOpen)

        s.requestHead(version: .http1_0, keepAlive: true)
        s.requestEnd()
        s.responseHead(hasLength: false)
        #expect(!s.keepAlive, "a 1.0 body without a length ends by closing")
        #expect(s.responseEnd() == .close)

        s.requestHead(version: .http1_0, keepAlive: true)
        s.requestEnd()
        #expect(s.inputClosed() == .answerThenClose(probe: false), "no 1xx to an HTTP/1.0 client")
    }
}

@Suite("LargeBodyGate")
struct LargeBodyGateTests {
    @Test("permits are handed to waiters first come, first served, and a released permit frees a place")
    func order() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.any()
        let gate = LargeBodyGate(permits: 1)
        let first = try #require(await gate.enter(on: loop))
        async let second = gate.enter(on: loop)
        try await Task.sleep(for: .milliseconds(100))
        first.release()
        first.release() // twice is once
        let next = try #require(await second, "the waiter got the released permit")
        next.release()
        let again = try #require(await gate.enter(on: loop), "one permit, free again")
        again.release()
    }
}
