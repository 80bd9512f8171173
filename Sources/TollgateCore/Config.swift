import Foundation
import Yams

/// A configuration mistake: which key, and how to fix it.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let key: String
    public let message: String
    public init(key: String, message: String) {
        self.key = key
        self.message = message
    }
    public var description: String { "config error at '\(key)': \(message)" }
}

/// The whole configuration with its defaults (docs/config.md is the reference).
public struct TollgateConfig: Sendable {
    public struct Server: Sendable {
        public var host = "0.0.0.0"
        public var port = 8080
        /// On SIGTERM, in-flight requests and streams get this long to finish (then they are cut and settled).
        public var shutdownGraceSeconds = 60
        /// The largest request body accepted (413 above it). Anthropic's Messages API takes at
        /// most 32 MB; OpenAI takes up to 50 MB of image bytes (~67 MB as base64), which an
        /// operator who needs it allows by raising this (docs/operations.md, "Limits").
        public var maxBodyBytes = 32 << 20
        /// Bodies of `largeBodyBytes` or more are read and scanned this many at a time; others wait.
        public var largeBodyConcurrency = 2
        /// What "large" means for `largeBodyConcurrency`.
        public var largeBodyBytes = 4 << 20
        /// A connection with no request in progress (idle keep-alive, or a request head that never
        /// completes) is closed after this long; 0 disables it.
        public var idleTimeoutSeconds = 60
    }
    /// The operators' listener. Without a token it only starts on a loopback address.
    public struct Admin: Sendable {
        public var enabled = true
        public var host = "127.0.0.1"
        public var port = 8081
        public var tokenEnv: String? = "TOLLGATE_ADMIN_TOKEN"
        public var isLoopback: Bool { host == "127.0.0.1" || host == "localhost" || host == "::1" || host.hasPrefix("127.") }
    }
    /// Where Redis is and how to log in (`endpoint(environment:)` adds the password).
    public struct Redis: Sendable {
        /// May carry a user and password; never print it (print the endpoint, which redacts).
        public var url = "redis://127.0.0.1:6379/0"
        public var timeoutMilliseconds = 250
        /// The ACL user, overriding the URL's.
        public var username: String?
        /// Where the password is read at start; either overrides a password in the URL.
        public var passwordEnv: String?
        public var passwordFile: String?
        /// Used with `rediss://` only.
        public var tls = RedisTLS()
        /// `single` (default), `cluster` or `sentinel`; see `topology(environment:)`.
        public var mode = RedisMode.single
        /// Cluster seed nodes, `host:port`.
        public var clusterNodes: [RedisAddress] = []
        /// Sentinel addresses and the master name they monitor.
        public var sentinels: [RedisAddress] = []
        public var sentinelMaster: String?
        public var sentinelUsername: String?
        public var sentinelPasswordEnv: String?
        /// Replicas that must hold a script's writes before its reply counts (WAIT); nil: 1 in
        /// cluster and sentinel modes, 0 with one server.
        public var waitReplicas: Int?
        public var effectiveWaitReplicas: Int { waitReplicas ?? (mode == .single ? 0 : 1) }
        /// Settles that could not reach Redis, kept on disk until replayed (`redis.journal.*`).
        public var journal = Journal()
    }
    public enum RedisMode: String, Sendable { case single, cluster, sentinel }
    public struct Provider: Sendable {
        public var baseURL: String
        public var apiKeyEnv: String?
        public init(baseURL: String, apiKeyEnv: String?) {
            self.baseURL = baseURL
            self.apiKeyEnv = apiKeyEnv
        }
    }
    public enum UnknownClient: String, Sendable { case reject, `default` }
    /// `header`: trust `X-Client-ID` (Tollgate behind your own auth). `keys`: clients present a
    /// virtual key `tg-…` as their API key, and the configured provider key is used upstream.
    public enum ClientAuth: String, Sendable { case header, keys }
    public struct Clients: Sendable {
        public var auth = ClientAuth.header
        public var idHeader = "X-Client-ID"
        public var unknown = UnknownClient.reject
        public var defaultClient = ClientID("default")!
        public var dailyLimit = NanoUSD(10 * NanoUSD.perUSD)
        public var monthlyLimit = NanoUSD(200 * NanoUSD.perUSD)
        /// The policy of every client without its own (`clients.defaults`).
        public var defaults = ClientPolicy()
        public var budgetHeaders = BudgetHeaderNames()
    }
    public struct Budget: Sendable {
        public var mode = BudgetMode.strict
        public var timezone = "UTC"
        public var leaseSeconds = 600
        public var exceededStatus = 402
        public var dayGraceSeconds = 3_600
        public var monthGraceSeconds = 86_400
        public var minimumReplyTokens: Int64 = 16
        public var typicalReplyTokens: Int64 = 1_000
        /// Strict mode: input the body does not carry (files by id, PDFs, stored prompts).
        public var unseenInput = UnseenInputPolicy.refuse
        /// Strict mode: tools the provider runs itself (web search, code execution, MCP).
        public var serverTools = ServerToolPolicy.refuse
        /// Calls reserved per provider-run tool when `serverTools` is `allow` (and `max_uses` is higher or absent).
        public var serverToolMaxCalls: Int64 = 5
        /// Strict mode: `background: true` requests.
        public var background = BackgroundPolicy.refuse
        /// Strict mode: `anthropic-beta` values allowed beyond those whose cost is bounded
        /// (`AnthropicBetas.bounded`).
        public var allowedBetas: Set<String> = []
    }
    public struct Upstream: Sendable {
        public var connectTimeoutMilliseconds = 5_000
        /// Whole-transfer limit; streams longer than this are cut (and settled). The stream
        /// duration cap (`UpstreamLimit.duration`).
        public var timeoutSeconds = 600
        /// curl queues transfers beyond this, so it bounds concurrent upstream streams too.
        public var maxConnections = 4_096
        /// All header bytes of one provider answer; a provider's headers are a few KiB.
        public var maxHeaderBytes = 64 << 10
        /// One server-sent event, which the relay must hold whole before passing it on. Large
        /// enough for a Responses API `response.completed` event that repeats a long answer.
        public var maxSSEEventBytes = 8 << 20
        /// The whole body of an answer that is not relayed as a stream (a non-streamed call, an
        /// error, `GET /v1/models`), which Tollgate holds whole to read its usage.
        public var maxResponseBytes = 32 << 20
        /// How long an answer whose client hung up is still read (not relayed) before it is cut.
        /// The provider bills a request it has received either way: an answer that ends meanwhile
        /// is charged the usage it reports, one cut is charged its reservation (or, a stream, the
        /// bound on what it streamed). Longer is more exact and holds the provider connection longer.
        public var drainAfterHangupMilliseconds = 1_000
    }

    public struct Analytics: Sendable {
        /// Days a day or month hash (and the top-spender sets) are kept after the period ends, so
        /// spend by day and model can be read back (`tollgate spend --days 30`, the dashboard).
        public var retentionDays = 35
        public var retentionSeconds: Int { retentionDays * 86_400 }
    }

    public var server = Server()
    public var admin = Admin()
    public var redis = Redis()
    public var openAI = Provider(baseURL: "https://api.openai.com", apiKeyEnv: "OPENAI_API_KEY")
    public var anthropic = Provider(baseURL: "https://api.anthropic.com", apiKeyEnv: "ANTHROPIC_API_KEY")
    public var pricingFile: String?
    public var defaultPrice: ModelPrice?
    public var clients = Clients()
    public var budget = Budget()
    public var upstream = Upstream()
    public var analytics = Analytics()
    public var alerts = Alerts()
    public var logLevel = "info"

    public init() {}

    public func provider(_ family: APIFamily) -> Provider { family == .openAI ? openAI : anthropic }

    /// UTC offset of `budget.timezone` at `date`. The scripts take the whole schedule below, so
    /// that the offset in force is decided by Redis TIME, not by this replica's clock.
    public func utcOffsetSeconds(at date: Date = Date()) -> Int64 {
        Int64(TimeZone(identifier: budget.timezone)?.secondsFromGMT(for: date) ?? 0)
    }

    /// `budget.timezone` as of `date`: its offset then, its next change and the offset after.
    public func timezoneSchedule(at date: Date) -> TimezoneSchedule {
        guard let zone = TimeZone(identifier: budget.timezone) else { return .utc }
        let current = Int64(zone.secondsFromGMT(for: date))
        guard let change = zone.nextDaylightSavingTimeTransition(after: date) else { return .fixed(current) }
        return TimezoneSchedule(current: current, nextChange: UnixTime(seconds: Int64(change.timeIntervalSince1970.rounded())),
                                after: Int64(zone.secondsFromGMT(for: change)))
    }

    public func timezoneSchedule(at time: UnixTime) -> TimezoneSchedule {
        timezoneSchedule(at: Date(timeIntervalSince1970: TimeInterval(time.seconds)))
    }

    /// The schedule a replica passes to the reserve script: as of five minutes ago, so that
    /// around a change the script decides by Redis TIME which offset is in force, not by this
    /// machine's clock (which may run ahead of Redis).
    public func timezoneScheduleForScripts() -> TimezoneSchedule {
        timezoneSchedule(at: Date().addingTimeInterval(-300))
    }
}

extension TollgateConfig {
    /// Environment variables that override the file (docs/config.md lists them).
    public static let environmentOverrides: [String: String] = [
        "TOLLGATE_HOST": "server.host", "TOLLGATE_PORT": "server.port",
        "TOLLGATE_REDIS_URL": "redis.url", "TOLLGATE_REDIS_TIMEOUT_MS": "redis.timeout_ms",
        "TOLLGATE_REDIS_JOURNAL_DIR": "redis.journal.dir",
        "TOLLGATE_OPENAI_BASE_URL": "providers.openai.base_url",
        "TOLLGATE_ANTHROPIC_BASE_URL": "providers.anthropic.base_url",
        "TOLLGATE_PRICING_FILE": "pricing_file", "TOLLGATE_BUDGET_MODE": "budget.mode",
        "TOLLGATE_BUDGET_LEASE_SECONDS": "budget.lease_seconds",
        "TOLLGATE_CLIENTS_UNKNOWN": "clients.unknown", "TOLLGATE_LOG_LEVEL": "log_level",
        "TOLLGATE_CLIENTS_AUTH": "clients.auth", "TOLLGATE_SHUTDOWN_GRACE_SECONDS": "server.shutdown_grace_seconds",
        "TOLLGATE_MAX_BODY_BYTES": "server.max_body_bytes", "TOLLGATE_IDLE_TIMEOUT_SECONDS": "server.idle_timeout_seconds",
        "TOLLGATE_LARGE_BODY_CONCURRENCY": "server.large_body_concurrency",
        "TOLLGATE_ADMIN_ENABLED": "admin.enabled", "TOLLGATE_ADMIN_HOST": "admin.host", "TOLLGATE_ADMIN_PORT": "admin.port",
        "TOLLGATE_ALERTS_THRESHOLDS": "alerts.thresholds", "TOLLGATE_ALERTS_WEBHOOK_URL": "alerts.webhook.url",
    ]

    /// Parses YAML (may be empty), then applies environment overrides, then validates.
    public static func load(yaml: String, environment: [String: String] = [:]) throws -> TollgateConfig {
        let node: Node?
        do { node = try Yams.compose(yaml: yaml) } catch {
            throw ConfigError(key: "(file)", message: "not valid YAML: \(error)")
        }
        var values = ConfigValues(node)
        for (variable, key) in environmentOverrides {
            if let v = environment[variable] { values.override(key, with: v, from: variable) }
        }
        return try values.build(environment: environment)
    }

    public static func load(file path: String?, environment: [String: String]) throws -> TollgateConfig {
        guard let path else { return try load(yaml: "", environment: environment) }
        // FileHandle rather than String(contentsOfFile:), which fails on pipes and /dev/null.
        guard let handle = FileHandle(forReadingAtPath: path), let data = try? handle.readToEnd() ?? Data() else {
            throw ConfigError(key: "(file)", message: "cannot read \(path). Pass an existing, readable YAML file to --config (see deploy/tollgate.yaml).")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(key: "(file)", message: "\(path) is not UTF-8 text. Save the config as UTF-8 YAML.")
        }
        return try load(yaml: text, environment: environment)
    }
}
