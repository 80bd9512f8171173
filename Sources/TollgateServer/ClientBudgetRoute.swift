import HTTPTypes
import Hummingbird
import NIOCore
import TollgateCore
import TollgateRedis

/// `GET /v1/budget` on the proxy's port: a client's own budget, so an agent can check what it
/// has left before it starts work (docs/operations.md). The caller is identified exactly as a
/// proxied request is, and sees only its own counters. With the run header it also sees that
/// workflow run; the other budget headers lower the day and month limits as they would for a
/// request. Errors come in OpenAI's shape, like the proxy's.
struct ClientBudgetRoute: Sendable {
    let identity: ClientIdentity
    let admin: BudgetAdmin
    let headerNames: BudgetHeaderNames

    func respond(_ request: Request) async -> Response {
        do {
            return AdminAPI.json(.ok, try await budget(request.headers))
        } catch let error as ProxyError {
            return error.response(family: .openAI)
        } catch {
            return ProxyError.budgetUnavailable(error as? RedisError ?? .unexpectedReply("\(error)")).response(family: .openAI)
        }
    }

    func budget(_ headers: HTTPFields) async throws -> JSONValue {
        let client = try await identity.identify(headers)
        let caps = try BudgetHeaderCaps(headers, names: headerNames)
        let date = try await admin.today()
        async let own = admin.budget(client)
        var spend = try await admin.spend(client, date: date)
        spend.day.limit = BudgetHeaderCaps.lowering(spend.day.limit, to: caps.daily) ?? spend.day.limit
        spend.month.limit = BudgetHeaderCaps.lowering(spend.month.limit, to: caps.monthly) ?? spend.month.limit
        let (_, policy) = try await own
        guard case .object(var members) = AdminAPI.spendJSON(spend, date: date) else { return .null }
        if let run = caps.run {
            // The same cap as lua/reserve_v5.lua: the header's, lowering the policy's run_limit.
            let limit = BudgetHeaderCaps.lowering(policy.runLimit.value, to: caps.runLimit)
            let r = try await admin.runSpend(client, run: run)
            members.append(("run", .object([
                ("run_id", .string(run.rawValue)), ("spent_usd", .number(r.spent.usdString)),
                ("reserved_usd", .number(r.reserved.usdString)), ("requests", .number(String(r.requests))),
                ("limit_usd", limit.map { JSONValue.number($0.usdString) } ?? JSONValue.null),
                ("remaining_usd", limit.map { JSONValue.number(max(NanoUSD.zero, $0 - r.spent - r.reserved).usdString) } ?? JSONValue.null),
            ])))
        }
        members.append(("policy", AdminAPI.policyJSON(policy, marked: false)))
        return .object(members)
    }
}
