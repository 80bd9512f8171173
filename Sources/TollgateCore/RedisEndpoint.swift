import Foundation

/// Where Redis is and how to get in: `redis://[USER:PASSWORD@]HOST[:PORT][/DB]`, or `rediss://…`
/// for TLS. It prints with the password as `***` (logs, errors, `check-config`), so an endpoint
/// can be interpolated anywhere; the URL it came from must not be.
public struct RedisEndpoint: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var database: Int
    /// The ACL user (Redis 6+); nil: the `default` user.
    public var username: String?
    public var password: RedisPassword?
    /// nil: plain TCP (`redis://`).
    public var tls: RedisTLS?

    /// The URL's parts, user and password percent-decoded (a password with `@ : / # ?` must be
    /// percent-encoded in a URL). Nil when it is not such a URL.
    public init?(url: String) {
        guard let u = URLComponents(string: url), let scheme = u.scheme, ["redis", "rediss"].contains(scheme),
              let rawHost = u.host, !rawHost.isEmpty else { return nil }
        // An IPv6 literal keeps its brackets in URLComponents; getaddrinfo wants it bare.
        host = rawHost.hasPrefix("[") && rawHost.hasSuffix("]") ? String(rawHost.dropFirst().dropLast()) : rawHost
        guard (1...65535).contains(u.port ?? 6379) else { return nil }
        port = u.port ?? 6379
        let path = u.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        guard let db = path.isEmpty ? 0 : Int(path), db >= 0 else { return nil }
        database = db
        username = u.user.flatMap { $0.isEmpty ? nil : $0 }
        password = u.password.flatMap { $0.isEmpty ? nil : RedisPassword($0, source: "the password in redis.url") }
        tls = scheme == "rediss" ? RedisTLS() : nil
    }

    public var description: String {
        let user = password != nil ? (username ?? "") + ":***@" : username.map { $0 + "@" } ?? ""
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return "\(tls == nil ? "redis" : "rediss")://\(user)\(shownHost):\(port)/\(database)"
    }

    /// A URL as it may be shown even when it does not parse: whatever stands between `://` and
    /// the last `@` (user and password) becomes `***`.
    public static func redacted(_ url: String) -> String {
        guard let start = url.range(of: "://"), let at = url.range(of: "@", options: .backwards),
              at.lowerBound >= start.upperBound else { return url }
        return url[..<start.upperBound] + "***" + url[at.lowerBound...]
    }
}

/// A Redis password, and the setting it came from so that a refusal can name what to fix. It
/// never prints: `description`, `debugDescription` and `dump` all show `***`.
public struct RedisPassword: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public let value: String
    /// E.g. `redis.password_env (REDIS_PASSWORD)`.
    public let source: String

    public init(_ value: String, source: String) {
        self.value = value
        self.source = source
    }

    public var description: String { "***" }
    public var debugDescription: String { "***" }
    public var customMirror: Mirror { Mirror(self, children: ["value": "***", "source": source]) }

    /// `text` with every occurrence of the password replaced by `***`: for messages built from
    /// what a server or library said, which we do not control.
    public func scrub(_ text: String) -> String {
        value.isEmpty ? text : text.replacingOccurrences(of: value, with: "***")
    }
}

/// TLS to Redis (`rediss://`); the files are read once, when the connection is created.
public struct RedisTLS: Sendable, Equatable {
    /// PEM CA bundle that signed Redis's certificate; nil: the system's trust store.
    public var caFile: String?
    /// PEM client certificate and key, for Redis with `tls-auth-clients yes`; both or neither.
    public var certFile: String?
    public var keyFile: String?
    /// Sent as SNI and matched against the certificate; nil: the URL's host.
    public var serverName: String?
    /// Accept any certificate. Only for a test bench: anyone on the path can then pose as Redis.
    public var insecureSkipVerify = false

    public init() {}
}

extension TollgateConfig.Redis {
    /// The endpoint with the password read from `password_env` or `password_file`, which win over
    /// one in the URL. Read at start (the secret is not part of the validated config, so
    /// `check-config` works without it); a missing secret names the setting to fix.
    public func endpoint(environment: [String: String]) throws -> RedisEndpoint {
        guard var endpoint = RedisEndpoint(url: url) else {
            throw ConfigError(key: "redis.url", message: RedisEndpoint.urlRule + " (got '\(RedisEndpoint.redacted(url))')")
        }
        if let username { endpoint.username = username }
        if let variable = passwordEnv {
            guard let value = environment[variable], !value.isEmpty else {
                throw ConfigError(key: "redis.password_env", message: "names \(variable), which is not set or empty: export the Redis password in it")
            }
            endpoint.password = RedisPassword(value, source: "redis.password_env (\(variable))")
        } else if let path = passwordFile {
            guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
                throw ConfigError(key: "redis.password_file", message: "cannot read \(path): make it a readable file holding the Redis password")
            }
            // `echo secret > file` leaves a newline that is not part of the password.
            let value = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !value.isEmpty else { throw ConfigError(key: "redis.password_file", message: "\(path) is empty: put the Redis password in it") }
            endpoint.password = RedisPassword(value, source: "redis.password_file (\(path))")
        }
        if endpoint.username != nil, endpoint.password == nil {
            throw ConfigError(key: "redis.username", message: "needs a password: set redis.password_env or redis.password_file")
        }
        if endpoint.tls != nil { endpoint.tls = tls }
        return endpoint
    }
}

extension TollgateConfig.Redis {
    /// Where Redis is, with Sentinel's password read from `sentinel_password_env` (at start, like
    /// the Redis password).
    public func topology(environment: [String: String]) throws -> RedisTopology {
        switch mode {
        case .single: return .single
        case .cluster: return .cluster(seeds: clusterNodes)
        case .sentinel:
            var password: RedisPassword?
            if let variable = sentinelPasswordEnv {
                guard let value = environment[variable], !value.isEmpty else {
                    throw ConfigError(key: "redis.sentinel_password_env", message: "names \(variable), which is not set or empty: export Sentinel's password in it")
                }
                password = RedisPassword(value, source: "redis.sentinel_password_env (\(variable))")
            }
            return .sentinel(RedisSentinels(addresses: sentinels, master: sentinelMaster ?? "", username: sentinelUsername, password: password))
        }
    }
}

extension TollgateConfig.Redis {
    /// The endpoint as configured, safe to print: user, TLS and `***` where a password will be.
    public var redacted: String {
        guard var endpoint = RedisEndpoint(url: url) else { return RedisEndpoint.redacted(url) }
        if let username { endpoint.username = username }
        if passwordEnv != nil || passwordFile != nil { endpoint.password = RedisPassword("", source: "") }
        switch mode {
        case .single: return endpoint.description
        case .cluster: return "cluster \(clusterNodes.map(\.description).joined(separator: ",")) (login \(endpoint.description))"
        case .sentinel: return "sentinel master '\(sentinelMaster ?? "")' via \(sentinels.map(\.description).joined(separator: ",")) (login \(endpoint.description))"
        }
    }
}

extension RedisEndpoint {
    static let urlRule = "must look like redis://[USER:PASSWORD@]HOST[:PORT][/DB] or rediss://… for TLS, with @ : / # ? in the password percent-encoded"
}
