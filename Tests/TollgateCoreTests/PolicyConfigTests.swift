import Testing
@testable import TollgateCore

@Suite("clients.defaults and clients.budget_headers")
struct PolicyConfigTests {
    @Test("without them: block, no downgrade, no loop breaker, no run cap, the X-Budget-* header names")
    func defaults() throws {
        let c = try TollgateConfig.load(yaml: "")
        #expect(c.clients.defaults == ClientPolicy())
        #expect(c.clients.defaults.onLimit == .block)
        #expect(c.clients.defaults.downgrade == nil)
        #expect(c.clients.defaults.loopBreaker == nil)
        #expect(c.clients.defaults.runLimit == nil)
        #expect(c.clients.budgetHeaders.all == ["X-Budget-Daily-USD", "X-Budget-Monthly-USD", "X-Budget-Run", "X-Budget-Run-USD"])
    }

    @Test("a full block is read key by key, model names with dots included")
    func full() throws {
        let c = try TollgateConfig.load(yaml: """
            clients:
              defaults:
                on_limit: stop
                downgrade: { at_percent: 80, models: { gpt-4o: gpt-4o-mini, gpt-4.1: gpt-4.1-nano } }
                loop_breaker: { max_repeats: 20, window_seconds: 90 }
                run_limit_usd: 1e-06
                run_ttl_seconds: 3600
              budget_headers: { daily: X-Cap-Daily }
            """)
        let p = c.clients.defaults
        #expect(p.onLimit == .stop)
        #expect(p.downgrade == ClientPolicy.Downgrade(atPercent: 80, models: ["gpt-4o": "gpt-4o-mini", "gpt-4.1": "gpt-4.1-nano"]))
        #expect(p.loopBreaker == ClientPolicy.LoopBreaker(maxRepeats: 20, windowSeconds: 90))
        #expect(p.runLimit == NanoUSD(1_000))
        #expect(p.runTTLSeconds == 3_600)
        #expect(c.clients.budgetHeaders.daily == "X-Cap-Daily")
        #expect(c.clients.budgetHeaders.monthly == "X-Budget-Monthly-USD")
    }

    @Test("mistakes name the key and the fix", arguments: [
        ("clients: { defaults: { on_limit: pause } }", "clients.defaults.on_limit"),
        ("clients: { defaults: { downgrade: { at_percent: 80 } } }", "clients.defaults.downgrade.models"),
        ("clients: { defaults: { downgrade: { models: { gpt-4o: gpt-4o-mini } } } }", "clients.defaults.downgrade.at_percent"),
        ("clients: { defaults: { downgrade: { at_percent: 120, models: { a: b } } } }", "clients.defaults.downgrade.at_percent"),
        ("clients: { defaults: { loop_breaker: { max_repeats: -1 } } }", "clients.defaults.loop_breaker.max_repeats"),
        ("clients: { defaults: { on_limt: warn } }", "clients.defaults.on_limt"),
        ("clients: { budget_headers: { run: 'X Run' } }", "clients.budget_headers.run"),
    ])
    func mistakes(yaml: String, key: String) {
        #expect { try TollgateConfig.load(yaml: yaml) } throws: { ($0 as? ConfigError)?.key == key }
    }

    @Test("max_repeats 0 turns the loop breaker off")
    func loopOff() throws {
        let c = try TollgateConfig.load(yaml: "clients: { defaults: { loop_breaker: { max_repeats: 0 } } }")
        #expect(c.clients.defaults.loopBreaker == nil)
    }
}
