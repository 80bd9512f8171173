/// `clients.defaults` (the policy of every client without its own, docs/config.md) and
/// `clients.budget_headers` (the names of the per-request budget headers).
extension ConfigValues {
    static let policyKeys: Set<String> = [
        "clients.defaults", "clients.defaults.on_limit", "clients.defaults.downgrade", "clients.defaults.downgrade.at_percent",
        "clients.defaults.downgrade.models", "clients.defaults.loop_breaker", "clients.defaults.loop_breaker.max_repeats",
        "clients.defaults.loop_breaker.window_seconds", "clients.defaults.run_limit_usd", "clients.defaults.run_ttl_seconds",
        "clients.budget_headers", "clients.budget_headers.daily", "clients.budget_headers.monthly",
        "clients.budget_headers.run", "clients.budget_headers.run_usd",
    ]
    /// Model names are keys under this one, so they cannot be listed in advance.
    static let downgradeModelsPrefix = "clients.defaults.downgrade.models."

    func clientDefaults() throws -> ClientPolicy {
        var p = ClientPolicy()
        p.onLimit = try choice("clients.defaults.on_limit", ClientPolicy.OnLimit.self, options: ["block", "warn", "stop"]) ?? p.onLimit
        let models = modelMap(under: Self.downgradeModelsPrefix)
        if let at = try int("clients.defaults.downgrade.at_percent", in: 1...100, "percent ") {
            guard !models.isEmpty else {
                throw fail("clients.defaults.downgrade.models", "is required with at_percent: a map of model to cheaper model, e.g. { gpt-4o: gpt-4o-mini }")
            }
            p.downgrade = ClientPolicy.Downgrade(atPercent: at, models: models)
        } else if !models.isEmpty {
            throw fail("clients.defaults.downgrade.at_percent", "is required with downgrade.models: the percent of a budget (1-100) from which requests move to the cheaper model, e.g. 80")
        }
        let repeats = try int("clients.defaults.loop_breaker.max_repeats", in: 0...1_000_000, "(0 turns the loop breaker off) ")
            ?? p.loopBreaker?.maxRepeats ?? 0
        let window = try int("clients.defaults.loop_breaker.window_seconds", in: 1...86_400, "seconds ") ?? 60
        p.loopBreaker = repeats > 0 ? ClientPolicy.LoopBreaker(maxRepeats: repeats, windowSeconds: window) : nil
        p.runLimit = try usd("clients.defaults.run_limit_usd")
        p.runTTLSeconds = try int("clients.defaults.run_ttl_seconds", in: 60...31_536_000, "seconds ") ?? p.runTTLSeconds
        return p
    }

    func budgetHeaders() throws -> BudgetHeaderNames {
        var names = BudgetHeaderNames()
        func header(_ key: String, _ current: String) throws -> String {
            guard let s = string(key) else { return current }
            guard !s.isEmpty, s.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else {
                throw fail(key, "must be an HTTP header name of letters, digits and '-' (got '\(s)')")
            }
            return s
        }
        names.daily = try header("clients.budget_headers.daily", names.daily)
        names.monthly = try header("clients.budget_headers.monthly", names.monthly)
        names.run = try header("clients.budget_headers.run", names.run)
        names.runUSD = try header("clients.budget_headers.run_usd", names.runUSD)
        return names
    }
}
