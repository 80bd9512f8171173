import ArgumentParser
import Foundation
import Logging
import TollgateCore
import TollgateRedis

/// Options shared by the commands that talk to Redis directly (no replica needed). The config's
/// `redis.*` settings apply (AUTH, TLS); the flags override the common ones.
struct RedisOptions: ParsableArguments {
    @Option(name: .long, help: "YAML config file for the Redis URL, login, TLS, default limits and timezone.")
    var config: String?
    @Option(name: .long, help: "Redis URL, overriding the config (also TOLLGATE_REDIS_URL): redis://[USER:PASSWORD@]HOST[:PORT][/DB], rediss:// for TLS.")
    var redis: String?
    @Option(name: .customLong("redis-user"), help: "Redis ACL user (redis.username).")
    var redisUser: String?
    @Option(name: .customLong("redis-password-env"), help: ArgumentHelp("Environment variable holding the Redis password (redis.password_env).", valueName: "VAR"))
    var redisPasswordEnv: String?
    @Option(name: .customLong("redis-tls-ca"), help: ArgumentHelp("PEM CA file that signed Redis's certificate, for rediss:// (redis.tls.ca_file).", valueName: "FILE"))
    var redisTLSCA: String?

    /// Runs `body` with a connection that is closed afterwards.
    func withAdmin<T>(_ body: (BudgetAdmin, VirtualKeyStore) async throws -> T) async throws -> T {
        let (admin, keys, connection) = try self.admin()
        defer { connection.shutdown() }
        do {
            // A refused login names its setting here, rather than as the first command's NOAUTH.
            try await connection.verify()
            return try await body(admin, keys)
        } catch let error as RedisError {
            if case .misconfigured = error {
                throw ValidationError("\(error). The CLI reads the login from --config FILE, or --redis-user, --redis-password-env and --redis-tls-ca.")
            }
            throw ValidationError("\(error). Point the CLI at your Redis with --redis URL, --config FILE or TOLLGATE_REDIS_URL.")
        }
    }

    private func admin() throws -> (BudgetAdmin, VirtualKeyStore, RedisConnection) {
        var settings = try loadConfig(config)
        if let redis { settings.redis.url = redis }
        if let redisUser { settings.redis.username = redisUser }
        if let redisPasswordEnv { (settings.redis.passwordEnv, settings.redis.passwordFile) = (redisPasswordEnv, nil) }
        if let redisTLSCA { settings.redis.tls.caFile = redisTLSCA }
        let endpoint: RedisEndpoint
        do { endpoint = try settings.redis.endpoint(environment: ProcessInfo.processInfo.environment) } catch let error as ConfigError {
            throw ValidationError("\(error) (the CLI's --redis, --redis-user and --redis-password-env set the same)")
        }
        if redisTLSCA != nil, endpoint.tls == nil { throw ValidationError("--redis-tls-ca needs a rediss:// URL (got \(endpoint))") }
        var logger = Logger(label: "tollgate-cli")
        logger.logLevel = .error
        let connection = RedisConnection(endpoint: endpoint, timeoutMilliseconds: max(settings.redis.timeoutMilliseconds, 2_000), scripts: [], logger: logger,
                                         topology: try settings.redis.topology(environment: ProcessInfo.processInfo.environment))
        let admin = BudgetAdmin(redis: connection, defaultDailyLimit: settings.clients.dailyLimit,
                                defaultMonthlyLimit: settings.clients.monthlyLimit, defaultPolicy: settings.clients.defaults,
                                timezone: { [settings] in settings.timezoneSchedule(at: $0) })
        return (admin, VirtualKeyStore(redis: connection), connection)
    }
}

func clientArgument(_ raw: String) throws -> ClientID {
    guard let id = ClientID(raw) else { throw ValidationError("client id '\(raw)' must be \(ClientID.rule)") }
    return id
}

func usdOption(_ raw: String?, _ name: String) throws -> NanoUSD? {
    guard let raw else { return nil }
    guard let v = NanoUSD(usd: raw), v >= .zero, v < NanoUSD.scriptLimit else {
        throw ValidationError("--\(name) must be a USD amount such as 5 or 2.50 (got \(raw))")
    }
    return v
}

struct Budgets: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Read and set per-client limits and policies.",
                                                    subcommands: [Set.self, Get.self, Reset.self], aliases: ["budget"])

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set a client's daily and/or monthly limit (USD) and its own policy.",
            discussion: "Options not given keep the client's current values. A policy option given the value 'default' removes the client's own value, so the config's clients.defaults applies again.")
        @OptionGroup var redis: RedisOptions
        @Argument var client: String
        @Option var daily: String?
        @Option var monthly: String?
        @Flag(help: "Put the limits not given back to the defaults.") var resetOthers = false
        @Option(help: "What a request over the budget gets: block, warn or stop.") var onLimit: String?
        @Option(help: "Percent of a budget (1-100) from which requests move to cheaper models; 0 turns downgrade off.") var downgradeAt: String?
        @Option(help: ArgumentHelp("A model and its cheaper replacement (repeatable); CHEAPER 'none': never downgrade MODEL.", valueName: "MODEL=CHEAPER"))
        var downgrade: [String] = []
        @Option(help: "Most repeats of one request within the loop window; 0 turns the loop breaker off.") var loopMax: String?
        @Option(help: "The loop breaker's window, seconds (1-86400).") var loopWindow: String?
        @Option(help: "Default cap of a workflow run (X-Budget-Run), USD.") var runLimit: String?
        @Option(help: "Percents of a budget whose crossing fires an alert, e.g. 50,80,100; 'none' turns alerts off.") var alerts: String?

        func run() async throws {
            let id = try clientArgument(client)
            var edit = try policyEdit()
            guard daily != nil || monthly != nil || !edit.isEmpty else {
                throw ValidationError("give --daily, --monthly or a policy option (--on-limit, --downgrade-at, --downgrade, --loop-max, --loop-window, --run-limit, --alerts)")
            }
            for (field, raw, name) in [("daily", daily, "daily"), ("monthly", monthly, "monthly")] {
                if let value = try usdOption(raw, name) { edit.put(field, String(value.value)) } else if resetOthers { edit.put(field, nil) }
            }
            let budget = try await redis.withAdmin { admin, _ in
                try await admin.edit(id, edit)
                return try await admin.budget(id)
            }
            printBudget(id, budget)
        }

        /// The policy options as one edit of the limits hash; `default` removes a value.
        func policyEdit() throws -> BudgetEdit {
            typealias F = ClientPolicy.Field
            var edit = BudgetEdit()
            func given(_ raw: String?, _ field: String, _ check: (String) throws -> String) throws {
                guard let raw else { return }
                edit.put(field, raw == "default" ? nil : try check(raw))
            }
            func integer(_ name: String, _ range: ClosedRange<Int>, _ what: String) -> (String) throws -> String {
                { raw in
                    guard let n = Int(raw), range.contains(n) else {
                        throw ValidationError("--\(name) must be \(what) from \(range.lowerBound) to \(range.upperBound), or 'default' (got \(raw))")
                    }
                    return String(n)
                }
            }
            try given(onLimit, F.onLimit) { raw in
                guard ClientPolicy.OnLimit(rawValue: raw) != nil else { throw ValidationError("--on-limit must be block, warn, stop or default (got \(raw))") }
                return raw
            }
            try given(downgradeAt, F.downgradeAt, integer("downgrade-at", PolicyRule.percent, "a percent (0 turns downgrade off)"))
            try given(loopMax, F.loopMax, integer("loop-max", PolicyRule.loopMax, "a number of repeats (0 turns the loop breaker off)"))
            try given(loopWindow, F.loopWindow, integer("loop-window", PolicyRule.loopWindow, "seconds"))
            try given(runLimit, F.runLimit) { raw in String(try usdOption(raw, "run-limit")!.value) }
            try given(alerts, F.alerts) { raw in
                guard let thresholds = AlertThresholds.validated(raw) else { throw ValidationError("--alerts must be \(AlertThresholds.rule), or 'default' (got \(raw))") }
                return AlertThresholds.field(thresholds)
            }
            for pair in downgrade {
                let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, PolicyRule.isModelName(parts[0]), PolicyRule.isModelName(parts[1]) else {
                    throw ValidationError("--downgrade must be MODEL=CHEAPER, e.g. gpt-4o=gpt-4o-mini (CHEAPER 'none' or 'default' also work), each \(PolicyRule.modelName) (got \(pair))")
                }
                edit.put(F.downgrade(parts[0]), parts[1] == "default" ? nil : parts[1])
            }
            return edit
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a client's limits and the policy in force.", aliases: ["show"])
        @OptionGroup var redis: RedisOptions
        @Argument var client: String
        func run() async throws {
            let id = try clientArgument(client)
            printBudget(id, try await redis.withAdmin { admin, _ in try await admin.budget(id) })
        }
    }

    struct Reset: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put a client's limits and policy back to the defaults.")
        @OptionGroup var redis: RedisOptions
        @Argument var client: String
        func run() async throws {
            let id = try clientArgument(client)
            printBudget(id, try await redis.withAdmin { admin, _ in try await admin.reset(id) })
        }
    }
}

func printBudget(_ client: ClientID, _ budget: (limits: BudgetAdmin.Limits, policy: EffectivePolicy)) {
    let l = budget.limits, p = budget.policy
    func mark<T: Sendable & Equatable>(_ v: EffectivePolicy.Value<T>) -> String { v.isDefault ? " (default)" : "" }
    print("\(client): daily $\(l.daily.usdString)\(l.dailyIsDefault ? " (default)" : ""), monthly $\(l.monthly.usdString)\(l.monthlyIsDefault ? " (default)" : "")")
    print("  on limit:      \(p.onLimit.value.rawValue)\(mark(p.onLimit))")
    print("  downgrade at:  \(p.downgradeAt.value == 0 ? "off" : "\(p.downgradeAt.value)%")\(mark(p.downgradeAt))")
    for (model, cheaper) in p.downgrades.sorted(by: { $0.key < $1.key }) {
        print("    \(model) -> \(cheaper.value)\(mark(cheaper))")
    }
    print("  loop breaker:  \(p.loopMax.value == 0 ? "off" : "\(p.loopMax.value) repeats")\(mark(p.loopMax)), window \(p.loopWindow.value) s\(mark(p.loopWindow))")
    print("  run limit:     \(p.runLimit.value.map { "$" + $0.usdString } ?? "none")\(mark(p.runLimit))")
    print("  alerts at:     \(p.alertThresholds.value.isEmpty ? "none" : p.alertThresholds.value.map { "\($0)%" }.joined(separator: ", "))\(mark(p.alertThresholds))")
}

struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Manage virtual keys (clients.auth: keys).", subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key for a client; it is shown once.")
        @OptionGroup var redis: RedisOptions
        @Argument var client: String
        @Option(help: "A name to recognise the key by.") var name: String = "default"
        func run() async throws {
            let id = try clientArgument(client)
            guard (1...100).contains(name.count), !name.contains("|") else { throw ValidationError("--name must be 1-100 characters without '|'") }
            let (info, secret) = try await redis.withAdmin { _, keys in try await keys.create(client: id, name: name) }
            print("\(secret)\n(id \(info.id), client \(info.client), name \(info.name); shown once: store it now)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (never the secrets).")
        @OptionGroup var redis: RedisOptions
        @Option(help: "Only this client's keys.") var client: String?
        func run() async throws {
            let filter = try client.map(clientArgument)
            let all = try await redis.withAdmin { _, keys in try await keys.list(client: filter) }
            if all.isEmpty { print("no keys") }
            for k in all { print("\(k.id)  \(k.client)  \(k.name)  created \(k.createdAt.rfc3339)") }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key by id; it stops working at once.")
        @OptionGroup var redis: RedisOptions
        @Argument var id: String
        func run() async throws {
            guard try await redis.withAdmin({ _, keys in try await keys.revoke(id: id) }) else { throw ValidationError("no key with id \(id) (see tollgate keys list)") }
            print("revoked \(id)")
        }
    }
}
