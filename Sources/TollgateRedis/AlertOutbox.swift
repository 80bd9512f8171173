import TollgateCore

/// The Redis side of alert delivery. The scripts append crossings to each client's outbox stream
/// (`tollgate:{C}:alerts`); senders in every replica share one consumer group on it, so each
/// entry is handed to one replica, and an entry a crashed replica took is claimed by another.
///
/// Where senders look: `tollgate:alerts:pending` (a zset of clients whose outbox got entries,
/// written after the script by the replica that fired them) and, as a safety net, a SCAN for
/// outbox streams (`rescan`), which finds what a replica crashed before indexing.
public struct AlertOutbox: Sendable {
    public let redis: RedisConnection
    public static let group = "tollgate-senders"

    public init(redis: RedisConnection) { self.redis = redis }

    /// One outbox entry taken by this sender.
    public struct Entry: Sendable {
        public var client: ClientID
        public var id: String
        /// nil when the fields do not parse (written by something else): acknowledged and dropped.
        public var alert: BudgetAlert?
        /// The sinks that already have it (a retry after a crash skips them).
        public var delivered: Set<String>
        /// Taken over from a sender that left it idle, not new from the scripts.
        public var claimed: Bool
    }

    /// Takes up to `count` clients off the pending index. ZPOPMIN hands each to one sender.
    public func popPending(count: Int) async throws -> [ClientID] {
        let reply = try await redis.call(.command(["ZPOPMIN", SharedRedisKeys.alertsPending, String(count)]))
        let flat = reply.array ?? []
        return stride(from: 0, to: flat.count, by: 2).compactMap { flat[$0].string.flatMap(ClientID.init) }
    }

    /// Puts every client with a non-empty outbox back on the index. SCAN with a cursor, never KEYS.
    public func rescan() async throws {
        for k in try await redis.scan(match: "\(RedisKeys.namespace):{*}:alerts", type: "stream") {
            guard let open = k.firstIndex(of: "{"), let close = k.lastIndex(of: "}"), open < close,
                  let client = ClientID(String(k[k.index(after: open)..<close])) else { continue }
            redis.post(.command(["ZADD", SharedRedisKeys.alertsPending, "NX", "0", client.rawValue]))
        }
    }

    /// New entries for `consumer`, plus entries another consumer took and left idle for
    /// `claimIdleMilliseconds` (its replica died mid-delivery).
    public func take(_ client: ClientID, consumer: String, count: Int, claimIdleMilliseconds: Int) async throws -> [Entry] {
        let key = RedisKeys(client).alerts
        // The group starts at 0, so entries written before it existed are delivered too.
        if case .error(let message) = try await redis.send(.command(["XGROUP", "CREATE", key, Self.group, "0", "MKSTREAM"])),
           !message.hasPrefix("BUSYGROUP") {
            throw RedisError.server(message)
        }
        let claimed = try await redis.call(.command(["XAUTOCLAIM", key, Self.group, consumer, String(claimIdleMilliseconds), "0-0",
                                                     "COUNT", String(count)]))
        let fresh = try await redis.call(.command(["XREADGROUP", "GROUP", Self.group, consumer, "COUNT", String(count),
                                                   "STREAMS", key, ">"]))
        // XAUTOCLAIM: [next cursor, [[id, [field, value, …]], …], deleted ids];
        // XREADGROUP: [[key, [[id, [field, value, …]], …]]], or nil when there is nothing new.
        let raw = (claimed.array?.dropFirst().first?.array ?? []).map { ($0, true) }
            + (fresh.array?.first?.array?.dropFirst().first?.array ?? []).map { ($0, false) }
        var entries: [Entry] = []
        for (item, wasClaimed) in raw {
            guard let pair = item.array, pair.count == 2, let id = pair[0].string else { continue }
            let flat = pair[1].array ?? []
            var fields: [String: String] = [:]
            for i in stride(from: 0, to: flat.count - 1, by: 2) {
                if let f = flat[i].string, let v = flat[i + 1].string { fields[f] = v }
            }
            entries.append(Entry(client: client, id: id, alert: BudgetAlert(streamFields: fields), delivered: [], claimed: wasClaimed))
        }
        guard !entries.isEmpty else { return [] }
        let done = try await redis.call(.command(["HMGET", sentKey(client)] + entries.map(\.id)))
        for (i, value) in (done.array ?? []).enumerated() where i < entries.count {
            entries[i].delivered = Set((value.string ?? "").split(separator: ",").map(String.init))
        }
        return entries
    }

    /// Records that `sinks` have the entry, so a sender that takes it over after a crash skips them.
    public func markDelivered(_ entry: Entry, sinks: Set<String>) async throws {
        _ = try await redis.call(.command(["HSET", sentKey(entry.client), entry.id, sinks.sorted().joined(separator: ",")]))
        _ = try await redis.call(.command(["EXPIRE", sentKey(entry.client), "604800"]))
    }

    /// Keeps an entry this sender is still retrying from looking abandoned to the others.
    public func touch(_ entry: Entry, consumer: String) async throws {
        _ = try await redis.call(.command(["XCLAIM", RedisKeys(entry.client).alerts, Self.group, consumer, "0", entry.id, "JUSTID"]))
    }

    /// Done with an entry (delivered everywhere, or given up): out of the outbox, and its JSON
    /// onto the recent list the dashboard shows.
    public func finish(_ entry: Entry, recentLength: Int = 100) async throws {
        let key = RedisKeys(entry.client).alerts
        _ = try await redis.call(.command(["XACK", key, Self.group, entry.id]))
        _ = try await redis.call(.command(["XDEL", key, entry.id]))
        _ = try await redis.call(.command(["HDEL", sentKey(entry.client), entry.id]))
        if let alert = entry.alert {
            _ = try await redis.call(.command(["LPUSH", SharedRedisKeys.alertsRecent, alert.json]))
            _ = try await redis.call(.command(["LTRIM", SharedRedisKeys.alertsRecent, "0", String(recentLength - 1)]))
        }
    }

    private func sentKey(_ client: ClientID) -> String { RedisKeys(client).alerts + ":sent" }
}
