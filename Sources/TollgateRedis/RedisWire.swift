import CHiredis
import NIOCore

/// hiredis's I/O-free protocol layer: it encodes commands and decodes replies from bytes we
/// hand it, so the socket itself can belong to a NIO event loop.
enum RedisWire {
    /// Appends one command in RESP, encoded by `redisFormatCommandArgv` (binary-safe: lengths
    /// are passed, the arguments need no NUL terminator).
    static func write(_ args: [String], into buffer: inout ByteBuffer) {
        var bytes: [UInt8] = []
        var lengths: [Int] = []
        lengths.reserveCapacity(args.count)
        for arg in args {
            bytes.append(contentsOf: arg.utf8)
            lengths.append(arg.utf8.count)
        }
        bytes.append(0) // a valid base address even when every argument is empty
        bytes.withUnsafeBufferPointer { all in
            let base = UnsafeRawPointer(all.baseAddress!).assumingMemoryBound(to: CChar.self)
            var pointers: [UnsafePointer<CChar>?] = []
            pointers.reserveCapacity(args.count)
            var offset = 0
            for length in lengths {
                pointers.append(base + offset)
                offset += length
            }
            var encoded: UnsafeMutablePointer<CChar>?
            let count = redisFormatCommandArgv(&encoded, Int32(args.count), &pointers, lengths)
            guard count > 0, let encoded else { return }
            buffer.writeBytes(UnsafeRawBufferPointer(start: encoded, count: Int(count)))
            redisFreeCommand(encoded)
        }
    }
}

/// Decodes replies from a byte stream, any number per feed. Owned by one event loop.
final class RedisReplyReader {
    private let reader: UnsafeMutablePointer<redisReader>

    init() { reader = redisReaderCreate() }
    deinit { redisReaderFree(reader) }

    /// Takes bytes as they arrived from the socket.
    func feed(_ buffer: ByteBuffer) {
        buffer.withUnsafeReadableBytes { bytes in
            guard let base = bytes.baseAddress, bytes.count > 0 else { return }
            _ = redisReaderFeed(reader, base.assumingMemoryBound(to: CChar.self), bytes.count)
        }
    }

    /// The next complete reply; nil when more bytes are needed. Throws on a protocol error
    /// (the stream is then unusable).
    func next() throws -> RedisReply? {
        var raw: UnsafeMutableRawPointer?
        guard redisReaderGetReply(reader, &raw) == REDIS_OK else {
            throw RedisError.unknownOutcome("Redis protocol error")
        }
        guard let raw else { return nil }
        defer { freeReplyObject(raw) }
        return RedisReply(raw.assumingMemoryBound(to: redisReply.self))
    }
}
