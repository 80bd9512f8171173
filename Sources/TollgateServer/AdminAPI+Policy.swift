import TollgateCore
import TollgateRedis

/// The `policy` object of `POST /v1/budgets` and of the budget answers (docs/admin-openapi.yaml).
/// In a request a key left out keeps the client's value and `null` removes it (the default
/// applies again); the answer shows the policy in force, each value marked `…_is_default`.
extension AdminAPI {
    static let policyKeys = ["on_limit", "downgrade", "loop_breaker", "run_limit_usd", "alert_thresholds"]
    static let policyExample = #"{"on_limit":"warn","downgrade":{"at_percent":80,"models":{"gpt-4o":"gpt-4o-mini"}},"loop_breaker":{"max_repeats":20,"window_seconds":60},"run_limit_usd":5}"#

    static func policyEdit(_ value: JSONValue?) throws -> BudgetEdit {
        typealias F = ClientPolicy.Field
        var edit = BudgetEdit()
        guard let value else { return edit }
        if value.isNull {
            for field in [F.onLimit, F.downgradeAt, F.loopMax, F.loopWindow, F.runLimit] { edit.put(field, nil) }
            edit.removeAllDowngrades = true
            return edit
        }
        try members(value, "policy", allowed: policyKeys, example: policyExample)
        if let v = value["on_limit"] {
            let options = ClientPolicy.OnLimit.allCases.map(\.rawValue)
            guard v.isNull || v.string.flatMap(ClientPolicy.OnLimit.init(rawValue:)) != nil else {
                throw Failure.bad("policy.on_limit must be one of \(options.joined(separator: ", ")) (or null for the default), got \(v.serialized.prefix(40)).")
            }
            edit.put(F.onLimit, v.string)
        }
        if let d = value["downgrade"] {
            if d.isNull {
                edit.put(F.downgradeAt, nil)
                edit.removeAllDowngrades = true
            } else {
                try members(d, "policy.downgrade", allowed: ["at_percent", "models"], example: #"{"at_percent":80,"models":{"gpt-4o":"gpt-4o-mini"}}"#)
                if let at = d["at_percent"] {
                    edit.put(F.downgradeAt, try integer(at, "policy.downgrade.at_percent", in: PolicyRule.percent,
                                                        "a percent of the budget from 1 to 100 (0 turns downgrade off for this client)"))
                }
                if let models = d["models"] {
                    if models.isNull { edit.removeAllDowngrades = true }
                    guard case .object(let pairs) = models.isNull ? .object([]) : models else {
                        throw Failure.bad("policy.downgrade.models must be an object of model to cheaper model, e.g. {\"gpt-4o\":\"gpt-4o-mini\"}, or null.")
                    }
                    for (model, cheaper) in pairs {
                        guard PolicyRule.isModelName(model) else { throw Failure.bad("policy.downgrade.models: each key must be \(PolicyRule.modelName) (got \"\(model.prefix(40))\").") }
                        guard cheaper.isNull || cheaper.string.map(PolicyRule.isModelName) == true else {
                            throw Failure.bad("policy.downgrade.models.\(model) must be \(PolicyRule.modelName), \"none\" to never downgrade it, or null for the default.")
                        }
                        edit.put(F.downgrade(model), cheaper.string)
                    }
                }
            }
        }
        if let loop = value["loop_breaker"] {
            if loop.isNull {
                edit.put(F.loopMax, nil)
                edit.put(F.loopWindow, nil)
            } else {
                try members(loop, "policy.loop_breaker", allowed: ["max_repeats", "window_seconds"], example: #"{"max_repeats":20,"window_seconds":60}"#)
                if let n = loop["max_repeats"] {
                    edit.put(F.loopMax, try integer(n, "policy.loop_breaker.max_repeats", in: PolicyRule.loopMax,
                                                    "the most times one request may repeat within the window (0 turns the loop breaker off for this client)"))
                }
                if let w = loop["window_seconds"] {
                    edit.put(F.loopWindow, try integer(w, "policy.loop_breaker.window_seconds", in: PolicyRule.loopWindow, "seconds"))
                }
            }
        }
        if let run = value["run_limit_usd"] {
            edit.put(F.runLimit, try usd(run, "policy.run_limit_usd").map { String($0.value) })
        }
        if let alerts = value["alert_thresholds"] {
            edit.put(F.alerts, try alertThresholds(alerts))
        }
        return edit
    }

    /// `[50, 80, 100]`, `[]` or "none" (alerts off for the client), or null (the default).
    static func alertThresholds(_ value: JSONValue) throws -> String? {
        if value.isNull { return nil }
        if value.string == "none" { return AlertThresholds.field([]) }
        guard case .array(let items) = value, items.allSatisfy({ $0.int.map { AlertThresholds.range.contains(Int($0)) } ?? false }) else {
            throw Failure.bad("policy.alert_thresholds must be an array of percents from 1 to 1000 such as [50, 80, 100], [] or \"none\" "
                              + "to turn alerts off for this client, or null for the default; got \(value.serialized.prefix(40)).")
        }
        return AlertThresholds.field(Set(items.compactMap { $0.int.map(Int.init) }).sorted())
    }

    /// Refuses a non-object or an unknown key, naming the keys it takes.
    static func members(_ value: JSONValue, _ name: String, allowed: [String], example: String) throws {
        guard case .object = value else { throw Failure.bad("\(name) must be an object like \(example), or null for the defaults.") }
        for key in value.objectKeys where !allowed.contains(key) {
            throw Failure.bad("Unknown key \"\(key)\" in \(name). It takes \(allowed.joined(separator: ", ")), e.g. \(example).")
        }
    }

    /// nil for JSON null (remove the field); otherwise an integer in `range`, as text.
    static func integer(_ value: JSONValue, _ name: String, in range: ClosedRange<Int>, _ what: String) throws -> String? {
        if value.isNull { return nil }
        guard let n = value.int, range.contains(Int(n)) else {
            throw Failure.bad("\(name) must be an integer from \(range.lowerBound) to \(range.upperBound): \(what); or null for the default.")
        }
        return String(n)
    }

    static func policyJSON(_ p: EffectivePolicy, marked: Bool) -> JSONValue {
        typealias Members = [(key: String, value: JSONValue)]
        func member<T: Sendable & Equatable>(_ key: String, _ v: EffectivePolicy.Value<T>, _ json: (T) -> JSONValue) -> Members {
            var out: Members = [(key: key, value: json(v.value))]
            if marked { out.append((key: key + "_is_default", value: JSONValue.bool(v.isDefault))) }
            return out
        }
        let models = p.downgrades.sorted { $0.key < $1.key }
        var downgrade = member("at_percent", p.downgradeAt) { JSONValue.number(String($0)) }
        downgrade.append((key: "models", value: JSONValue.object(models.map { (key: $0.key, value: JSONValue.string($0.value.value)) })))
        if marked {
            downgrade.append((key: "models_is_default", value: JSONValue.object(models.map { (key: $0.key, value: JSONValue.bool($0.value.isDefault)) })))
        }
        let loop = member("max_repeats", p.loopMax) { JSONValue.number(String($0)) }
            + member("window_seconds", p.loopWindow) { JSONValue.number(String($0)) }
        var all = member("on_limit", p.onLimit) { JSONValue.string($0.rawValue) }
        all.append((key: "downgrade", value: JSONValue.object(downgrade)))
        all.append((key: "loop_breaker", value: JSONValue.object(loop)))
        all += member("run_limit_usd", p.runLimit) { $0.map { JSONValue.number($0.usdString) } ?? JSONValue.null }
        all += member("alert_thresholds", p.alertThresholds) { JSONValue.array($0.map { JSONValue.number(String($0)) }) }
        return .object(all)
    }
}
