/// `redis.*`: where Redis is, how Tollgate logs in and how it checks Redis's certificate. Secrets
/// never appear in an error: the URL is shown redacted, and the password itself is read only at
/// start (`TollgateConfig.Redis.endpoint(environment:)`).
extension ConfigValues {
    static let redisKeys: Set<String> = [
        "redis.username", "redis.password_env", "redis.password_file", "redis.tls", "redis.tls.ca_file",
        "redis.tls.cert_file", "redis.tls.key_file", "redis.tls.server_name", "redis.tls.insecure_skip_verify",
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
        return r
    }
}
