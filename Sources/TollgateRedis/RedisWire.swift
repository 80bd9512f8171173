import CHiredis
import NIOCore

/// hiredis's I/O-free protocol layer: it encodes commands and decodes replies from bytes we
/// hand it, so the socket itself can belong to a NIO event loop.
enum RedisWire {
    /// Appends one command in RESP, encoded by `redisFormatCommandArgv` (binary-safe: lengths
    /// are passed, the arguments need no NUL terminator). False when hiredis cannot encode it
    /// (out of memory, or a command over 2 GiB, whose length overflows its `int`); then nothing
    /// was appended.
    static func write(_ args: [String], into buffer: inout ByteBuffer) -> Bool {
        var bytes: [UInt8] = []
        var lengths: [Int] = []
        lengths.reserveCapacity(args.count)
        for arg in args {
            bytes.append(contentsOf: arg.utf8)
            lengths.append(arg.utf8.count)
        }
        // hiredis sums the encoded length in an `int`: past 2 GiB it would overflow, not fail.
        guard bytes.count + 32 * (args.count + 1) < Int(Int32.max) else { return false }
        bytes.append(0) // a valid base address even when every argument is empty
        return bytes.withUnsafeBufferPointer { all in
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
            guard count > 0, let encoded else { return false }
            buffer.writeBytes(UnsafeRawBufferPointer(start: encoded, count: Int(count)))
            redisFreeCommand(encoded)
            return true
        }
    }
}

/// Decodes replies from a byte stream, any number per feed. Owned by one event loop.
/// `package`: the fuzz target `redis-reply` (TollgateFuzzChecks) feeds it arbitrary bytes.
package final class RedisReplyReader {
    private let reader: UnsafeMutablePointer<redisReader>

    /// The most elements one array reply may declare. hiredis 0.14 allocates an array's element
    /// table as soon as it reads the header, so `*2147483647` made it ask for 16 GiB at once
    /// (found by `make fuzz`, redis-reply target). Tollgate's largest replies (a day hash's
    /// HGETALL, a SCAN page, CLUSTER SLOTS) are far below this; a larger one is a protocol error.
    package static let maxArrayElements: Int32 = 1 << 20

    package init() {
        reader = redisReaderCreate()
        reader.pointee.fn = Self.boundedFunctions
    }
    deinit { redisReaderFree(reader) }

    /// hiredis's own reply constructors, read once from a throw-away reader (its table is
    /// static in hiredis.c). Immutable after initialisation (swift_once), hence `unsafe`.
    nonisolated(unsafe) private static let hiredisFunctions: redisReplyObjectFunctions = {
        let probe = redisReaderCreate()!
        defer { redisReaderFree(probe) }
        return probe.pointee.fn.pointee
    }()

    /// The same, with `createArray` refusing oversized arrays (a nil object makes hiredis fail the
    /// read with "Out of memory", which `next()` throws). Allocated once, never freed or written again.
    nonisolated(unsafe) private static let boundedFunctions: UnsafeMutablePointer<redisReplyObjectFunctions> = {
        var bounded = hiredisFunctions
        bounded.createArray = { task, elements in
            elements > RedisReplyReader.maxArrayElements ? nil : RedisReplyReader.hiredisFunctions.createArray?(task, elements)
        }
        let functions = UnsafeMutablePointer<redisReplyObjectFunctions>.allocate(capacity: 1)
        functions.initialize(to: bounded)
        return functions
    }()

    /// Takes bytes as they arrived from the socket.
    package func feed(_ buffer: ByteBuffer) {
        buffer.withUnsafeReadableBytes { bytes in
            guard let base = bytes.baseAddress, bytes.count > 0 else { return }
            _ = redisReaderFeed(reader, base.assumingMemoryBound(to: CChar.self), bytes.count)
        }
    }

    /// The next complete reply; nil when more bytes are needed. Throws on a protocol error
    /// (the stream is then unusable).
    package func next() throws -> RedisReply? {
        var raw: UnsafeMutableRawPointer?
        guard redisReaderGetReply(reader, &raw) == REDIS_OK else {
            throw RedisError.unknownOutcome("Redis protocol error")
        }
        guard let raw else { return nil }
        defer { freeReplyObject(raw) }
        return RedisReply(raw.assumingMemoryBound(to: redisReply.self))
    }
}
