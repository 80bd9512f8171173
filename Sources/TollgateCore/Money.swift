/// An amount of money in nano-USD (10⁻⁹ USD). All accounting uses this; never `Double`.
///
/// Redis Lua numbers are doubles, so every amount that reaches a script must stay below 2⁵³
/// (about 9 million USD); `NanoUSD.scriptLimit` is the bound config validation enforces.
public struct NanoUSD: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: Int64

    public init(_ value: Int64) { self.value = value }

    public static let zero = NanoUSD(0)
    public static let perUSD: Int64 = 1_000_000_000
    public static let scriptLimit = NanoUSD(1 << 53)

    public static func < (a: NanoUSD, b: NanoUSD) -> Bool { a.value < b.value }
    public static func + (a: NanoUSD, b: NanoUSD) -> NanoUSD { NanoUSD(a.value + b.value) }
    public static func - (a: NanoUSD, b: NanoUSD) -> NanoUSD { NanoUSD(a.value - b.value) }

    /// Parses a decimal USD amount such as `10`, `0.5` or `2.50` exactly (at most 9 decimals).
    public init?(usd text: String) {
        guard let v = Self.parseDecimal(text, scale: 9) else { return nil }
        self.value = v
    }

    /// Exact decimal USD text without trailing zeros: `10`, `0.000123`, `-1.5`.
    public var usdString: String { Self.formatDecimal(value, scale: 9) }

    public var description: String { "$" + usdString }

    /// Parses `[-]digits[.digits]` into an integer scaled by 10^scale; nil when malformed,
    /// with more than `scale` decimals, or overflowing.
    static func parseDecimal(_ text: String, scale: Int) -> Int64? {
        var s = Substring(text.trimmingWhitespace())
        var negative = false
        if s.first == "-" { negative = true; s = s.dropFirst() }
        let parts = s.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, !whole.isEmpty, whole.allSatisfy(\.isASCIIDigit) else { return nil }
        let frac = parts.count == 2 ? parts[1] : ""
        guard frac.count <= scale, frac.allSatisfy(\.isASCIIDigit), parts.count == 1 || !frac.isEmpty else { return nil }
        var result: Int64 = 0
        for ch in whole + frac.padding(toLength: scale, withPad: "0", startingAt: 0) {
            let (m, o1) = result.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int64(ch.asciiValue! - 48))
            if o1 || o2 { return nil }
            result = a
        }
        return negative ? -result : result
    }

    public static func formatDecimal(_ v: Int64, scale: Int) -> String {
        var divisor: Int64 = 1
        for _ in 0..<scale { divisor *= 10 }
        let magnitude = v.magnitude
        let whole = magnitude / UInt64(divisor)
        var frac = String(magnitude % UInt64(divisor))
        frac = String(repeating: "0", count: scale - frac.count) + frac
        while frac.last == "0" { frac.removeLast() }
        return (v < 0 ? "-" : "") + String(whole) + (frac.isEmpty ? "" : "." + frac)
    }
}

/// A price in nano-USD per million tokens, as pricing pages quote it (USD per 1M tokens).
public struct PricePerMillion: Hashable, Sendable {
    public var nanoUSD: Int64
    public init(nanoUSD: Int64) { self.nanoUSD = nanoUSD }
    public init?(usd text: String) {
        guard let v = NanoUSD.parseDecimal(text, scale: 9), v >= 0 else { return nil }
        nanoUSD = v
    }
    public static let zero = PricePerMillion(nanoUSD: 0)

    /// Cost of `tokens` tokens, rounded up to the next nano-USD.
    public func cost(ofTokens tokens: Int64) -> NanoUSD {
        NanoUSD(Self.ceilDiv(Int128(tokens) * Int128(nanoUSD), 1_000_000))
    }

    /// Upper bound per single token, used by the reserve script's integer arithmetic.
    public var perTokenCeiling: NanoUSD { NanoUSD(Self.ceilDiv(Int128(nanoUSD), 1_000_000)) }

    static func ceilDiv(_ a: Int128, _ b: Int128) -> Int64 {
        Int64(clamping: a >= 0 ? (a + b - 1) / b : a / b)
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
