/// How Tollgate finds its Redis: one server (`redis.url`), a Redis Cluster found from seed nodes,
/// or a master named by Sentinel. In every mode `redis.url` still says how to log in (user,
/// password, `rediss://` for TLS); in cluster and sentinel modes its host and port are unused.
public enum RedisTopology: Sendable, Equatable {
    case single
    /// Any reachable seed answers CLUSTER SLOTS; the rest of the cluster is learned from it.
    case cluster(seeds: [RedisAddress])
    /// The sentinels are asked, in order, where `master` is.
    case sentinel(RedisSentinels)
}

public struct RedisSentinels: Sendable, Equatable {
    public var addresses: [RedisAddress]
    /// The name the sentinels monitor the master under (`sentinel monitor NAME …`).
    public var master: String
    /// Sentinel's own login (`requirepass` / an ACL user in sentinel.conf), when it has one.
    public var username: String?
    public var password: RedisPassword?

    public init(addresses: [RedisAddress], master: String, username: String? = nil, password: RedisPassword? = nil) {
        self.addresses = addresses
        self.master = master
        self.username = username
        self.password = password
    }
}

/// `host:port`, or `[v6 address]:port`.
public struct RedisAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, !host.contains(where: { $0.isWhitespace || $0 == "/" }) else { return nil }
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

extension RedisEndpoint {
    /// The same login, database and TLS at another address (a cluster node, the sentinels' master).
    public func at(_ address: RedisAddress) -> RedisEndpoint {
        var copy = self
        copy.host = address.host
        copy.port = address.port
        return copy
    }
}
