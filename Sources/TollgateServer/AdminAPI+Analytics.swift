import Hummingbird
import HTTPTypes
import TollgateCore
import TollgateRedis

/// Spend over time on the admin listener: a client's days over a range (`GET /v1/spend/{client}`
/// adds them to the day and month it always showed) and the top clients of a day or a month.
extension AdminAPI {
    static let defaultRangeDays = 30
    static let topLimits = (default: 20, max: 1000)

    /// The day and month of `date` (default today) as before, plus `from`/`to`, a row per day,
    /// per-model totals and the total. The range defaults to the 30 days ending today.
    func spend(_ request: Request, _ context: BasicRequestContext) async throws -> (HTTPResponse.Status, JSONValue) {
        let client = try Self.clientID(context.parameters.get("client_id"), field: "client_id")
        let date = try await self.date(request)
        let range = try await self.range(request)
        async let snapshot = admin.spend(client, date: date)
        async let days = analytics.days(client, range)
        guard case .object(let members) = Self.spendJSON(try await snapshot, date: date) else { return (.ok, .null) }
        return (.ok, .object(members + SpendJSON.history(try await days, range)))
    }

    /// `from`/`to` (YYYY-MM-DD, inclusive): `from` alone runs to today, `to` alone takes the 30
    /// days ending there.
    func range(_ request: Request) async throws -> DateRange {
        let query = request.uri.queryParameters
        let from = query.get("from"), to = query.get("to")
        let end: String
        if let to { end = to } else { end = try await admin.today() }
        if let from { return try DateRange(from: from, to: end) }
        return try DateRange.last(Self.defaultRangeDays, endingOn: end)
    }

    /// `?day=YYYY-MM-DD` or `?month=YYYY-MM` (default today), `limit` 1-1000 (default 20).
    func topSpend(_ request: Request) async throws -> (HTTPResponse.Status, JSONValue) {
        let query = request.uri.queryParameters
        let limit = try Self.topLimit(query.get("limit"))
        let period: SpendAnalytics.Period
        switch (query.get("day"), query.get("month")) {
        case (let day?, nil):
            _ = try DateRange.day(day, name: "day")
            period = .day(day)
        case (nil, let month?): period = .month(try DateRange.month(month, name: "month"))
        case (nil, nil): period = .day(try await admin.today())
        case (_?, _?): throw Failure.bad("Give day=YYYY-MM-DD or month=YYYY-MM, not both.")
        }
        let rows = try await analytics.top(period, count: limit)
        let kind = if case .day = period { "day" } else { "month" }
        return (.ok, .object([("period", .string(kind)), (kind, .string(period.name)), ("clients", .array(rows.map(SpendJSON.top)))]))
    }

    static func topLimit(_ raw: String?) throws -> Int {
        guard let raw else { return topLimits.default }
        guard let n = Int(raw), (1...topLimits.max).contains(n) else {
            throw Failure.bad("limit must be a whole number from 1 to \(topLimits.max) (got \(raw.prefix(20))); the default is \(topLimits.default).")
        }
        return n
    }
}
