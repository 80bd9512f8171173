import Foundation
import Testing
@testable import TollgateCore

@Suite("Redis settings: URLs, login, TLS, and secrets kept out of every message")
struct RedisConfigTests {
    static let secret = "hunter2-Secret"

    @Test("a Redis URL reads as scheme, user, percent-decoded password, host, port and database", arguments: [
        ("redis://cache", "cache", 6379, 0, nil, nil, false),
        ("redis://:p%40ss@cache:7000/3", "cache", 7000, 3, nil, "p@ss", false),
        ("rediss://tollgate:p%3A%2F%23@cache.example.com/1", "cache.example.com", 6379, 1, "tollgate", "p:/#", true),
        ("rediss://[::1]:6380", "::1", 6380, 0, nil, nil, true),
    ] as [(String, String, Int, Int, String?, String?, Bool)])
    func url(url: String, host: String, port: Int, database: Int, user: String?, password: String?, tls: Bool) throws {
        let e = try #require(RedisEndpoint(url: url))
        #expect(e.host == host && e.port == port && e.database == database)
        #expect(e.username == user && e.password?.value == password && (e.tls != nil) == tls)
    }

    @Test("an endpoint prints, dumps and reflects with its password as ***")
    func redactedEndpoint() throws {
        let e = try #require(RedisEndpoint(url: "rediss://tollgate:\(Self.secret)@cache:6380/2"))
        #expect(e.description == "rediss://tollgate:***@cache:6380/2")
        var dumped = ""
        dump(e, to: &dumped)
        for text in ["\(e)", String(reflecting: e), dumped, "\(e.password!)", String(reflecting: e.password!)] {
            #expect(!text.contains(Self.secret), "\(text)")
        }
        #expect(RedisEndpoint.redacted("redis://:p#ss@host:1/0") == "redis://***@host:1/0")
        #expect(RedisEndpoint(url: "redis://:\(Self.secret)@cache")?.description == "redis://:***@cache:6379/0")
    }

    /// Every way a configuration can go wrong while a password is in it.
    static let mistakes: [(yaml: String, environment: [String: String], key: String)] = [
        ("redis: { url: 'redis://:\(secret)@cache:99999/0' }", [:], "redis.url"),
        ("redis: { url: 'redis://:\(secret)@cache/abc' }", [:], "redis.url"),
        ("redis: { url: 'http://:\(secret)@cache' }", [:], "redis.url"),
        ("redis: { url: 'redis://:\(secret)@' }", [:], "redis.url"),
        ("redis: { url: 'redis://:hunter2#Secret@cache' }", [:], "redis.url"),
        ("", ["TOLLGATE_REDIS_URL": "redis://u:\(secret)@cache:0"], "redis.url (from TOLLGATE_REDIS_URL)"),
        ("redis: { url: 'redis://:\(secret)@cache', tls: { ca_file: /ca.pem } }", [:], "redis.tls.ca_file"),
        ("redis: { url: 'rediss://:\(secret)@cache', tls: { cert_file: /c.pem } }", [:], "redis.tls.key_file"),
        ("redis: { url: 'rediss://:\(secret)@cache', tls: { insecure_skip_verify: maybe } }", [:], "redis.tls.insecure_skip_verify"),
        ("redis: { url: 'redis://:\(secret)@cache', password_env: A, password_file: /b }", [:], "redis.password_file"),
        ("redis: { url: 'redis://:\(secret)@cache', username: 'two words' }", [:], "redis.username"),
        ("redis: { url: 'redis://:\(secret)@cache', timeout_ms: 0 }", [:], "redis.timeout_ms"),
        ("redis: { password: \(secret) }", [:], "redis.password"),
        ("redis: { url: 'redis://tollgate@cache' }", [:], "redis.url"),
    ]

    @Test("a configuration mistake names its key and never shows the password", arguments: mistakes)
    func noSecretInErrors(yaml: String, environment: [String: String], key: String) {
        let error = #expect(throws: ConfigError.self) { try TollgateConfig.load(yaml: yaml, environment: environment) }
        #expect(error?.key == key)
        #expect(error.map { !$0.description.contains(Self.secret) && !$0.description.contains("hunter2#Secret") } == true, "\(String(describing: error))")
    }

    @Test("a password key in the file is pointed to password_env and password_file")
    func passwordKey() {
        let error = #expect(throws: ConfigError.self) { try TollgateConfig.load(yaml: "redis: { password: x }") }
        #expect(error?.message.contains("redis.password_env") == true)
    }

    @Test("password_env and password_file are read at start, win over the URL's password, and a missing one names its setting")
    func passwordSources() throws {
        let c = try TollgateConfig.load(yaml: "redis: { url: 'redis://:from-url@cache', username: tollgate, password_env: TG_PW }")
        #expect(try c.redis.endpoint(environment: ["TG_PW": "from-env"]).password == RedisPassword("from-env", source: "redis.password_env (TG_PW)"))
        #expect(try c.redis.endpoint(environment: ["TG_PW": "from-env"]).username == "tollgate")
        #expect(c.redis.redacted == "redis://tollgate:***@cache:6379/0")
        let unset = #expect(throws: ConfigError.self) { try c.redis.endpoint(environment: [:]) }
        #expect(unset?.key == "redis.password_env" && unset?.message.contains("TG_PW") == true)

        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tg-redis-pw-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        try "\(Self.secret)\n".write(toFile: file, atomically: true, encoding: .utf8)
        let f = try TollgateConfig.load(yaml: "redis: { url: 'rediss://cache', password_file: '\(file)', tls: { ca_file: /ca.pem, server_name: redis.internal } }")
        let e = try f.redis.endpoint(environment: [:])
        #expect(e.password?.value == Self.secret, "the trailing newline is not part of the password")
        #expect(e.tls?.caFile == "/ca.pem" && e.tls?.serverName == "redis.internal" && e.tls?.insecureSkipVerify == false)
        let missing = try TollgateConfig.load(yaml: "redis: { password_file: /nonexistent/pw }")
        #expect(throws: ConfigError(key: "redis.password_file", message: "cannot read /nonexistent/pw: make it a readable file holding the Redis password")) {
            try missing.redis.endpoint(environment: [:])
        }
    }
}
