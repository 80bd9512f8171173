import ArgumentParser
import Foundation
import Logging
import TollgateCore
import TollgateRedis

/// Options shared by the commands that talk to Redis directly (no replica needed).
struct RedisOptions: ParsableArguments {
    @Option(name: .long, help: "YAML config file for the Redis URL, default limits and timezone.")
    var config: String?
    @Option(name: .long, help: "Redis URL, overriding the config (also TOLLGATE_REDIS_URL).")
    var redis: String?

    /// Runs `body` with a connection that is closed afterwards.
    func withAdmin<T>(_ body: (BudgetAdmin, VirtualKeyStore) async throws -> T) async throws -> T {
        let (admin, keys, connection) = try self.admin()
        defer { connection.shutdown() }
        do { return try await body(admin, keys) } catch let error as RedisError {
            throw ValidationError("\(error). Point the CLI at your Redis with --redis URL, --config FILE or TOLLGATE_REDIS_URL.")
        }
    }

    private func admin() throws -> (BudgetAdmin, VirtualKeyStore, RedisConnection) {
        var settings = try loadConfig(config)
        if let redis { settings.redis.url = redis }
        guard let endpoint = RedisEndpoint(url: settings.redis.url) else {
            throw ValidationError("--redis must look like redis://HOST:PORT/DB (got \(settings.redis.url))")
        }
        var logger = Logger(label: "tollgate-cli")
        logger.logLevel = .error
        let connection = RedisConnection(endpoint: endpoint, timeoutMilliseconds: max(settings.redis.timeoutMilliseconds, 2_000), scripts: [], logger: logger)
        let admin = BudgetAdmin(redis: connection, defaultDailyLimit: settings.clients.dailyLimit,
                                defaultMonthlyLimit: settings.clients.monthlyLimit,
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
    static let configuration = CommandConfiguration(abstract: "Read and set per-client limits.", subcommands: [Set.self, Get.self, Reset.self])

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a client's daily and/or monthly limit (USD).")
        @OptionGroup var redis: RedisOptions
        @Argument var client: String
        @Option var daily: String?
        @Option var monthly: String?
        @Flag(help: "Put the limits not given back to the defaults.") var resetOthers = false

        func run() async throws {
            let id = try clientArgument(client)
            guard daily != nil || monthly != nil else { throw ValidationError("give --daily and/or --monthly") }
            let (newDaily, newMonthly) = (try usdOption(daily, "daily"), try usdOption(monthly, "monthly"))
            let limits = try await redis.withAdmin { admin, _ in
                let current = try await admin.limits(id)
                // A limit not given keeps its current value, unless --reset-others puts it back to the default.
                return try await admin.setLimits(
                    id, daily: newDaily ?? (resetOthers || current.dailyIsDefault ? nil : current.daily),
                    monthly: newMonthly ?? (resetOthers || current.monthlyIsDefault ? nil : current.monthly))
            }
            printLimits(id, limits)
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a client's limits.")
        @OptionGroup var redis: RedisOptions
        @Argument var client: String
        func run() async throws {
            let id = try clientArgument(client)
            printLimits(id, try await redis.withAdmin { admin, _ in try await admin.limits(id) })
        }
    }

    struct Reset: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put a client's limits back to the defaults.")
        @OptionGroup var redis: RedisOptions
        @Argument var client: String
        func run() async throws {
            let id = try clientArgument(client)
            printLimits(id, try await redis.withAdmin { admin, _ in try await admin.resetLimits(id) })
        }
    }
}

func printLimits(_ client: ClientID, _ l: BudgetAdmin.Limits) {
    print("\(client): daily $\(l.daily.usdString)\(l.dailyIsDefault ? " (default)" : ""), monthly $\(l.monthly.usdString)\(l.monthlyIsDefault ? " (default)" : "")")
}

struct Spend: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show spend for one client or all clients on a day.")
    @OptionGroup var redis: RedisOptions
    @Argument(help: "Client id; all clients when omitted.") var client: String?
    @Option(help: "Day, YYYY-MM-DD (default: today in budget.timezone).") var date: String?
    @Flag(help: "Print JSON instead of a table.") var json = false

    func run() async throws {
        if let date, CivilDate.parseDay(date) == nil { throw ValidationError("--date must be YYYY-MM-DD (got \(date))") }
        let only = try client.map(clientArgument)
        let (day, rows) = try await redis.withAdmin { admin, _ in
            let day: String
            if let date { day = date } else { day = try await admin.today() }
            guard let only else { return (day, try await admin.allSpend(date: day)) }
            return (day, [try await admin.spend(only, date: day)])
        }
        if json {
            print(JSONValue.array(rows.map(SpendTable.json)).serialized)
        } else {
            print(SpendTable.render(rows, date: day))
        }
    }
}

/// The readable table of `tollgate spend`.
enum SpendTable {
    static func render(_ rows: [BudgetAdmin.ClientSpend], date: String) -> String {
        let header = ["CLIENT", "DAY SPENT", "RESERVED", "DAY LIMIT", "LEFT TODAY", "REQUESTS", "REFUSED", "MONTH SPENT", "MONTH LIMIT"]
        let body = rows.map { r in
            [r.client.rawValue, "$" + r.day.spent.usdString, "$" + r.day.reserved.usdString, "$" + r.day.limit.usdString,
             "$" + r.day.remaining.usdString, String(r.day.requests), String(r.day.refused), "$" + r.month.spent.usdString,
             "$" + r.month.limit.usdString]
        }
        let widths = header.indices.map { i in ([header] + body).map { $0[i].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in i == 0 ? c.padding(toLength: widths[i], withPad: " ", startingAt: 0)
                : String(repeating: " ", count: widths[i] - c.count) + c }.joined(separator: "  ")
        }
        let title = "Spend on \(date)" + (rows.isEmpty ? ": no clients" : "")
        return ([title, line(header)] + body.map(line)).joined(separator: "\n")
    }

    static func json(_ r: BudgetAdmin.ClientSpend) -> JSONValue {
        func p(_ s: BudgetAdmin.PeriodSpend) -> JSONValue {
            .object([("period", .string(s.period)), ("spent_usd", .number(s.spent.usdString)), ("reserved_usd", .number(s.reserved.usdString)),
                     ("requests", .number(String(s.requests))), ("refused", .number(String(s.refused))), ("limit_usd", .number(s.limit.usdString)),
                     ("remaining_usd", .number(s.remaining.usdString)), ("resets_at", .string(s.resetsAt.rfc3339))])
        }
        return .object([("client_id", .string(r.client.rawValue)), ("day", p(r.day)), ("month", p(r.month))])
    }
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
