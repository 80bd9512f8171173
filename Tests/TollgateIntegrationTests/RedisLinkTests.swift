import NIOCore
import NIOPosix
import Testing
import TollgateCore
@testable import TollgateRedis

/// The connection's bookkeeping of replies, against the real test Redis.
@Suite("Redis connection on real Redis", .timeLimit(.minutes(1)))
struct RedisLinkTests {
    /// hiredis's encoder, except that it refuses any command carrying `unencodable` (hiredis
    /// itself refuses only out of memory or past 2 GiB, which a test cannot afford).
    static func connection() -> RedisConnection {
        RedisConnection(endpoint: TestRedis.endpoint, timeoutMilliseconds: 2_000, scripts: [], logger: TestRedis.logger,
                        group: .singleton, encode: { args, buffer in
                            args.contains("unencodable") ? false : RedisWire.write(args, into: &buffer)
                        })
    }

    @Test("a command that cannot be encoded fails alone, as not sent, and every later reply reaches its own caller")
    func unencodableCommand() async throws {
        let connection = Self.connection()
        defer { connection.shutdown() }
        #expect(try await connection.call(.command(["ECHO", "before"])).string == "before")
        let error = await #expect(throws: RedisError.self) { _ = try await connection.call(.command(["ECHO", "unencodable"])) }
        guard case .unavailable? = error else { Issue.record("expected unavailable (not sent), got \(String(describing: error))"); return }
        #expect(try await connection.call(.command(["ECHO", "after"])).string == "after")
        // Many at once, the unencodable ones among them: each caller gets its own reply.
        let replies = try await withThrowingTaskGroup(of: (Int, String?).self) { group in
            for i in 0..<60 {
                group.addTask {
                    if i % 3 == 0 { return (i, try? await connection.call(.command(["ECHO", "unencodable"])).string) }
                    return (i, try await connection.call(.command(["ECHO", "m\(i)"])).string)
                }
            }
            return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
        for i in 0..<60 { #expect(replies[i] == (i % 3 == 0 ? nil : "m\(i)"), "caller \(i)") }
    }

    @Test("a caller driven by callbacks gets its own reply on its own loop, and an unencodable command fails alone")
    func byCallback() async throws {
        let connection = Self.connection()
        defer { connection.shutdown() }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let words = ["one", "unencodable", "three"]
        let replies: [String: (reply: String, onLoop: Bool)] = await withCheckedContinuation { done in
            loop.execute {
                let got = NIOLoopBoundBox([String: (reply: String, onLoop: Bool)](), eventLoop: loop)
                for word in words {
                    connection.send(.command(["ECHO", word])) { reply in
                        let text: String
                        switch reply {
                        case .success(let r): text = r.string ?? "\(r)"
                        case .failure(let e): text = (e as? RedisError).map { if case .unavailable = $0 { "not sent" } else { "\($0)" } } ?? "\(e)"
                        }
                        got.value[word] = (text, loop.inEventLoop)
                        if got.value.count == words.count { done.resume(returning: got.value) }
                    }
                }
            }
        }
        #expect(replies["one"]?.reply == "one")
        #expect(replies["three"]?.reply == "three")
        #expect(replies["unencodable"]?.reply == "not sent")
        #expect(replies.values.allSatisfy { $0.onLoop }, "every callback ran on the caller's loop")
    }

    @Test("hiredis encodes a command byte for byte as RESP")
    func encoding() {
        var buffer = ByteBuffer()
        #expect(RedisWire.write(["SET", "k", ""], into: &buffer))
        #expect(buffer.readString(length: buffer.readableBytes) == "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n")
    }
}
