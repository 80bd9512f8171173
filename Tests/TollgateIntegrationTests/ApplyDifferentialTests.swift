import Testing
import TollgateCore
@testable import TollgateRedis

/// apply_v6 claims to decide each operation of a batch exactly as reserve_v5 / settle_v5 decide
/// it alone, in order. This checks the claim against v5 itself, an independent implementation:
/// the same pseudo-random rounds of reserves (near the limit, so some are clamped or refused) and
/// settles (some twice, some over their reservation) run one call each for one client and as one
/// batch per round for another; every answer and every counter must be the same.
@Suite("apply_v6 decides a batch as v5 decides its operations one by one", .timeLimit(.minutes(2)))
struct ApplyDifferentialTests {
    /// A small deterministic generator, so a failure can be replayed.
    struct Rounds {
        var state: UInt64
        mutating func next(_ bound: Int64) -> Int64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int64((state >> 33) % UInt64(bound))
        }
    }

    enum Step: Sendable {
        case reserve(CostEstimate)
        case settle(leaseIndex: Int, actual: Int64)
    }

    /// What a reserve or settle answered, without the client's own names in it.
    static func answer(_ outcome: ReserveOutcome) -> String {
        switch outcome {
        case .granted(let g): "granted \(g.grantedOutputTokens) \(g.reserved) \(g.limit) \(g.remaining) \(g.period) \(g.overLimit)"
        case .refused(let r): "refused \(r.period) \(r.limit) \(r.spent) \(r.reserved) \(r.action)"
        default: "\(outcome)"
        }
    }

    @Test("40 rounds of 1–6 operations at a 400 000 nano-USD daily limit", arguments: [UInt64(1), 7, 2026])
    func sameAsV5(seed: UInt64) async throws {
        let alone = TestRedis.uniqueClient("v5"), batched = TestRedis.uniqueClient("v6")
        for client in [alone, batched] { try await ApplyBatchTests.limit(client, daily: 400_000) }
        let oneByOne = BudgetStore.forTests(), inBatches = BudgetStore.forTests()
        var rng = Rounds(state: seed)
        var leases: [(alone: Lease, batched: Lease, reserved: Int64)] = []
        var seen: Set<String> = []
        for round in 0..<40 {
            var steps: [Step] = []
            for _ in 0..<(1 + rng.next(6)) {
                if !leases.isEmpty && rng.next(2) == 0 {
                    let index = Int(rng.next(Int64(leases.count)))
                    steps.append(.settle(leaseIndex: index, actual: rng.next(leases[index].reserved * 6 / 5 + 1)))
                } else {
                    let requested = 50 + rng.next(400)
                    steps.append(.reserve(CostEstimate(inputTokenBound: 1, fixedCost: NanoUSD(1_000 + rng.next(30_000)),
                                                       perOutputToken: NanoUSD(10 + rng.next(190)), requestedOutputTokens: requested,
                                                       minimumOutputTokens: 1 + rng.next(requested))))
                }
            }
            // One call each, off any event loop: reserve_v5 and settle_v5.
            var expected: [(answer: String, lease: Lease?)] = []
            for step in steps {
                switch step {
                case .reserve(let estimate):
                    let outcome = try await oneByOne.reserve(alone, .unique(), estimate: estimate)
                    if case .granted(let g) = outcome { expected.append((Self.answer(outcome), g.lease)) } else { expected.append((Self.answer(outcome), nil)) }
                case .settle(let index, let actual):
                    expected.append(("\(try await oneByOne.settle(alone, leases[index].alone, actual: NanoUSD(actual)))", nil))
                }
            }
            // The same steps released in one tick of one loop: one apply_v6 call.
            let before = inBatches.tick.batchesSent.load(ordering: .relaxed)
            let known = leases
            let outcomes: [(answer: String, lease: Lease?)] = try await ApplyBatchTests.inOneTick(steps.map { step in
                { () async throws -> (answer: String, lease: Lease?) in
                    switch step {
                    case .reserve(let estimate):
                        let outcome = try await inBatches.reserve(batched, .unique(), estimate: estimate)
                        if case .granted(let g) = outcome { return (Self.answer(outcome), g.lease) }
                        return (Self.answer(outcome), nil)
                    case .settle(let index, let actual):
                        return ("\(try await inBatches.settle(batched, known[index].batched, actual: NanoUSD(actual)))", nil)
                    }
                }
            })
            #expect(outcomes.map(\.answer) == expected.map(\.answer), "round \(round), seed \(seed)")
            if steps.count > 1 { #expect(inBatches.tick.batchesSent.load(ordering: .relaxed) == before + 1, "round \(round): one call") }
            for (i, step) in steps.enumerated() {
                guard case .reserve(let estimate) = step, let a = expected[i].lease, let b = outcomes[i].lease else { continue }
                let tokens = Int64(expected[i].answer.split(separator: " ")[1])!
                leases.append((a, b, estimate.fixedCost.value + estimate.perOutputToken.value * tokens))
            }
            for answer in expected.map(\.answer) { seen.insert(String(answer.prefix(while: { $0 != " " }))) }
        }
        // The rounds reached what they are for: grants, refusals, settles and double settles.
        #expect(seen.isSuperset(of: ["granted", "refused", "settled", "unknownLease"]), "\(seen)")
        let a = try await TestRedis.periodKeys(alone), b = try await TestRedis.periodKeys(batched)
        for (x, y) in [(a.day, b.day), (a.month, b.month)] {
            for field in ["spent", "reserved", "requests", "refused"] {
                #expect(try await TestRedis.int(x, field) == (try await TestRedis.int(y, field)), "\(field) of \(x) and \(y)")
            }
        }
        let leasesLeft = try await TestRedis.shared.call(.command(["ZCARD", RedisKeys(alone).leases])).int
        #expect(try await TestRedis.shared.call(.command(["ZCARD", RedisKeys(batched).leases])).int == leasesLeft)
    }
}
