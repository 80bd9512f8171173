import CHiredis

/// A Redis reply, copied out of hiredis memory.
public enum RedisReply: Sendable, Equatable {
    case status(String)
    case error(String)
    case integer(Int64)
    case bulk([UInt8]?)
    case array([RedisReply]?)

    init(_ r: UnsafeMutablePointer<redisReply>) {
        let reply = r.pointee
        switch reply.type {
        case REDIS_REPLY_STRING:
            self = .bulk(Array(UnsafeRawBufferPointer(start: reply.str, count: Int(reply.len))))
        case REDIS_REPLY_ARRAY:
            self = .array((0..<Int(reply.elements)).map { RedisReply(reply.element[$0]!) })
        case REDIS_REPLY_INTEGER:
            self = .integer(Int64(reply.integer))
        case REDIS_REPLY_STATUS:
            self = .status(String(cString: reply.str))
        case REDIS_REPLY_ERROR:
            self = .error(String(cString: reply.str))
        default:
            self = .bulk(nil)
        }
    }

    public var int: Int64? {
        switch self {
        case .integer(let v): return v
        case .bulk(let b?): return Int64(String(decoding: b, as: UTF8.self))
        default: return nil
        }
    }
    public var string: String? {
        switch self {
        case .bulk(let b?): return String(decoding: b, as: UTF8.self)
        case .status(let s): return s
        case .integer(let v): return String(v)
        default: return nil
        }
    }
    public var array: [RedisReply]? {
        if case .array(let a?) = self { return a }
        return nil
    }
    /// HGETALL-style flat field/value list as a dictionary.
    public var hash: [String: String] {
        guard let items = array else { return [:] }
        var out: [String: String] = [:]
        var i = 0
        while i + 1 < items.count {
            if let k = items[i].string, let v = items[i + 1].string { out[k] = v }
            i += 2
        }
        return out
    }
}

/// Why a Redis call failed. The difference between the first two cases matters for money:
/// a command that was never sent certainly did not run; one whose reply was lost may have.
public enum RedisError: Error, Equatable, CustomStringConvertible {
    /// Not sent: no connection (Redis down, connecting, or backing off).
    case unavailable(String)
    /// Sent, but the connection broke or timed out before the reply: it may or may not have run.
    case unknownOutcome(String)
    /// Redis answered with an error reply.
    case server(String)
    /// Redis, or the TLS in front of it, refused Tollgate's login or setup: a password, user,
    /// permission, database or certificate setting must change. The message names it.
    case misconfigured(String)
    /// The reply did not have the shape the caller expects (a script contract mismatch).
    case unexpectedReply(String)

    public var description: String {
        switch self {
        case .unavailable(let why): return "Redis unavailable: \(why)"
        case .unknownOutcome(let why): return "Redis connection lost before the reply: \(why)"
        case .server(let message): return "Redis error: \(message)"
        case .misconfigured(let why): return "Redis connection misconfigured: \(why)"
        case .unexpectedReply(let what): return "unexpected Redis reply: \(what)"
        }
    }
}
