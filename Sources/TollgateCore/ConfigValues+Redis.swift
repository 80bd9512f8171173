/// `redis.*`: where Redis is, how Tollgate logs in and how it checks Redis's certificate. Secrets
/// never appear in an error: the URL is shown redacted, and the password itself is read only at
/// start (`TollgateConfig.Redis.endpoint(environment:)`).
extension ConfigValues {
    static let redisKeys: Set<String> = [
        "redis.username", "redis.password_env", "redis.password_file", "redis.tls", "redis.tls.ca_file",
        "redis.tls.cert_file", "redis.tls.key_file", "redis.tls.server_name", "redis.tls.insecure_skip_verify",
        "redis.mode", "redis.cluster_nodes", "redis.sentinels", "redis.sentinel_master", "redis.sentinel_username",
        "redis.sentinel_password_env", "redis.wait_replicas",
    ]

    func redis() throws -> TollgateConfig.Redis {
        var r = TollgateConfig.Redis()
        if let url = string("redis.url") {
            guard RedisEndpoint(url: url) != nil else {
                throw fail("redis.url", RedisEndpoint.urlRule + " (got '\(RedisEndpoint.redacted(url))')")
            }
            r.url = url
        }
        let endpoint = RedisEndpoint(url: r.url)!
        r.timeoutMilliseconds = try int("redis.timeout_ms", in: 1...60_000, "milliseconds ") ?? r.timeoutMilliseconds
        if let user = string("redis.username") {
            guard !user.isEmpty, !user.contains(where: { $0.isWhitespace }) else {
                throw fail("redis.username", "must be a Redis ACL user name without spaces (got '\(user)')")
            }
            r.username = user
        }
        r.passwordEnv = string("redis.password_env")
        r.passwordFile = string("redis.password_file")
        if r.passwordEnv != nil, r.passwordFile != nil {
            throw fail("redis.password_file", "cannot be set together with redis.password_env: keep the one that holds the password")
        }
        if r.passwordEnv?.isEmpty == true { throw fail("redis.password_env", "must name an environment variable, e.g. REDIS_PASSWORD") }
        if r.passwordFile?.isEmpty == true { throw fail("redis.password_file", "must be a file path, e.g. /run/secrets/redis-password") }
        if (r.username ?? endpoint.username) != nil, endpoint.password == nil, r.passwordEnv == nil, r.passwordFile == nil {
            throw fail(r.username != nil ? "redis.username" : "redis.url",
                       "names a Redis user but no password: set redis.password_env or redis.password_file")
        }

        r.tls.caFile = string("redis.tls.ca_file")
        r.tls.certFile = string("redis.tls.cert_file")
        r.tls.keyFile = string("redis.tls.key_file")
        r.tls.serverName = string("redis.tls.server_name")
        if let skip = string("redis.tls.insecure_skip_verify") {
            guard let b = Bool(skip) else { throw fail("redis.tls.insecure_skip_verify", "must be true or false (got '\(skip)')") }
            r.tls.insecureSkipVerify = b
        }
        let tlsSet = [("ca_file", r.tls.caFile != nil), ("cert_file", r.tls.certFile != nil), ("key_file", r.tls.keyFile != nil),
                      ("server_name", r.tls.serverName != nil), ("insecure_skip_verify", r.tls.insecureSkipVerify)]
        if endpoint.tls == nil, let first = tlsSet.first(where: { $0.1 }) {
            throw fail("redis.tls." + first.0, "applies only to TLS: make redis.url start with rediss://")
        }
        if (r.tls.certFile == nil) != (r.tls.keyFile == nil) {
            throw fail(r.tls.certFile == nil ? "redis.tls.cert_file" : "redis.tls.key_file",
                       "goes with redis.tls.\(r.tls.certFile == nil ? "key_file" : "cert_file"): a client certificate needs both its certificate and its key")
        }
        try topology(into: &r, database: endpoint.database)
        return r
    }

    /// `redis.mode` and what each mode needs: seed nodes for a cluster, sentinels and the master's
    /// name for Sentinel. The mode may be left out when the list says it.
    private func topology(into r: inout TollgateConfig.Redis, database: Int) throws {
        r.clusterNodes = try addresses("redis.cluster_nodes")
        r.sentinels = try addresses("redis.sentinels")
        let inferred: TollgateConfig.RedisMode = !r.clusterNodes.isEmpty ? .cluster : !r.sentinels.isEmpty ? .sentinel : .single
        r.mode = try choice("redis.mode", TollgateConfig.RedisMode.self, options: ["single", "cluster", "sentinel"]) ?? inferred
        if !r.clusterNodes.isEmpty, !r.sentinels.isEmpty {
            throw fail("redis.sentinels", "cannot be set together with redis.cluster_nodes: a Redis Cluster has no sentinels; keep the list of the mode you run")
        }
        r.sentinelMaster = string("redis.sentinel_master")
        r.sentinelUsername = string("redis.sentinel_username")
        r.sentinelPasswordEnv = string("redis.sentinel_password_env")
        r.waitReplicas = try int("redis.wait_replicas", in: 0...16, "replicas ")
        switch r.mode {
        case .cluster:
            guard !r.clusterNodes.isEmpty else {
                throw fail("redis.cluster_nodes", "is needed with redis.mode cluster: list one or more nodes as host:port, e.g. [10.0.0.1:6379, 10.0.0.2:6379]")
            }
            guard database == 0 else { throw fail("redis.url", "must use database 0 with redis.mode cluster: a Redis Cluster has only database 0") }
        case .sentinel:
            guard !r.sentinels.isEmpty else {
                throw fail("redis.sentinels", "is needed with redis.mode sentinel: list the sentinels as host:port, e.g. [10.0.0.1:26379, 10.0.0.2:26379]")
            }
            guard let name = r.sentinelMaster, !name.isEmpty, !name.contains(where: { $0.isWhitespace }) else {
                throw fail("redis.sentinel_master", "is needed with redis.mode sentinel: the master name from sentinel.conf's `sentinel monitor NAME …` line")
            }
        case .single:
            if !r.clusterNodes.isEmpty { throw fail("redis.cluster_nodes", "needs redis.mode cluster (or leave redis.mode out)") }
            if !r.sentinels.isEmpty { throw fail("redis.sentinels", "needs redis.mode sentinel (or leave redis.mode out)") }
        }
        if r.mode != .sentinel, let key = ["redis.sentinel_master", "redis.sentinel_username", "redis.sentinel_password_env"].first(where: { string($0) != nil }) {
            throw fail(key, "applies only to redis.mode sentinel")
        }
        if r.sentinelUsername != nil, r.sentinelPasswordEnv == nil {
            throw fail("redis.sentinel_username", "needs a password: set redis.sentinel_password_env")
        }
    }

    private func addresses(_ key: String) throws -> [RedisAddress] {
        try (list(key) ?? []).map { text in
            guard let address = RedisAddress(text) else { throw fail(key, "each entry must be host:port, e.g. 10.0.0.1:6379 (got '\(text)')") }
            return address
        }
    }
}
