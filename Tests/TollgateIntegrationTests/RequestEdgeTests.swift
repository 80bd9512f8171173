import Foundation
import Testing
import TollgateCore
import TollgateMockProvider
import TollgateRedis

/// What a black-box probe found at the HTTP edge (issue "Production Redis and hardening", item 9).
@Suite("request edges", .timeLimit(.minutes(2)))
struct RequestEdgeTests {
    static let chat = #"{"model":"gpt-4o-mini","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#

    @Test("a doubled slash or a trailing slash reaches the route, and the provider gets the canonical path")
    func canonicalPath() async throws {
        let mock = try await MockProvider.start()
        let replica = try await Replica.start(upstream: mock.baseURL)
        defer { Task { await replica.stop(); await mock.stop() } }
        for path in ["//v1/chat/completions", "/v1/chat/completions/", "/v1//chat/completions"] {
            let reply = await TestClient.shared.post(replica.baseURL + path, Self.chat, headers: [("X-Client-ID", "edge-path")])
            #expect(reply.status == 200, "\(path): \(reply.text)")
        }
        #expect(mock.recorder.requests().map(\.path) == Array(repeating: "/v1/chat/completions", count: 3))
    }

    @Test("a malformed chunked body is a 400 in the OpenAI shape, not a 413; nothing is reserved or forwarded")
    func malformedChunked() async throws {
        let mock = try await MockProvider.start()
        let replica = try await Replica.start(upstream: mock.baseURL)
        defer { Task { await replica.stop(); await mock.stop() } }
        let client = TestRedis.uniqueClient("chunk")
        // A chunk size that is not hexadecimal, on a raw socket (no HTTP client sends this).
        let script = """
            import socket, sys
            s = socket.create_connection(("127.0.0.1", \(replica.port)))
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\\r\\nHost: x\\r\\nContent-Type: application/json\\r\\n"
                      b"X-Client-ID: \(client.rawValue)\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\nZZ\\r\\n{}\\r\\n0\\r\\n\\r\\n")
            s.settimeout(10)
            data = b""
            try:
                while b"\\r\\n\\r\\n" not in data or len(data) < 20:
                    part = s.recv(65536)
                    if not part: break
                    data += part
                s.settimeout(1)
                while True:
                    part = s.recv(65536)
                    if not part: break
                    data += part
            except socket.timeout:
                pass
            sys.stdout.write(data.decode("utf-8", "replace"))
            """
        let (status, output) = try await ChildProcess.run("python3", ["-c", script])
        #expect(status == 0, "\(output)")
        #expect(output.hasPrefix("HTTP/1.1 400"), "\(output)")
        let body = output.range(of: "\r\n\r\n").map { String(output[$0.upperBound...]) } ?? ""
        let brace = try #require(body.firstIndex(of: "{"), "a JSON error body: \(output)")
        let json = try JSONValue.parse(Array(body[brace...].utf8))
        #expect(json["error"]?["type"]?.string == "invalid_request_error")
        #expect(json["error"]?["message"]?.string?.contains("could not be read") == true, "\(body)")
        #expect(mock.recorder.count == 0, "nothing forwarded")
        let leases = try await TestRedis.shared.call(.command(["ZCARD", RedisKeys(client).leases])).int
        #expect(leases == 0, "nothing reserved")
    }

    @Test("a body over the limit is still a 413 that names the limit")
    func tooLarge() async throws {
        let replica = try await Replica.start(upstream: "http://127.0.0.1:1")
        defer { Task { await replica.stop() } }
        let big = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":""# + String(repeating: "a", count: 65 << 20) + #""}]}"#
        let reply = await TestClient.shared.post(replica.baseURL + "/v1/chat/completions", big, headers: [("X-Client-ID", "edge-big")])
        #expect(reply.status == 413, "\(reply.text.prefix(200))")
        #expect(reply.json?["error"]?["type"]?.string == "invalid_request_error")
    }
}
