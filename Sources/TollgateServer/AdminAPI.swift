import Hummingbird
import HTTPTypes
import NIOCore
import TollgateCore
import TollgateRedis

/// The operators' API on its own listener (docs/admin-openapi.yaml is its contract), and the
/// spend dashboard (Dashboard.swift) on the same listener behind the same token.
/// Errors share one shape: `{"error":{"code":"…","message":"…how to fix…"}}`.
struct AdminAPI: Sendable {
    let admin: BudgetAdmin
    let keys: VirtualKeyStore
    let token: String?
    /// `budget.timezone`, named on the dashboard.
    var timezone = "UTC"
    var analytics: SpendAnalytics { SpendAnalytics(admin: admin) }

    func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.addMiddleware { AdminGuard(token: token) }
        let api = self
        router.post("/v1/budgets") { request, _ in await api.handle { try await api.setBudget(request) } }
        router.get("/v1/budgets/:client_id") { _, context in await api.handle { try await api.getBudget(context) } }
        router.delete("/v1/budgets/:client_id") { _, context in await api.handle { try await api.resetBudget(context) } }
        // Registered before the client route; a constant path segment wins over a parameter anyway.
        router.get("/v1/spend/top") { request, _ in await api.handle { try await api.topSpend(request) } }
        router.get("/v1/spend/:client_id") { request, context in await api.handle { try await api.spend(request, context) } }
        router.get("/v1/spend") { request, _ in await api.handle { try await api.allSpend(request) } }
        router.post("/v1/keys") { request, _ in await api.handle { try await api.createKey(request) } }
        router.get("/v1/keys") { request, _ in await api.handle { try await api.listKeys(request) } }
        router.delete("/v1/keys/:id") { _, context in await api.handle { try await api.revokeKey(context) } }
        Dashboard(analytics: analytics, timezone: timezone, token: token).register(on: router)
        return router
    }

    struct Failure: Error {
        var status: HTTPResponse.Status
        var code: String
        var message: String
        static func bad(_ message: String) -> Failure { Failure(status: .badRequest, code: "invalid_request", message: message) }
    }

    func handle(_ body: () async throws -> (HTTPResponse.Status, JSONValue)) async -> Response {
        do {
            let (status, json) = try await body()
            return Self.json(status, json)
        } catch let f as Failure {
            return Self.error(f.status, f.code, f.message)
        } catch let problem as DateRange.Problem {
            return Self.error(.badRequest, "invalid_request", problem.description)
        } catch {
            return Self.error(.serviceUnavailable, "redis_unavailable", "Redis did not answer (\(error)). Check that Redis is up, then retry.")
        }
    }

    static func json(_ status: HTTPResponse.Status, _ value: JSONValue) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: value.serialized)))
    }

    static func error(_ status: HTTPResponse.Status, _ code: String, _ message: String) -> Response {
        json(status, .object([("error", .object([("code", .string(code)), ("message", .string(message))]))]))
    }

    // MARK: budgets

    func setBudget(_ request: Request) async throws -> (HTTPResponse.Status, JSONValue) {
        let body = try await Self.body(request)
        let client = try Self.clientID(body["client_id"]?.string, field: "client_id")
        for field in body.objectKeys where !["client_id", "daily_limit_usd", "monthly_limit_usd", "policy"].contains(field) {
            throw Failure.bad("Unknown field \"\(field)\". Send client_id, daily_limit_usd and monthly_limit_usd (null = the default), and optionally policy.")
        }
        // Everything is checked before anything is written.
        var edit = try Self.policyEdit(body["policy"])
        edit.put("daily", try Self.usd(body["daily_limit_usd"], "daily_limit_usd").map { String($0.value) })
        edit.put("monthly", try Self.usd(body["monthly_limit_usd"], "monthly_limit_usd").map { String($0.value) })
        try await admin.edit(client, edit)
        return (.ok, Self.budgetJSON(client, try await admin.budget(client)))
    }

    func getBudget(_ context: BasicRequestContext) async throws -> (HTTPResponse.Status, JSONValue) {
        let client = try Self.clientID(context.parameters.get("client_id"), field: "client_id")
        return (.ok, Self.budgetJSON(client, try await admin.budget(client)))
    }

    /// Limits and policy back to the defaults.
    func resetBudget(_ context: BasicRequestContext) async throws -> (HTTPResponse.Status, JSONValue) {
        let client = try Self.clientID(context.parameters.get("client_id"), field: "client_id")
        return (.ok, Self.budgetJSON(client, try await admin.reset(client)))
    }

    static func budgetJSON(_ client: ClientID, _ budget: (limits: BudgetAdmin.Limits, policy: EffectivePolicy)) -> JSONValue {
        let l = budget.limits
        return .object([
            ("client_id", .string(client.rawValue)), ("daily_limit_usd", .number(l.daily.usdString)),
            ("monthly_limit_usd", .number(l.monthly.usdString)), ("daily_is_default", .bool(l.dailyIsDefault)),
            ("monthly_is_default", .bool(l.monthlyIsDefault)), ("policy", policyJSON(budget.policy, marked: true)),
        ])
    }

    // MARK: spend

    func allSpend(_ request: Request) async throws -> (HTTPResponse.Status, JSONValue) {
        let date = try await self.date(request)
        var rows = try await admin.allSpend(date: date)
        switch request.uri.queryParameters.get("sort") ?? "spent" {
        case "spent": break
        case "client_id": rows.sort { $0.client.rawValue < $1.client.rawValue }
        case let other: throw Failure.bad("sort must be spent or client_id (got \(other)).")
        }
        return (.ok, .object([("date", .string(date)), ("clients", .array(rows.map { Self.spendJSON($0, date: date) }))]))
    }

    func date(_ request: Request) async throws -> String {
        guard let date = request.uri.queryParameters.get("date") else { return try await admin.today() }
        guard CivilDate.parseDay(date) != nil else { throw Failure.bad("date must be a calendar date YYYY-MM-DD (got \(date)).") }
        return date
    }

    static func spendJSON(_ s: BudgetAdmin.ClientSpend, date: String) -> JSONValue {
        func period(_ p: BudgetAdmin.PeriodSpend, _ key: String) -> JSONValue {
            .object([
                (key, .string(p.period)), ("spent_usd", .number(p.spent.usdString)), ("reserved_usd", .number(p.reserved.usdString)),
                ("requests", .number(String(p.requests))), ("refused", .number(String(p.refused))),
                ("limit_usd", .number(p.limit.usdString)), ("remaining_usd", .number(p.remaining.usdString)),
                ("resets_at", .string(p.resetsAt.rfc3339)),
            ])
        }
        return .object([("client_id", .string(s.client.rawValue)), ("day", period(s.day, "date")), ("month", period(s.month, "month"))])
    }

    // MARK: keys

    func createKey(_ request: Request) async throws -> (HTTPResponse.Status, JSONValue) {
        let body = try await Self.body(request)
        let client = try Self.clientID(body["client_id"]?.string, field: "client_id")
        let name = body["name"]?.string ?? ""
        guard (1...100).contains(name.count), !name.contains("|") else {
            throw Failure.bad("name must be 1-100 characters without '|', e.g. \"search-agent prod\".")
        }
        let (info, secret) = try await keys.create(client: client, name: name)
        var json = Self.keyJSON(info)
        if case .object(var members) = json {
            members.insert((key: "key", value: .string(secret)), at: 1)
            json = .object(members)
        }
        return (.created, json)
    }

    func listKeys(_ request: Request) async throws -> (HTTPResponse.Status, JSONValue) {
        let client = try request.uri.queryParameters.get("client_id").map { try Self.clientID($0, field: "client_id") }
        return (.ok, .object([("keys", .array(try await keys.list(client: client).map(Self.keyJSON)))]))
    }

    func revokeKey(_ context: BasicRequestContext) async throws -> (HTTPResponse.Status, JSONValue) {
        let id = context.parameters.get("id") ?? ""
        guard try await keys.revoke(id: id) else {
            throw Failure(status: .notFound, code: "not_found", message: "No key with id \(id). List keys with GET /v1/keys.")
        }
        return (.ok, .object([("id", .string(id)), ("revoked", .bool(true))]))
    }

    static func keyJSON(_ k: VirtualKeyStore.Info) -> JSONValue {
        .object([("id", .string(k.id)), ("client_id", .string(k.client.rawValue)), ("name", .string(k.name)), ("created_at", .string(k.createdAt.rfc3339))])
    }

    // MARK: input

    static func body(_ request: Request) async throws -> JSONValue {
        let buffer = try await request.body.collect(upTo: 64 * 1024)
        guard let value = try? JSONValue.parse(buffer.readableBytesView), case .object = value else {
            throw Failure.bad("The body must be a JSON object, e.g. {\"client_id\":\"alice\",\"daily_limit_usd\":5}.")
        }
        return value
    }

    static func clientID(_ raw: String?, field: String) throws -> ClientID {
        guard let raw else { throw Failure.bad("\(field) is required: \(ClientID.rule).") }
        guard let id = ClientID(raw) else { throw Failure.bad("\(field) '\(raw)' is invalid: it must be \(ClientID.rule).") }
        return id
    }

    /// Absent or null: the configured default. Otherwise a non-negative USD amount, parsed from
    /// the number's own text (never through Double), so `1e-06` is exactly 1000 nano-USD.
    static func usd(_ value: JSONValue?, _ field: String) throws -> NanoUSD? {
        guard let value, !value.isNull else { return nil }
        guard case .number(let text) = value, let v = NanoUSD(usd: text), v >= .zero, v < NanoUSD.scriptLimit else {
            throw Failure.bad("\(field) must be a USD amount from 0 to 9000000 with at most 9 decimals, or null for the default.")
        }
        return v
    }
}

extension JSONValue {
    var objectKeys: [String] {
        if case .object(let members) = self { return members.map(\.key) }
        return []
    }
}
