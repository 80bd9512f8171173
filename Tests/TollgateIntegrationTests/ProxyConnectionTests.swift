import Foundation
import Testing
import TollgateCore
import TollgateMockProvider
import TollgateRedis

/// The proxy listener's own connection handling (`ProxyConnection`, issue 13): requests on one
/// connection are answered one by one, in order; what it cannot parse, or does not read, never
/// leaves a connection in a wrong state. Raw sockets, for what HTTP clients rarely send.
@Suite("proxy listener connections", .timeLimit(.minutes(3)))
struct ProxyConnectionTests {
    static let chat = #"{"model":"gpt-4o-mini","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#

    func withReplica(_ body: (Replica, RunningMockProvider) async throws -> Void) async throws {
        let mock = try await MockProvider.start()
        let replica = try await Replica.start(upstream: mock.baseURL)
        do { try await body(replica, mock) } catch { await replica.stop(); await mock.stop(); throw error }
        await replica.stop()
        await mock.stop()
    }

    /// The status lines of the answers in `response`, in order (interim 1xx left out). An answer
    /// starts right after the body before it, which need not end with a line break.
    func statusLines(_ response: String) -> [String] {
        response.matches(of: /HTTP\/1\.1 [2-5]\d\d [A-Za-z ]+\r\n/).map { String(response[$0.range]).trimmingCharacters(in: .newlines) }
    }

    @Test("pipelined requests are answered in order, each paid request charged once; Connection: close on the last closes after its answer")
    func pipelined() async throws {
        try await withReplica { replica, mock in
            let client = TestRedis.uniqueClient("pipe")
            let paid = RawHTTP.post("/v1/chat/completions", Self.chat, headers: ["X-Client-ID: \(client.rawValue)"])
            let requests = paid + "GET /v1/nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + paid
                + "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            let ex = try await RawHTTP.exchange(port: replica.port, requests, waitForClose: 15)
            #expect(statusLines(ex.response) == ["HTTP/1.1 200 OK", "HTTP/1.1 404 Not Found", "HTTP/1.1 200 OK", "HTTP/1.1 200 OK"],
                    "\(ex.response.prefix(600))")
            #expect(ex.response.hasSuffix("\r\n\r\nok\n"), "the last answer is the health check's")
            // Only the last answer closes: the ones before it keep the connection open.
            #expect(ex.response.lowercased().components(separatedBy: "connection: close").count == 2, "\(ex.response)")
            #expect(ex.closedByServer)
            #expect(mock.recorder.count == 2)
            _ = try await eventually { try await TestRedis.hash(try await TestRedis.periodKeys(client).0)["requests"] == "2" }
            #expect(try await TestRedis.hash(try await TestRedis.periodKeys(client).0)["reserved"] == "0")
        }
    }

    @Test("a request line that cannot be parsed gets a bare 400 and the connection closes")
    func unparsableHead() async throws {
        try await withReplica { replica, mock in
            let ex = try await RawHTTP.exchange(port: replica.port, "NOT AN HTTP REQUEST\r\n\r\n", waitForClose: 10)
            #expect(ex.response.hasPrefix("HTTP/1.1 400"), "\(ex.response)")
            #expect(ex.response.lowercased().contains("connection: close"))
            #expect(ex.closedByServer)
            #expect(mock.recorder.count == 0)
        }
    }

    @Test("a body the answer never reads is read to its end and dropped; the next request on the connection is answered")
    func unreadBodyDropped() async throws {
        try await withReplica { replica, _ in
            // No route reads a POST to /healthz's body: the 404 goes out before the body is read.
            let body = String(repeating: "x", count: 100_000)
            let requests = "POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
                + "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            let ex = try await RawHTTP.exchange(port: replica.port, requests, waitForClose: 15)
            #expect(statusLines(ex.response) == ["HTTP/1.1 404 Not Found", "HTTP/1.1 200 OK"], "\(ex.response.prefix(600))")
            #expect(ex.response.hasSuffix("\r\n\r\nok\n"))
            #expect(ex.closedByServer)
        }
    }

    @Test("a client that resets its connection, idle or mid-request, is let go: nothing is answered to nobody, no reservation is left, the next client is served")
    func resetByClient() async throws {
        try await withReplica { replica, mock in
            let client = TestRedis.uniqueClient("reset")
            let paid = RawHTTP.post("/v1/chat/completions", Self.chat, headers: ["X-Client-ID: \(client.rawValue)"])
            // Answered, then reset while the connection idles between requests.
            let idle = try await RawHTTP.exchange(port: replica.port, paid, waitForClose: 30, reset: .afterAnswer)
            #expect(statusLines(idle.response) == ["HTTP/1.1 200 OK"], "\(idle.response.prefix(600))")
            // Reset once the provider holds the request (it answers after 5 s): the request is
            // cancelled, not answered.
            let slow = RawHTTP.post("/v1/chat/completions", Self.chat, headers: ["X-Client-ID: \(client.rawValue)", "X-Mock-Latency-Ms: 5000"])
            let trigger = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-reset-\(UUID().uuidString.prefix(8))").path
            defer { try? FileManager.default.removeItem(atPath: trigger) }
            async let cut = RawHTTP.exchange(port: replica.port, slow, waitForClose: 30, reset: .whenFileExists(trigger))
            #expect(try await eventually { mock.recorder.count == 2 }, "the provider has the slow request")
            FileManager.default.createFile(atPath: trigger, contents: nil)
            let cutResponse = try await cut.response
            #expect(cutResponse.isEmpty, "\(cutResponse.prefix(600))")
            let next = try await RawHTTP.exchange(port: replica.port, paid.replacingOccurrences(of: "\r\n\r\n{", with: "\r\nConnection: close\r\n\r\n{"),
                                                  waitForClose: 30)
            #expect(statusLines(next.response) == ["HTTP/1.1 200 OK"], "\(next.response.prefix(600))")
            let day = try await TestRedis.periodKeys(client).0
            #expect(try await eventually { try await TestRedis.hash(day)["reserved"] == "0" }, "no reservation is left behind")
            #expect(mock.recorder.count == 3)
        }
    }
}
