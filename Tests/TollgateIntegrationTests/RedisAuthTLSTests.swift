import Foundation
import Logging
import Testing
import TollgateCore
import TollgateRedis

/// Logging in to Redis and TLS, against redis-servers the tests start: what works, and that every
/// refusal names the setting to fix and never the password.
@Suite("Redis AUTH, ACL users and TLS", .timeLimit(.minutes(3)))
struct RedisAuthTLSTests {
    /// `@ : / #` must be percent-encoded in a URL, and decoded before AUTH.
    static let password = "s3cr3t@:/#pw"
    static let encodedPassword = "s3cr3t%40%3A%2F%23pw"

    /// A connection as `tollgate serve` makes one: the config's `redis.*`, the password read from
    /// `environment`, the budget scripts loaded on connect.
    static func connect(_ url: String, environment: [String: String] = [:], scripts: [RedisScript] = TestRedis.scripts.all,
                        _ configure: (inout TollgateConfig.Redis) -> Void = { _ in }) throws -> RedisConnection {
        var config = TollgateConfig()
        config.redis.url = url
        configure(&config.redis)
        return RedisConnection(endpoint: try config.redis.endpoint(environment: environment), timeoutMilliseconds: 2_000,
                               scripts: scripts, logger: TestRedis.quietLogger)
    }

    /// A reservation renewed and settled through `connection`: the scripts run as its user.
    static func roundTrip(_ connection: RedisConnection) async throws {
        let store = BudgetStore.forTests(redis: connection)
        let client = TestRedis.uniqueClient("auth")
        let grant = try await store.grant(client, estimate: .fixed(1_500_000))
        #expect(try await store.renew(client, grant.lease))
        #expect(try await store.settle(client, grant.lease, actual: NanoUSD(1_000_000)) == .settled)
    }

    /// What `verify` threw: it must be `.misconfigured`, and its text must not hold `secrets`.
    static func refusal(_ connection: RedisConnection, hiding secrets: [String], _ comment: Comment? = nil) async -> String {
        do {
            try await connection.verify()
            Issue.record("verify passed; expected a refusal")
            return ""
        } catch {
            guard case RedisError.misconfigured = error else {
                Issue.record("expected .misconfigured, got \(error)")
                return "\(error)"
            }
            for secret in secrets { #expect(!"\(error)".contains(secret), "the password leaked: \(error)") }
            return "\(error)"
        }
    }

    @Test("requirepass: the password from the URL (percent-decoded) or redis.password_env logs in, then SELECT and the scripts work")
    func rightPassword() async throws {
        let redis = try SpawnedRedis(["--requirepass", Self.password])
        // Database 2: SELECT before AUTH would be refused with NOAUTH.
        let fromURL = try Self.connect("redis://:\(Self.encodedPassword)@127.0.0.1:\(redis.port)/2")
        defer { fromURL.shutdown() }
        try await fromURL.verify()
        try await Self.roundTrip(fromURL)
        let fromEnv = try Self.connect("redis://127.0.0.1:\(redis.port)/2", environment: ["TG_REDIS_PW": Self.password]) {
            $0.passwordEnv = "TG_REDIS_PW"
        }
        defer { fromEnv.shutdown() }
        try await fromEnv.verify()
        #expect(try await fromEnv.call(.command(["CLIENT", "INFO"])).string?.contains("db=2") == true)
        #expect("\(fromEnv.endpoint)" == "redis://:***@127.0.0.1:\(redis.port)/2")
    }

    @Test("requirepass: a wrong password is refused naming redis.password_env, a missing one naming it too; neither error holds a password")
    func wrongPassword() async throws {
        let redis = try SpawnedRedis(["--requirepass", Self.password])
        let wrong = try Self.connect("redis://:url-password-9@127.0.0.1:\(redis.port)/0", environment: ["TG_REDIS_PW": "wrong-password-7"]) {
            $0.passwordEnv = "TG_REDIS_PW"
        }
        defer { wrong.shutdown() }
        let error = await Self.refusal(wrong, hiding: [Self.password, "wrong-password-7", "url-password-9"])
        #expect(error.contains("WRONGPASS") && error.contains("redis.password_env (TG_REDIS_PW)"), "\(error)")
        // Later calls are refused the same way (not as a generic outage) until Redis accepts the login.
        let later = await #expect(throws: RedisError.self) { _ = try await wrong.call(.command(["PING"])) }
        guard case .misconfigured? = later else { Issue.record("expected .misconfigured, got \(String(describing: later))"); return }

        let missing = try Self.connect("redis://127.0.0.1:\(redis.port)/0")
        defer { missing.shutdown() }
        let noAuth = await Self.refusal(missing, hiding: [Self.password])
        // NOAUTH, or (Redis 7, at the first SCRIPT LOAD) "unauthenticated bulk length".
        #expect(noAuth.contains("Redis requires a password") && noAuth.contains("redis.password_env"), "\(noAuth)")
    }

    /// The ACL line of docs/operations.md, with its password: the tests run as the documented user.
    static func documentedACL(password: String) throws -> [String] {
        let docs = try String(contentsOf: ReplicaProcess.repository.appendingPathComponent("docs/operations.md"), encoding: .utf8)
        let line = try #require(docs.split(separator: "\n").first { $0.hasPrefix("ACL SETUSER tollgate ") })
        return line.split(separator: " ").map { $0 == ">CHANGE-ME" ? ">" + password : String($0) }
    }

    @Test("an ACL user with only the commands docs/operations.md lists runs the scripts, the CLI's reads and keys; a wrong password names redis.username")
    func documentedACLUser() async throws {
        let redis = try SpawnedRedis(["--requirepass", "admin-password-1"])
        let admin = try Self.connect("redis://:admin-password-1@127.0.0.1:\(redis.port)/0", scripts: [])
        defer { admin.shutdown() }
        #expect(try await admin.call(.command(try Self.documentedACL(password: "tollgate-password-2"))) == .status("OK"))

        // From a file, as a mounted secret: its trailing newline is not part of the password.
        let file = redis.dir + "/redis-password"
        try "tollgate-password-2\n".write(toFile: file, atomically: true, encoding: .utf8)
        let user = try Self.connect("redis://127.0.0.1:\(redis.port)/0") {
            $0.username = "tollgate"
            $0.passwordFile = file
        }
        defer { user.shutdown() }
        try await user.verify()
        try await Self.roundTrip(user)
        let client = TestRedis.uniqueClient("acl")
        let budgets = BudgetAdmin(redis: user, defaultDailyLimit: NanoUSD(NanoUSD.perUSD), defaultMonthlyLimit: NanoUSD(NanoUSD.perUSD),
                                  timezone: { _ in .utc })
        _ = try await budgets.budget(client)
        _ = try await budgets.allSpend(date: try await budgets.today())
        let keys = VirtualKeyStore(redis: user)
        let (info, secret) = try await keys.create(client: client, name: "acl")
        #expect(try await keys.client(forSecret: secret) == client)
        #expect(try await keys.revoke(id: info.id))

        let wrong = try Self.connect("redis://tollgate:not-it-3@127.0.0.1:\(redis.port)/0")
        defer { wrong.shutdown() }
        let error = await Self.refusal(wrong, hiding: ["not-it-3", "tollgate-password-2"])
        #expect(error.contains("'tollgate'") && error.contains("redis.username") && error.contains("WRONGPASS"), "\(error)")
    }

    @Test("a user who may not run EVALSHA is refused at start, naming the user and the command")
    func userWithoutEvalsha() async throws {
        let redis = try SpawnedRedis(["--requirepass", "admin-password-1"])
        let admin = try Self.connect("redis://:admin-password-1@127.0.0.1:\(redis.port)/0", scripts: [])
        defer { admin.shutdown() }
        _ = try await admin.call(.command(["ACL", "SETUSER", "noeval", "on", ">noeval-password-4", "~tollgate:*", "+@all", "-evalsha"]))
        let user = try Self.connect("redis://noeval:noeval-password-4@127.0.0.1:\(redis.port)/0")
        defer { user.shutdown() }
        let error = await Self.refusal(user, hiding: ["noeval-password-4"])
        #expect(error.contains("'noeval'") && error.contains("EVALSHA") && error.contains("NOPERM"), "\(error)")
    }

    @Test("TLS with the CA that signed Redis's certificate: verify, then a reserve/renew/settle round trip")
    func tls() async throws {
        let certs = try TestCertificates.shared()
        let redis = try SpawnedRedis(["--requirepass", Self.password], tls: true)
        let connection = try Self.connect("rediss://:\(Self.encodedPassword)@localhost:\(redis.port)/0") { $0.tls.caFile = certs.ca }
        defer { connection.shutdown() }
        try await connection.verify()
        try await Self.roundTrip(connection)
        // By IP address, with the name the certificate carries sent as SNI and checked.
        let named = try Self.connect("rediss://:\(Self.encodedPassword)@127.0.0.1:\(redis.port)/0") {
            $0.tls.caFile = certs.ca
            $0.tls.serverName = "localhost"
        }
        defer { named.shutdown() }
        try await named.verify()
    }

    @Test("TLS refusals name the setting: a CA that did not sign Redis's certificate, a name it does not carry, an unreadable file")
    func tlsRefusals() async throws {
        let certs = try TestCertificates.shared()
        let redis = try SpawnedRedis(["--requirepass", Self.password], tls: true)
        let url = "rediss://:\(Self.encodedPassword)@localhost:\(redis.port)/0"
        let otherCA = try Self.connect(url) { $0.tls.caFile = certs.otherCA }
        defer { otherCA.shutdown() }
        let error = await Self.refusal(otherCA, hiding: [Self.password])
        #expect(error.contains("TLS handshake") && error.contains("redis.tls.ca_file") && error.contains("CERTIFICATE_VERIFY_FAILED"), "\(error)")

        let misnamed = try Self.connect(url) {
            $0.tls.caFile = certs.ca
            $0.tls.serverName = "redis.example.com"
        }
        defer { misnamed.shutdown() }
        let name = await Self.refusal(misnamed, hiding: [Self.password])
        #expect(name.contains("redis.tls.server_name"), "\(name)")
        // The certificate names localhost, not the address.
        let byAddress = try Self.connect("rediss://:\(Self.encodedPassword)@127.0.0.1:\(redis.port)/0") { $0.tls.caFile = certs.ca }
        defer { byAddress.shutdown() }
        let address = await Self.refusal(byAddress, hiding: [Self.password])
        #expect(address.contains("redis.tls.server_name"), "\(address)")

        let unreadable = try Self.connect(url) { $0.tls.caFile = redis.dir + "/no-such-ca.pem" }
        defer { unreadable.shutdown() }
        let file = await Self.refusal(unreadable, hiding: [Self.password])
        #expect(file.contains("redis.tls.ca_file") && file.contains("no-such-ca.pem"), "\(file)")

        // Skipping verification accepts the certificate the wrong CA did not sign.
        let insecure = try Self.connect(url) { $0.tls.insecureSkipVerify = true }
        defer { insecure.shutdown() }
        try await insecure.verify()
    }

    @Test("mutual TLS (tls-auth-clients yes): the client certificate from cert_file/key_file is accepted; without it the refusal says TLS")
    func mutualTLS() async throws {
        let certs = try TestCertificates.shared()
        let redis = try SpawnedRedis(["--tls-auth-clients", "yes"], tls: true)
        let withCertificate = try Self.connect(redis.url) {
            $0.tls.caFile = certs.ca
            $0.tls.certFile = certs.clientCert
            $0.tls.keyFile = certs.clientKey
        }
        defer { withCertificate.shutdown() }
        try await withCertificate.verify()
        try await Self.roundTrip(withCertificate)

        let without = try Self.connect(redis.url) { $0.tls.caFile = certs.ca }
        defer { without.shutdown() }
        let refused = await Self.refusal(without, hiding: [])
        #expect(refused.contains("redis.tls.cert_file") && refused.contains("CERTIFICATE_REQUIRED"), "\(refused)")
    }
}

extension TestRedis {
    /// For connections whose refusals a test provokes on purpose.
    static let quietLogger: Logger = {
        var l = Logger(label: "test")
        l.logLevel = ProcessInfo.processInfo.environment["TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        return l
    }()
}
