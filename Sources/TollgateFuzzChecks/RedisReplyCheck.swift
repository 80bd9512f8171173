import NIOCore
import TollgateRedis

/// Target `redis-reply`: Tollgate's reply reader (hiredis's reader plus our conversion to
/// `RedisReply`), the path every byte from Redis takes. Invariants: arbitrary bytes give replies
/// or a protocol error, never a crash, the same however they are split; and a valid reply,
/// built from the bytes and encoded in RESP, reads back as itself.
enum RedisReplyCheck {
    static func check(_ bytes: [UInt8]) throws(InvariantViolation) {
        let whole = read(bytes, chunkSize: bytes.count)
        let split = read(bytes, chunkSize: 1 + Int(fnv1a(bytes) % 7))
        try expect(whole == split, "split reads \(split), whole reads \(whole)")
        for reply in whole.replies { touch(reply) }

        var source = bytes[...]
        let built = buildReply(from: &source, depth: 0)
        let encoded = encode(built)
        let back = read(encoded, chunkSize: max(1, encoded.count / 3))
        try expect(back == Reading(replies: [built], failed: false), "\(built) encoded as \(encoded) reads back as \(back)")
    }

    struct Reading: Equatable, CustomStringConvertible {
        var replies: [RedisReply]
        var failed: Bool
        var description: String { "\(replies)\(failed ? " then a protocol error" : "")" }
    }

    /// Feeds the bytes in chunks of `chunkSize`, taking every complete reply after each.
    static func read(_ bytes: [UInt8], chunkSize: Int) -> Reading {
        let reader = RedisReplyReader()
        var reading = Reading(replies: [], failed: false)
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + max(1, chunkSize))
            reader.feed(ByteBuffer(bytes: bytes[offset..<end]))
            offset = end
            do {
                while let reply = try reader.next() { reading.replies.append(reply) }
            } catch {
                reading.failed = true // the stream is unusable after a protocol error
                return reading
            }
        }
        return reading
    }

    /// The accessors callers use on replies of any shape.
    static func touch(_ reply: RedisReply) {
        _ = (reply.int, reply.string, reply.hash)
        for element in reply.array ?? [] { touch(element) }
    }

    /// hiredis 0.14 reads at most 7 nested arrays (its task stack has 9 slots).
    static let maxDepth = 7

    /// A reply of every kind the reader can return, as the bytes direct. Status and error
    /// texts are printable ASCII (RESP simple strings cannot hold CR or LF, and hiredis hands
    /// them over as C strings); a nil array reads back as a nil bulk, so none is built.
    static func buildReply(from source: inout ArraySlice<UInt8>, depth: Int) -> RedisReply {
        guard let kind = source.popFirst() else { return .bulk(nil) }
        func text() -> String {
            let length = Int(source.popFirst() ?? 0) % 32
            let taken = source.prefix(length)
            source = source.dropFirst(length)
            return String(decoding: taken.map { 0x20 + $0 % 0x5F }, as: UTF8.self)
        }
        switch kind % 6 {
        case 0: return .status(text())
        case 1: return .error(text())
        case 2:
            var value: Int64 = 0
            for byte in source.prefix(8) { value = value << 8 | Int64(byte) }
            source = source.dropFirst(8)
            return .integer(value)
        case 3:
            let length = Int(source.popFirst() ?? 0)
            let taken = Array(source.prefix(length))
            source = source.dropFirst(length)
            return .bulk(taken)
        case 4: return .bulk(nil)
        default:
            guard depth < maxDepth else { return .bulk([]) }
            let count = Int(source.popFirst() ?? 0) % 5
            return .array((0..<count).map { _ in buildReply(from: &source, depth: depth + 1) })
        }
    }

    /// RESP2, as a Redis server writes it.
    static func encode(_ reply: RedisReply) -> [UInt8] {
        func line(_ prefix: String, _ text: String) -> [UInt8] { Array((prefix + text + "\r\n").utf8) }
        switch reply {
        case .status(let s): return line("+", s)
        case .error(let s): return line("-", s)
        case .integer(let v): return line(":", String(v))
        case .bulk(nil): return line("$", "-1")
        case .bulk(let b?): return line("$", String(b.count)) + b + Array("\r\n".utf8)
        case .array(nil): return line("*", "-1")
        case .array(let elements?): return line("*", String(elements.count)) + elements.flatMap(encode)
        }
    }
}
