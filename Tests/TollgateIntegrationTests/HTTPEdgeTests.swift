import Foundation
import Testing
import TollgateCore
import TollgateMockProvider
import TollgateRedis

/// Limits at the HTTP edge (issue 12, item 9): idle and slow connections, half-closed requests,
/// HTTP/1.0, and large bodies. Raw sockets where no HTTP client would behave this way.
@Suite("HTTP edge limits", .timeLimit(.minutes(3)))
struct HTTPEdgeTests {
    static let chat = #"{"model":"gpt-4o-mini","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#

    func withReplica(_ configure: @escaping (inout TollgateConfig) -> Void = { _ in },
                     _ body: (Replica, RunningMockProvider) async throws -> Void) async throws {
        let mock = try await MockProvider.start()
        let replica = try await Replica.start(upstream: mock.baseURL, configure: configure)
        do { try await body(replica, mock) } catch { await replica.stop(); await mock.stop(); throw error }
        await replica.stop()
        await mock.stop()
    }

    func day(_ client: ClientID) async throws -> [String: String] {
        try await TestRedis.hash(try await TestRedis.periodKeys(client).0)
    }

    @Test("a request head that stalls halfway is closed after server.idle_timeout_seconds (slowloris)")
    func slowHead() async throws {
        try await withReplica({ $0.server.idleTimeoutSeconds = 1 }) { replica, mock in
            let half = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl"
            let ex = try await RawHTTP.exchange(port: replica.port, half, waitForClose: 15)
            #expect(ex.closedByServer, "a 1 s idle timeout closes a stalled head well within 15 s")
            #expect(ex.response.isEmpty, "nothing is answered to half a head: \(ex.response)")
            #expect(mock.recorder.count == 0)
        }
    }

    @Test("an idle keep-alive connection is closed after the idle timeout, after its answer")
    func idleKeepAlive() async throws {
        // 3 s, not 1: the idle timer runs from the accept, and a loaded box (the heavy suites run
        // beside this one) once took over a second to read the request, so it was closed unanswered.
        try await withReplica({ $0.server.idleTimeoutSeconds = 3 }) { replica, _ in
            let client = TestRedis.uniqueClient("idle")
            let ex = try await RawHTTP.exchange(port: replica.port, RawHTTP.post("/v1/chat/completions", Self.chat, headers: ["X-Client-ID: \(client.rawValue)"]), waitForClose: 15)
            #expect(ex.response.hasPrefix("HTTP/1.1 200"), "\(ex.response.prefix(300))")
            #expect(ex.closedByServer, "the keep-alive connection is closed once idle for 3 s")
        }
    }

    @Test("without a timeout set, the default keeps an idle connection open for a while (not forever: 60 s)")
    func defaultKeepsIdleOpen() async throws {
        #expect(TollgateConfig().server.idleTimeoutSeconds == 60)
        try await withReplica { replica, _ in
            let client = TestRedis.uniqueClient("idle")
            let ex = try await RawHTTP.exchange(port: replica.port, RawHTTP.post("/v1/chat/completions", Self.chat, headers: ["X-Client-ID: \(client.rawValue)"]), waitForClose: 8)
            #expect(ex.response.hasPrefix("HTTP/1.1 200"), "\(ex.response.prefix(300))")
            #expect(!ex.closedByServer, "a keep-alive client may send its next request")
        }
    }

    @Test("a client that half-closes after its request gets the whole answer, is charged once, and the connection closes")
    func halfClosed() async throws {
        try await withReplica { replica, mock in
            let client = TestRedis.uniqueClient("half")
            let ex = try await RawHTTP.exchange(
                port: replica.port, RawHTTP.post("/v1/chat/completions", Self.chat, headers: ["X-Client-ID: \(client.rawValue)"]),
                shutdownWrite: true, waitForClose: 15)
            // An interim 100 Continue may come first (the probe that tells a half-close from a hang-up).
            let final = ex.response.replacingOccurrences(of: "HTTP/1.1 100 Continue\r\n\r\n", with: "")
            #expect(final.hasPrefix("HTTP/1.1 200"), "\(ex.response.prefix(300))")
            let body = final.range(of: "\r\n\r\n").map { String(final[$0.upperBound...]) } ?? ""
            let json = try JSONValue.parse(body)
            let usage = try #require(ProxyRoute.chatCompletions.usage(inResponse: json), "the whole answer: \(body)")
            #expect(ex.closedByServer, "closed after the answer: the client has nothing more to send")
            #expect(mock.recorder.count == 1, "forwarded once")
            _ = try await eventually { try await day(client)["requests"] == "1" }
            let h = try await day(client)
            let price = try #require(bundledPrices.price(for: "gpt-4o-mini"))
            #expect(h["requests"] == "1")
            #expect(h["spent"] == String(price.cost(of: usage).value), "charged once, for the answer it got")
            #expect(h["reserved"] == "0")
        }
    }

    @Test("HTTP/1.0 without keep-alive is answered as HTTP/1.0 and the connection is closed")
    func http10Close() async throws {
        try await withReplica { replica, _ in
            let client = TestRedis.uniqueClient("h10")
            let ex = try await RawHTTP.exchange(
                port: replica.port, RawHTTP.post("/v1/chat/completions", Self.chat, version: "HTTP/1.0", headers: ["X-Client-ID: \(client.rawValue)"]),
                waitForClose: 10)
            #expect(ex.response.hasPrefix("HTTP/1.0 200"), "\(ex.response.prefix(300))")
            #expect(ex.response.lowercased().contains("connection: close"))
            #expect(ex.closedByServer)
        }
    }

    @Test("HTTP/1.0 with Connection: keep-alive stays open after a response with a length")
    func http10KeepAlive() async throws {
        try await withReplica { replica, _ in
            let client = TestRedis.uniqueClient("h10k")
            let ex = try await RawHTTP.exchange(
                port: replica.port,
                RawHTTP.post("/v1/chat/completions", Self.chat, version: "HTTP/1.0", headers: ["X-Client-ID: \(client.rawValue)", "Connection: keep-alive"]),
                // Long enough for the answer on a loaded machine; the server must not close by then.
                waitForClose: 6)
            #expect(ex.response.hasPrefix("HTTP/1.0 200"), "\(ex.response.prefix(300))")
            #expect(ex.response.lowercased().contains("connection: keep-alive"))
            #expect(!ex.closedByServer)
        }
    }

    @Test("an HTTP/1.0 stream (no length, no chunking) ends by closing the connection")
    func http10Stream() async throws {
        try await withReplica { replica, _ in
            let client = TestRedis.uniqueClient("h10s")
            let body = #"{"model":"gpt-4o-mini","stream":true,"max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#
            let ex = try await RawHTTP.exchange(
                port: replica.port,
                RawHTTP.post("/v1/chat/completions", body, version: "HTTP/1.0", headers: ["X-Client-ID: \(client.rawValue)", "Connection: keep-alive"]),
                waitForClose: 10)
            #expect(ex.response.hasPrefix("HTTP/1.0 200"), "\(ex.response.prefix(300))")
            #expect(!ex.response.lowercased().contains("transfer-encoding: chunked"))
            #expect(ex.response.contains("data: [DONE]"))
            #expect(ex.closedByServer)
        }
    }

    @Test("a body over server.max_body_bytes is a 413 that names the setting; nothing is read past the declared length")
    func bodyLimitNamed() async throws {
        try await withReplica({ $0.server.maxBodyBytes = 4096 }) { replica, mock in
            let big = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":""# + String(repeating: "a", count: 5000) + #""}]}"#
            let reply = await TestClient.shared.post(replica.baseURL + "/v1/chat/completions", big, headers: [("X-Client-ID", "edge-limit")])
            #expect(reply.status == 413)
            let message = reply.json?["error"]?["message"]?.string ?? ""
            #expect(message.contains("server.max_body_bytes"), "\(message)")
            #expect(message.contains("4096 bytes"), "\(message)")
            #expect(mock.recorder.count == 0)
        }
    }
}
