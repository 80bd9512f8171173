import TollgateCore

/// Virtual keys in Redis (docs/redis.md):
///   `tollgate:key:<sha256>`  hash id, client_id, name, created_at — looked up per request
///   `tollgate:keys`          hash id → "<sha256>|client|created_at|name" — for listing and revoking
/// Writes are ordered so a failure half-way is harmless: a key becomes usable last and unusable first.
public struct VirtualKeyStore: Sendable {
    public let redis: RedisConnection
    public init(redis: RedisConnection) { self.redis = redis }

    static let index = "\(RedisKeys.namespace):keys"
    static func entry(_ hash: String) -> String { "\(RedisKeys.namespace):key:\(hash)" }

    public struct Info: Sendable, Equatable {
        public var id: String
        public var client: ClientID
        public var name: String
        public var createdAt: UnixTime
    }

    /// Returns the secret; it is shown once and never stored.
    public func create(client: ClientID, name: String) async throws -> (info: Info, secret: String) {
        let (id, secret) = VirtualKey.generate()
        let hash = VirtualKey.hash(secret)
        let now = try await redis.call(.command(["TIME"])).array?.first?.int ?? 0
        let info = Info(id: id, client: client, name: name, createdAt: UnixTime(seconds: now))
        _ = try await redis.call(.command(["HSET", Self.index, id, "\(hash)|\(client.rawValue)|\(now)|\(name)"]))
        _ = try await redis.call(.command(["HSET", Self.entry(hash), "id", id, "client_id", client.rawValue, "name", name, "created_at", String(now)]))
        return (info, secret)
    }

    public func list(client: ClientID? = nil) async throws -> [Info] {
        let all = try await redis.call(.command(["HGETALL", Self.index])).hash
        return all.compactMap { id, value -> Info? in
            let parts = value.split(separator: "|", maxSplits: 3, omittingEmptySubsequences: false)
            guard parts.count == 4, let c = ClientID(String(parts[1])), client == nil || client == c else { return nil }
            return Info(id: id, client: c, name: String(parts[3]), createdAt: UnixTime(seconds: Int64(parts[2]) ?? 0))
        }.sorted { ($0.createdAt.seconds, $0.id) < ($1.createdAt.seconds, $1.id) }
    }

    /// False when no such key id exists.
    public func revoke(id: String) async throws -> Bool {
        guard let value = try await redis.call(.command(["HGET", Self.index, id])).string else { return false }
        let hash = String(value.prefix(while: { $0 != "|" }))
        _ = try await redis.call(.command(["DEL", Self.entry(hash)]))
        _ = try await redis.call(.command(["HDEL", Self.index, id]))
        return true
    }

    /// The client a presented key belongs to; nil when unknown or revoked.
    public func client(forSecret secret: String) async throws -> ClientID? {
        guard VirtualKey.looksLikeKey(secret) else { return nil }
        let reply = try await redis.call(.command(["HGET", Self.entry(VirtualKey.hash(secret)), "client_id"]))
        return reply.string.flatMap(ClientID.init)
    }
}
