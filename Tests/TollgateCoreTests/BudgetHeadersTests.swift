import Testing
@testable import TollgateCore

private func caps(_ headers: [String: String], names: BudgetHeaderNames = BudgetHeaderNames()) throws(BudgetHeaderProblem) -> BudgetHeaderCaps {
    try BudgetHeaderCaps(names: names) { headers[$0] }
}

private func problem(_ headers: [String: String], names: BudgetHeaderNames = BudgetHeaderNames()) -> BudgetHeaderProblem? {
    do {
        _ = try caps(headers, names: names)
        return nil
    } catch {
        return error
    }
}

@Suite("Budget headers: per-request caps that only lower a limit")
struct BudgetHeadersTests {
    @Test("a request without budget headers has no caps")
    func none() throws {
        let parsed = try caps(["X-Client-ID": "x"])
        #expect(parsed == BudgetHeaderCaps())
        #expect(parsed.isEmpty)
    }

    @Test("USD amounts parse exactly, in any number form, spaces around them ignored", arguments: [
        ("3.00", Int64(3_000_000_000)),
        ("3", 3_000_000_000),
        (" 0.25\t", 250_000_000),
        ("1e-06", 1_000),
        ("2.5E1", 25_000_000_000),
        ("0", 0),
        ("9000000", 9_000_000_000_000_000),
    ])
    func amounts(value: String, nano: Int64) throws {
        let parsed = try caps(["X-Budget-Daily-USD": value, "X-Budget-Monthly-USD": value])
        #expect(parsed.daily == NanoUSD(nano))
        #expect(parsed.monthly == NanoUSD(nano))
    }

    @Test("a value that is not a USD amount is refused with what a valid one looks like", arguments: [
        "abc", "", "-1", "3,00", "$3", "3 USD", "1e-10", "0.0000000001", "9007200", "NaN", "3.00, 4.00",
    ])
    func badAmounts(value: String) {
        #expect(problem(["X-Budget-Monthly-USD": value]) == BudgetHeaderProblem(
            header: "X-Budget-Monthly-USD",
            message: "X-Budget-Monthly-USD must be a USD amount like 3.00, from 0 to 9000000 with at most 9 decimals (got '\(value)')"))
    }

    @Test("the message for a daily cap names the header and the value")
    func dailyMessage() {
        #expect(problem(["X-Budget-Daily-USD": "abc"])?.message
            == "X-Budget-Daily-USD must be a USD amount like 3.00, from 0 to 9000000 with at most 9 decimals (got 'abc')")
    }

    @Test("configured header names are the ones read and the ones messages name")
    func configuredNames() throws {
        var names = BudgetHeaderNames()
        names.daily = "X-Cap-Day"
        names.run = "X-Job"
        names.runUSD = "X-Job-USD"
        let parsed = try caps(["X-Cap-Day": "1.5", "X-Budget-Daily-USD": "9", "X-Job": "j-1", "X-Job-USD": "0.5"], names: names)
        #expect(parsed == BudgetHeaderCaps(daily: NanoUSD(1_500_000_000), run: RunID("j-1"), runLimit: NanoUSD(500_000_000)))
        #expect(problem(["X-Cap-Day": "x"], names: names)?.message
            == "X-Cap-Day must be a USD amount like 3.00, from 0 to 9000000 with at most 9 decimals (got 'x')")
        #expect(problem(["X-Job-USD": "1"], names: names)?.message
            == "X-Job-USD caps one workflow run, so it needs X-Job too, e.g. X-Job: research-42")
    }

    @Test("a run id is 1-128 characters of letters, digits and . _ : -", arguments: [
        "research-42", "a", "A.b_c:d-9", String(repeating: "r", count: 128),
    ])
    func runIDs(id: String) throws {
        let parsed = try caps(["X-Budget-Run": id, "X-Budget-Run-USD": "2"])
        #expect(parsed.run?.rawValue == id)
        #expect(parsed.runLimit == NanoUSD(2_000_000_000))
    }

    @Test("a bad run id is refused with the rule", arguments: [
        "", "has space", "{tag}", "a@b", "a/b", "é", String(repeating: "r", count: 129),
    ])
    func badRunIDs(id: String) {
        let shown = id.count > 64 ? String(repeating: "r", count: 64) + "…" : id
        #expect(problem(["X-Budget-Run": id]) == BudgetHeaderProblem(
            header: "X-Budget-Run",
            message: "X-Budget-Run must be a run id of 1-128 characters of A-Z a-z 0-9 . _ : -, e.g. research-42 (got '\(shown)')"))
    }

    @Test("a run may come without its own cap: the policy's run limit applies")
    func runWithoutCap() throws {
        #expect(try caps(["X-Budget-Run": "r1"]) == BudgetHeaderCaps(run: RunID("r1")))
    }

    @Test("a run cap without a run id is refused")
    func capWithoutRun() {
        #expect(problem(["X-Budget-Run-USD": "5"]) == BudgetHeaderProblem(
            header: "X-Budget-Run-USD",
            message: "X-Budget-Run-USD caps one workflow run, so it needs X-Budget-Run too, e.g. X-Budget-Run: research-42"))
    }

    @Test("a cap lowers the configured limit and never raises it", arguments: [
        (Int64?.some(10), Int64?.some(3), Int64?.some(3)),
        (3, 10, 3),
        (5, 5, 5),
        (10, nil, 10),
        (nil, 3, 3),
        (nil, nil, nil),
        (10, 0, 0),
    ])
    func lowering(configured: Int64?, cap: Int64?, expected: Int64?) {
        #expect(BudgetHeaderCaps.lowering(configured.map(NanoUSD.init), to: cap.map(NanoUSD.init)) == expected.map(NanoUSD.init))
    }
}
