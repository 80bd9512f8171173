import Testing
@testable import TollgateCore

@Suite("NanoUSD: exact decimal money")
struct NanoUSDTests {
    @Test("decimal USD text parses exactly to nano-USD", arguments: [
        ("10", Int64(10_000_000_000)),
        ("0.5", 500_000_000),
        ("2.50", 2_500_000_000),
        ("0.000000001", 1),
        ("0.000123", 123_000),
        ("0", 0),
        ("-1.5", -1_500_000_000),
        ("-0", 0),
        ("007.25", 7_250_000_000),
        ("9223372036.854775807", Int64.max),
    ])
    func parsesValid(text: String, nano: Int64) {
        #expect(NanoUSD(usd: text) == NanoUSD(nano))
    }

    @Test("malformed, over-precise or overflowing amounts are rejected", arguments: [
        "", " ", "abc", "1.2345678901", "0.0000000001", "1.", ".5", "1,5", "+1", "--1", "-",
        "1.2.3", "0x10", "1 000", "$5", "9223372037", "9223372036.854775808", "١", "½", "1.5a",
    ])
    func rejectsInvalid(text: String) {
        #expect(NanoUSD(usd: text) == nil)
    }

    // Python's json.dumps writes 0.000001 as 1e-06; any JSON number form must read exactly.
    @Test("JSON number forms with exponents parse exactly, never through Double", arguments: [
        ("1e-06", Int64(1_000)),
        ("1E-6", 1_000),
        ("1e-6", 1_000),
        ("1e-9", 1),
        ("1E+0", 1_000_000_000),
        ("2.5e3", 2_500_000_000_000),
        ("2.5E+3", 2_500_000_000_000),
        ("1e3", 1_000_000_000_000),
        ("0.000001", 1_000),
        ("10", 10_000_000_000),
        ("1.50", 1_500_000_000),
        ("-0", 0),
        ("-0.0e-20", 0),
        ("0e999999999999", 0),
        ("-1.5e-3", -1_500_000),
        ("123.456e-5", 1_234_560),
        ("20e-10", 2),
        ("1.50000000000", 1_500_000_000),
        ("0.1000000000e1", 1_000_000_000),
        ("9.223372036854775807e9", Int64.max),
        ("9223372036854775807e-9", Int64.max),
    ])
    func parsesExponents(text: String, nano: Int64) {
        #expect(NanoUSD(usd: text) == NanoUSD(nano))
    }

    @Test("not numbers, surrounding spaces, too precise or too large after the exponent are refused", arguments: [
        " 3 ", " 3", "3 ", "\t1", "1\n", "NaN", "nan", "inf", "-inf", "Infinity", "0x1p3", "0X10", "1e", "1e+", "1e-",
        "e5", "-e5", "1.e5", ".5e1", "1e5.5", "1ee5", "1e--5", "+1e5", "+", "-", "1e-10", "1.5e-10", "1E-10", "15e-10", "0.30000000000000004",
        "0.0000000001e0", "1e10", "9.3e9", "1e999999999999", "1e-999999999999", "1_000", "1e٣",
    ])
    func rejectsExponentForms(text: String) {
        #expect(NanoUSD(usd: text) == nil)
    }

    @Test("usdString is exact decimal text without trailing zeros", arguments: [
        (Int64(10_000_000_000), "10"),
        (123_000, "0.000123"),
        (-1_500_000_000, "-1.5"),
        (0, "0"),
        (1, "0.000000001"),
        (2_500_000_000, "2.5"),
        (Int64.max, "9223372036.854775807"),
        (-1, "-0.000000001"),
        (Int64.min, "-9223372036.854775808"),
        (1_000_000_000, "1"),
        (100, "0.0000001"),
        (10_000_000_010, "10.00000001"),
    ])
    func formats(nano: Int64, text: String) {
        #expect(NanoUSD(nano).usdString == text)
        #expect(NanoUSD(nano).description == "$" + text)
    }

    @Test("formatting then parsing gives back the same amount", arguments: [
        Int64(0), 1, 9, 10, 999_999_999, 1_000_000_000, 1_000_000_001, 123_456_789_012, -7, -1_000_000_000,
        Int64.max, Int64.min + 1,
    ])
    func roundTrips(nano: Int64) {
        #expect(NanoUSD(usd: NanoUSD(nano).usdString) == NanoUSD(nano))
    }

    @Test("amounts order, add and subtract as integers")
    func arithmetic() {
        let a = NanoUSD(usd: "1.25")!, b = NanoUSD(usd: "0.75")!
        #expect(a + b == NanoUSD(usd: "2")!)
        #expect(a - b == NanoUSD(usd: "0.5")!)
        #expect(b < a)
        #expect(NanoUSD.zero < NanoUSD(1))
        #expect(NanoUSD.perUSD == 1_000_000_000)
        #expect(NanoUSD.scriptLimit.value == 9_007_199_254_740_992)
    }
}

@Suite("PricePerMillion: per-token cost rounds up")
struct PricePerMillionTests {
    @Test("prices parse from plain decimal USD per million tokens; negatives and exponents are rejected")
    func parses() {
        #expect(PricePerMillion(usd: "0.15")?.nanoUSD == 150_000_000)
        #expect(PricePerMillion(usd: "3.75")?.nanoUSD == 3_750_000_000)
        #expect(PricePerMillion(usd: "0") == .zero)
        #expect(PricePerMillion(usd: "-1") == nil)
        #expect(PricePerMillion(usd: "0.0000000001") == nil)
        #expect(PricePerMillion(usd: "free") == nil)
        #expect(PricePerMillion(usd: "1.50000000000")?.nanoUSD == 1_500_000_000)
        #expect(PricePerMillion(usd: " 1") == nil)
        #expect(PricePerMillion(usd: "1e3") == nil)
        #expect(PricePerMillion(usd: "1.5E-1") == nil)
    }

    // $0.005 per million tokens is 5_000_000 nano-USD per million, i.e. exactly 5 nano-USD per token.
    @Test("cost of N tokens is ceil(N × nano-per-million / 1e6)", arguments: [
        ("0.075", Int64(1), Int64(75)),
        ("0.005", 1, 5),
        ("0.000001", 1, 1),        // 0.001 nano-USD → 1
        ("0.0001", 3, 1),          // 0.3 nano-USD → 1
        ("0.0001", 10, 1),         // exactly 1
        ("0.0001", 11, 2),         // 1.1 → 2
        ("0.0001", 10_001, 1_001), // 1000.1 → 1001
        ("2.50", 1_000_000, 2_500_000_000),
        ("0.15", 1, 150),
        ("0", 1_000, 0),
        ("60", 0, 0),
    ])
    func costRoundsUp(usd: String, tokens: Int64, nano: Int64) throws {
        let price = try #require(PricePerMillion(usd: usd))
        #expect(price.cost(ofTokens: tokens) == NanoUSD(nano))
    }

    @Test("a cost too large for Int64 saturates instead of trapping")
    func costSaturates() throws {
        let price = try #require(PricePerMillion(usd: "75"))
        #expect(price.cost(ofTokens: .max) == NanoUSD(.max))
    }

    @Test("perTokenCeiling is the dearest a single token can be", arguments: [
        ("0.60", Int64(600)),
        ("0.075", 75),
        ("0.0000001", 1),
        ("0", 0),
        ("1.0000005", 1_001),
        ("15", 15_000),
    ])
    func perTokenCeiling(usd: String, nano: Int64) throws {
        let price = try #require(PricePerMillion(usd: usd))
        #expect(price.perTokenCeiling == NanoUSD(nano))
        // The ceiling times N never undercuts the exact cost of N tokens.
        for tokens: Int64 in [1, 7, 1_000, 123_457] {
            #expect(price.perTokenCeiling.value * tokens >= price.cost(ofTokens: tokens).value)
        }
    }
}
