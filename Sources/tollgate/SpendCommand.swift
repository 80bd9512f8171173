import ArgumentParser
import TollgateCore
import TollgateRedis
import TollgateServer

struct Spend: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show spend: per client on one day, or per model or per day over several days.",
        discussion: """
            Without --by: each client's spend on one day (--date, default today) and in its month.
            With --by model or --by day: the --days days ending --date (default: the 30 days ending today), \
            for one client or summed over every client that spent in them.
            """)

    enum Breakdown: String, ExpressibleByArgument, CaseIterable {
        case model, day
    }

    @OptionGroup var redis: RedisOptions
    @Argument(help: "Client id; all clients when omitted.") var client: String?
    @Option(name: .customLong("client"), help: "Client id (the same as the argument).") var clientOption: String?
    @Option(help: "Day, YYYY-MM-DD (default: today in budget.timezone); with --by, the last day shown.") var date: String?
    @Option(help: "Break spend over --days days down by model or by day.") var by: Breakdown?
    @Option(help: "With --by: how many days, ending with --date (1-\(DateRange.maxDays), default 30).") var days: Int?
    @Flag(help: "Print JSON instead of a table.") var json = false
    @Flag(help: "Print CSV with a header row instead of a table.") var csv = false

    func validate() throws {
        if json && csv { throw ValidationError("give --json or --csv, not both") }
        if let date, CivilDate.parseDay(date) == nil { throw ValidationError("--date must be YYYY-MM-DD (got \(date))") }
        if let days {
            guard by != nil else { throw ValidationError("--days needs --by model or --by day") }
            guard (1...DateRange.maxDays).contains(days) else { throw ValidationError("--days must be from 1 to \(DateRange.maxDays) (got \(days))") }
        }
        if let client, let clientOption, client != clientOption {
            throw ValidationError("give the client once: as the argument or as --client")
        }
    }

    func run() async throws {
        let only = try (clientOption ?? client).map(clientArgument)
        guard let by else { return try await perClient(only) }
        let (range, rows) = try await redis.withAdmin { admin, _ in
            let analytics = SpendAnalytics(admin: admin)
            let end: String
            if let date { end = date } else { end = try await admin.today() }
            let range = try DateRange.last(days ?? 30, endingOn: end)
            let clients: [ClientID]
            if let only { clients = [only] } else { clients = try await analytics.clients(spendingIn: range) }
            return (range, try await analytics.days(clients, range))
        }
        if json {
            let who: JSONValue = only.map { .string($0.rawValue) } ?? .null
            print(JSONValue.object([(key: "client_id", value: who)] + SpendJSON.history(rows, range)).serialized)
            return
        }
        let (header, body) = by == .model ? SpendTable.byModel(rows) : SpendTable.byDay(rows)
        if csv { return print(CSV.render(header, body), terminator: "") }
        let scope = only.map { "client \($0)" } ?? "all clients"
        print("Spend by \(by.rawValue), \(range.from) to \(range.to), \(scope)")
        print(TextTable.readable(header, body))
    }

    /// Each client's day and month (the command's original form).
    func perClient(_ only: ClientID?) async throws {
        let (day, rows) = try await redis.withAdmin { admin, _ in
            let day: String
            if let date { day = date } else { day = try await admin.today() }
            guard let only else { return (day, try await admin.allSpend(date: day)) }
            return (day, [try await admin.spend(only, date: day)])
        }
        if json { return print(JSONValue.array(rows.map(SpendTable.json)).serialized) }
        let body = rows.map { SpendTable.clientRow($0, date: day) }
        if csv { return print(CSV.render(SpendTable.clientColumns, body), terminator: "") }
        print("Spend on \(day)" + (rows.isEmpty ? ": no clients" : ""))
        print(TextTable.readable(SpendTable.clientColumns, body, dropping: ["date"]))
    }
}
