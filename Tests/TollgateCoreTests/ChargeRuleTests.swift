import Testing
@testable import TollgateCore

/// Every way a forwarded request ends, and what it is charged. Prices are written out here
/// ($2 / $8 per million tokens = 2,000 / 8,000 nano-USD per token), not read from the table.
@Suite("the charge rule")
struct ChargeRuleTests {
    let price = ModelPrice(input: PricePerMillion(usd: "2")!, output: PricePerMillion(usd: "8")!, maxOutputTokens: 1_000)
    let reserved = NanoUSD(1_000_000)

    func charge(_ ending: UpstreamEnding, strict: Bool = true) -> Charge {
        Bill(price: price, reserved: reserved, strict: strict).charge(ending)
    }

    @Test("a complete answer is priced from its usage")
    func usage() {
        #expect(charge(.answered(status: 200, usage: TokenUsage(input: 10, output: 20))) == Charge(cost: NanoUSD(180_000), basis: .usage))
    }

    @Test("a success without usage is charged the reservation")
    func successWithoutUsage() {
        #expect(charge(.answered(status: 200, usage: nil)) == Charge(cost: reserved, basis: .reservation))
    }

    @Test("an error answer and a request never sent are charged nothing", arguments: [400, 429, 500, 503])
    func nothing(status: Int) {
        #expect(charge(.answered(status: status, usage: nil)) == Charge(cost: .zero, basis: .nothing))
        #expect(charge(.notSent) == Charge(cost: .zero, basis: .nothing))
    }

    @Test("a cut without a bound is charged the reservation")
    func cutWithoutBound() {
        #expect(charge(.cut(bound: nil)) == Charge(cost: reserved, basis: .reservation))
    }

    @Test("a cut with a bound below the reservation is charged the bound")
    func cutWithBound() {
        // 100 × 2,000 + 50 × 8,000 = 600,000 < 1,000,000
        #expect(charge(.cut(bound: TokenUsage(input: 100, output: 50))) == Charge(cost: NanoUSD(600_000), basis: .bound))
    }

    @Test("strict mode never charges a cut more than its reservation; estimate mode charges the bound")
    func boundAboveReservation() {
        // 100 × 2,000 + 200 × 8,000 = 1,800,000 > 1,000,000
        let bound = TokenUsage(input: 100, output: 200)
        #expect(charge(.cut(bound: bound)) == Charge(cost: reserved, basis: .reservation))
        #expect(charge(.cut(bound: bound), strict: false) == Charge(cost: NanoUSD(1_800_000), basis: .bound))
    }
}
