import Foundation
import Yams

/// Reads the YAML tree key by key so every error names its key, and rejects unknown keys
/// (a typo such as `budget.mdoe` would otherwise be silently ignored).
struct ConfigValues {
    private var scalars: [String: String] = [:]
    /// YAML lists of plain values (`to: [a@x, b@y]`); their key also holds `<list>` in `scalars`.
    private var lists: [String: [String]] = [:]
    private var origins: [String: String] = [:]
    private(set) var present: Set<String> = []
    private var unknown: [String] = []

    static let known: Set<String> = [
        "server", "server.host", "server.port", "server.shutdown_grace_seconds",
        "server.max_body_bytes", "server.large_body_bytes", "server.large_body_concurrency", "server.idle_timeout_seconds",
        "admin", "admin.enabled", "admin.host", "admin.port", "admin.token_env", "clients.auth", "redis", "redis.url", "redis.timeout_ms",
        "providers", "providers.openai", "providers.openai.base_url", "providers.openai.api_key_env",
        "providers.anthropic", "providers.anthropic.base_url", "providers.anthropic.api_key_env",
        "pricing_file", "default_price", "default_price.input", "default_price.cached_input",
        "default_price.cache_write", "default_price.output", "default_price.reasoning", "default_price.max_output_tokens",
        "default_price.context_window", "default_price.cache_write_1h", "default_price.hidden_reasoning",
        "clients", "clients.id_header", "clients.unknown", "clients.default_client", "clients.default_limits",
        "clients.default_limits.daily_usd", "clients.default_limits.monthly_usd",
        "budget", "budget.mode", "budget.timezone", "budget.lease_seconds", "budget.exceeded_status",
        "budget.day_grace_seconds", "budget.month_grace_seconds", "budget.min_output_tokens",
        "budget.estimate_output_tokens", "budget.unseen_input", "budget.server_tools", "budget.server_tool_max_calls",
        "budget.background", "budget.allowed_betas",
        "upstream", "upstream.connect_timeout_ms", "upstream.timeout_seconds", "upstream.max_connections",
        "upstream.max_header_bytes", "upstream.max_sse_event_bytes", "upstream.max_response_bytes",
        "upstream.drain_after_hangup_ms",
        "analytics", "analytics.retention_days",
        "log_level",
    ]

    init(_ root: Node?) {
        if let root { walk(root, path: "") }
    }

    private mutating func walk(_ node: Node, path: String) {
        if !path.isEmpty {
            present.insert(path)
            if !Self.known.contains(path), !Self.policyKeys.contains(path), !Self.alertKeys.contains(path), !Self.redisKeys.contains(path),
               !Self.journalKeys.contains(path),
               !path.hasPrefix(Self.downgradeModelsPrefix) {
                unknown.append(path); return
            }
        }
        switch node {
        case .mapping(let mapping):
            for (k, v) in mapping { walk(v, path: path.isEmpty ? (k.string ?? "?") : path + "." + (k.string ?? "?")) }
        case .scalar(let s):
            // YAML null (`~`, `null`, empty) means "use the default".
            if !(s.style == .plain && ["", "~", "null", "Null", "NULL"].contains(s.string)) { scalars[path] = s.string }
        case .sequence(let items):
            scalars[path] = "<list>"
            let values = items.compactMap { $0.scalar?.string }
            if values.count == items.count { lists[path] = values }
        default:
            scalars[path] = "<list>"
        }
    }

    mutating func override(_ key: String, with value: String, from variable: String) {
        scalars[key] = value
        lists[key] = nil
        origins[key] = variable
    }

    /// The scalars under `prefix`, keyed by the rest of their path (a map of model names).
    func modelMap(under prefix: String) -> [String: String] {
        var map: [String: String] = [:]
        for (key, value) in scalars where key.hasPrefix(prefix) { map[String(key.dropFirst(prefix.count))] = value }
        return map
    }

    func fail(_ key: String, _ message: String) -> ConfigError {
        ConfigError(key: origins[key].map { "\(key) (from \($0))" } ?? key, message: message)
    }

    func string(_ key: String) -> String? { scalars[key] }

    /// A YAML list of plain values, or one comma-separated string; items trimmed, empty ones
    /// dropped. A list of anything else (mappings, nested lists) is an error.
    func list(_ key: String) throws -> [String]? {
        if let items = lists[key] { return items.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
        guard let s = scalars[key] else { return nil }
        guard s != "<list>" else { throw fail(key, "must be a list of plain values or one comma-separated string") }
        return s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// Whether any value is set under `prefix` (a section such as `alerts.webhook.`).
    func has(under prefix: String) -> Bool { scalars.keys.contains { $0.hasPrefix(prefix) } }

    func int(_ key: String, in range: ClosedRange<Int>, _ hint: String) throws -> Int? {
        guard let s = scalars[key] else { return nil }
        guard let v = Int(s), range.contains(v) else {
            throw fail(key, "must be an integer from \(range.lowerBound) to \(range.upperBound) \(hint)(got '\(s)')")
        }
        return v
    }

    func usd(_ key: String) throws -> NanoUSD? {
        guard let s = scalars[key] else { return nil }
        guard let v = NanoUSD(usd: s), v >= .zero, v < NanoUSD.scriptLimit else {
            throw fail(key, "must be a USD amount from 0 to 9000000 with at most 9 decimals, e.g. 10 or 2.50 (got '\(s)')")
        }
        return v
    }

    func choice<T: RawRepresentable>(_ key: String, _: T.Type, options: [String]) throws -> T? where T.RawValue == String {
        guard let s = scalars[key] else { return nil }
        guard let v = T(rawValue: s) else { throw fail(key, "must be one of \(options.joined(separator: ", ")) (got '\(s)')") }
        return v
    }

    func url(_ key: String) throws -> String? {
        guard let s = scalars[key] else { return nil }
        guard let u = URL(string: s), ["http", "https"].contains(u.scheme ?? ""), u.host != nil else {
            throw fail(key, "must be an http:// or https:// URL such as https://api.openai.com (got '\(s)')")
        }
        return s.hasSuffix("/") ? String(s.dropLast()) : s
    }

    /// `environment` resolves the `*_env` settings whose values the config keeps (`alerts.*`).
    func build(environment: [String: String] = [:]) throws -> TollgateConfig {
        if let first = unknown.sorted().first {
            // A password in the file would sit beside settings that get printed, diffed and committed.
            let fix = first == "redis.password" ? "keep the password out of the config: name the variable or file holding it in redis.password_env or redis.password_file"
                : "check the spelling against docs/config.md"
            throw ConfigError(key: first, message: "is not a known setting; \(fix)")
        }
        var c = TollgateConfig()
        c.server.host = string("server.host") ?? c.server.host
        c.server.port = try int("server.port", in: 0...65535, "") ?? c.server.port
        c.server.shutdownGraceSeconds = try int("server.shutdown_grace_seconds", in: 0...86_400, "seconds ") ?? c.server.shutdownGraceSeconds
        c.server.maxBodyBytes = try int("server.max_body_bytes", in: 1024...(1 << 30), "bytes ") ?? c.server.maxBodyBytes
        c.server.largeBodyBytes = try int("server.large_body_bytes", in: 1024...(1 << 30), "bytes ") ?? c.server.largeBodyBytes
        c.server.largeBodyConcurrency = try int("server.large_body_concurrency", in: 1...1024, "") ?? c.server.largeBodyConcurrency
        c.server.idleTimeoutSeconds = try int("server.idle_timeout_seconds", in: 0...86_400, "seconds (0: no timeout) ") ?? c.server.idleTimeoutSeconds
        if let enabled = string("admin.enabled") {
            guard let b = Bool(enabled) else { throw fail("admin.enabled", "must be true or false (got '\(enabled)')") }
            c.admin.enabled = b
        }
        c.admin.host = string("admin.host") ?? c.admin.host
        c.admin.port = try int("admin.port", in: 0...65535, "") ?? c.admin.port
        if present.contains("admin.token_env") { c.admin.tokenEnv = string("admin.token_env") }
        // The same rule `serve` enforces, so `check-config` does not pass a file `serve` refuses.
        if c.admin.enabled, !c.admin.isLoopback, (c.admin.tokenEnv.flatMap { environment[$0] } ?? "").isEmpty {
            throw fail("admin.host", "the admin API may listen on \(c.admin.host) only with a token: set the environment variable "
                       + "\(c.admin.tokenEnv ?? "named by admin.token_env"), or keep admin.host 127.0.0.1")
        }
        c.clients.auth = try choice("clients.auth", TollgateConfig.ClientAuth.self, options: ["header", "keys"]) ?? c.clients.auth
        c.redis = try redis()
        c.redis.journal = try journal()
        c.openAI.baseURL = try url("providers.openai.base_url") ?? c.openAI.baseURL
        c.anthropic.baseURL = try url("providers.anthropic.base_url") ?? c.anthropic.baseURL
        if present.contains("providers.openai.api_key_env") { c.openAI.apiKeyEnv = string("providers.openai.api_key_env") }
        if present.contains("providers.anthropic.api_key_env") { c.anthropic.apiKeyEnv = string("providers.anthropic.api_key_env") }
        c.pricingFile = string("pricing_file")
        if scalars.keys.contains(where: { $0.hasPrefix("default_price.") }) {
            var node: Node.Mapping = [:]
            for field in ["input", "cached_input", "cache_write", "cache_write_1h", "output", "reasoning", "max_output_tokens",
                          "context_window", "hidden_reasoning"] {
                if let v = scalars["default_price." + field] { node[Node(field)] = Node(v) }
            }
            c.defaultPrice = try PriceTable.parseEntry(.mapping(node), path: "default_price")
        }

        c.clients.idHeader = string("clients.id_header") ?? c.clients.idHeader
        guard !c.clients.idHeader.isEmpty, c.clients.idHeader.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else {
            throw fail("clients.id_header", "must be an HTTP header name of letters, digits and '-' (got '\(c.clients.idHeader)')")
        }
        c.clients.unknown = try choice("clients.unknown", TollgateConfig.UnknownClient.self, options: ["reject", "default"]) ?? c.clients.unknown
        if let s = string("clients.default_client") {
            guard let id = ClientID(s) else { throw fail("clients.default_client", "must be \(ClientID.rule) (got '\(s)')") }
            c.clients.defaultClient = id
        }
        c.clients.dailyLimit = try usd("clients.default_limits.daily_usd") ?? c.clients.dailyLimit
        c.clients.monthlyLimit = try usd("clients.default_limits.monthly_usd") ?? c.clients.monthlyLimit
        c.clients.defaults = try clientDefaults()
        c.clients.budgetHeaders = try budgetHeaders()

        c.budget.mode = try choice("budget.mode", BudgetMode.self, options: ["strict", "estimate"]) ?? c.budget.mode
        if let tz = string("budget.timezone") {
            guard TimeZone(identifier: tz) != nil else { throw fail("budget.timezone", "must be an IANA time zone such as UTC or Europe/Berlin (got '\(tz)')") }
            c.budget.timezone = tz
        }
        c.budget.leaseSeconds = try int("budget.lease_seconds", in: 5...86_400, "seconds ") ?? c.budget.leaseSeconds
        c.budget.exceededStatus = try int("budget.exceeded_status", in: 402...429, "") ?? c.budget.exceededStatus
        guard [402, 429].contains(c.budget.exceededStatus) else {
            throw fail("budget.exceeded_status", "must be 402 or 429 (got \(c.budget.exceededStatus))")
        }
        c.budget.dayGraceSeconds = try int("budget.day_grace_seconds", in: 0...604_800, "seconds ") ?? c.budget.dayGraceSeconds
        // A day key must outlive a DST shift: a replica whose clock is on the wrong side of the
        // change, or a settle an hour late, must still find the day it charges.
        guard c.budget.dayGraceSeconds >= 3_600 else {
            throw fail("budget.day_grace_seconds", "must be at least 3600: a day key has to outlive the largest DST shift (1 h) "
                       + "so settlements near midnight still find it; set 3600 or more (got \(c.budget.dayGraceSeconds))")
        }
        c.budget.monthGraceSeconds = try int("budget.month_grace_seconds", in: 0...2_678_400, "seconds ") ?? c.budget.monthGraceSeconds
        c.analytics.retentionDays = try int("analytics.retention_days", in: 1...400, "days ") ?? c.analytics.retentionDays
        c.budget.minimumReplyTokens = Int64(try int("budget.min_output_tokens", in: 1...100_000, "") ?? Int(c.budget.minimumReplyTokens))
        c.budget.typicalReplyTokens = Int64(try int("budget.estimate_output_tokens", in: 1...1_000_000, "") ?? Int(c.budget.typicalReplyTokens))

        c.budget.unseenInput = try choice("budget.unseen_input", UnseenInputPolicy.self, options: ["refuse", "context_window"]) ?? c.budget.unseenInput
        c.budget.serverTools = try choice("budget.server_tools", ServerToolPolicy.self, options: ["refuse", "allow"]) ?? c.budget.serverTools
        c.budget.serverToolMaxCalls = Int64(try int("budget.server_tool_max_calls", in: 1...100, "calls per provider-run tool ") ?? Int(c.budget.serverToolMaxCalls))
        c.budget.background = try choice("budget.background", BackgroundPolicy.self, options: ["refuse", "allow"]) ?? c.budget.background
        if let betas = string("budget.allowed_betas") {
            guard betas != "<list>" else {
                throw fail("budget.allowed_betas", "must be one comma-separated string, e.g. \"my-beta-2026-01-01, other-beta-2026-02-01\"")
            }
            c.budget.allowedBetas = Set(betas.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
        }

        c.upstream.connectTimeoutMilliseconds = try int("upstream.connect_timeout_ms", in: 1...600_000, "") ?? c.upstream.connectTimeoutMilliseconds
        c.upstream.timeoutSeconds = try int("upstream.timeout_seconds", in: 1...86_400, "") ?? c.upstream.timeoutSeconds
        c.upstream.maxConnections = try int("upstream.max_connections", in: 1...65_536, "") ?? c.upstream.maxConnections
        c.upstream.maxHeaderBytes = try int("upstream.max_header_bytes", in: 1_024...(16 << 20), "bytes ") ?? c.upstream.maxHeaderBytes
        c.upstream.maxSSEEventBytes = try int("upstream.max_sse_event_bytes", in: 1_024...(256 << 20), "bytes ") ?? c.upstream.maxSSEEventBytes
        c.upstream.maxResponseBytes = try int("upstream.max_response_bytes", in: 1_024...(1 << 30), "bytes ") ?? c.upstream.maxResponseBytes
        c.upstream.drainAfterHangupMilliseconds = try int("upstream.drain_after_hangup_ms", in: 0...600_000, "milliseconds ")
            ?? c.upstream.drainAfterHangupMilliseconds
        if let level = string("log_level") {
            let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
            guard levels.contains(level) else { throw fail("log_level", "must be one of \(levels.joined(separator: ", ")) (got '\(level)')") }
            c.logLevel = level
        }
        c.alerts = try alerts(environment: environment)
        // Clients without their own `alerts` field use these (ClientPolicy, the scripts' default).
        c.clients.defaults.alertThresholds = try alertThresholds() ?? c.clients.defaults.alertThresholds
        return c
    }
}
