import Testing
import TollgateCore

@Suite("The policy in force: a client's own fields over clients.defaults")
struct EffectivePolicyTests {
    static let defaults: ClientPolicy = {
        var p = ClientPolicy()
        p.onLimit = .stop
        p.downgrade = ClientPolicy.Downgrade(atPercent: 90, models: ["gpt-4o": "gpt-4o-mini", "o3": "o4-mini"])
        p.loopBreaker = ClientPolicy.LoopBreaker(maxRepeats: 50, windowSeconds: 120)
        p.runLimit = NanoUSD(2_000_000_000)
        return p
    }()

    @Test("a client without fields of its own has the defaults, all marked default")
    func defaultsOnly() {
        let p = EffectivePolicy(own: OwnPolicy(hash: ["daily": "5"]), defaults: Self.defaults)
        #expect(p.onLimit == .init(value: .stop, isDefault: true))
        #expect(p.downgradeAt == .init(value: 90, isDefault: true))
        #expect(p.downgrades == ["gpt-4o": .init(value: "gpt-4o-mini", isDefault: true), "o3": .init(value: "o4-mini", isDefault: true)])
        #expect(p.loopMax == .init(value: 50, isDefault: true) && p.loopWindow == .init(value: 120, isDefault: true))
        #expect(p.runLimit == .init(value: NanoUSD(2_000_000_000), isDefault: true))
    }

    @Test("the client's own fields win, model by model; none and 0 are values, not absences")
    func ownWins() {
        let own = OwnPolicy(hash: ["on_limit": "warn", "downgrade_at": "0", "downgrade:o3": "none", "downgrade:gpt-4.1": "gpt-4.1-mini",
                                   "loop_max": "0", "run_limit": "1000"])
        let p = EffectivePolicy(own: own, defaults: Self.defaults)
        #expect(p.onLimit == .init(value: .warn, isDefault: false))
        #expect(p.downgradeAt == .init(value: 0, isDefault: false))
        #expect(p.downgrades == ["gpt-4o": .init(value: "gpt-4o-mini", isDefault: true), "o3": .init(value: "none", isDefault: false),
                                 "gpt-4.1": .init(value: "gpt-4.1-mini", isDefault: false)])
        #expect(p.loopMax == .init(value: 0, isDefault: false) && p.loopWindow == .init(value: 120, isDefault: true))
        #expect(p.runLimit == .init(value: NanoUSD(1000), isDefault: false))
    }

    @Test("with no defaults configured: block, downgrade and loop breaker off, window 60 s, no run limit")
    func bareDefaults() {
        let p = EffectivePolicy(own: OwnPolicy(), defaults: ClientPolicy())
        #expect(p.onLimit.value == .block && p.downgradeAt.value == 0 && p.downgrades.isEmpty)
        #expect(p.loopMax.value == 0 && p.loopWindow.value == 60 && p.runLimit.value == nil)
    }

    @Test("model names: non-empty, without '|'", arguments: [("gpt-4o", true), ("", false), ("a|b", false), ("claude-sonnet-4-5@x", true)])
    func modelNames(name: String, valid: Bool) {
        #expect(PolicyRule.isModelName(name) == valid)
    }
}
