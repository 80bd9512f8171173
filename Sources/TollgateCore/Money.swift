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

    /// Parses a USD amount written as a JSON number or plain decimal exactly: `10`, `0.5`, `2.50`,
    /// `1e-06`, `2.5E3`. See `parseDecimal` for the grammar and the precision rule.
    public init?(usd text: String) {
        guard let v = Self.parseDecimal(text, scale: 9) else { return nil }
        self.value = v
    }

    /// Exact decimal USD text without trailing zeros: `10`, `0.000123`, `-1.5`.
    public var usdString: String { Self.formatDecimal(value, scale: 9) }

    public var description: String { "$" + usdString }

    /// Parses `-?digits(.digits)?([eE][+-]?digits)?` into an integer scaled by 10^scale, with
    /// decimal arithmetic on the digits (never `Double`), so `1e-06` is exactly 1000 nano-USD.
    /// This is the JSON number grammar (what Python's `json.dumps` writes for 0.000001) plus
    /// leading zeros (`007.25`). Nil when malformed (`.5`, `1.`, `+1`, `0x10`, `NaN`, `inf`,
    /// surrounding spaces), when the amount is not a whole multiple of 10^-scale (`1e-10` at
    /// scale 9; `1.50000000000` is fine: it is 1.5), or when it overflows `Int64`. With
    /// `exponent: false` only `-?digits(.digits)?` is accepted.
    static func parseDecimal(_ text: String, scale: Int, exponent: Bool = true) -> Int64? {
        guard let number = DecimalText(text), exponent || !number.hasExponent else { return nil }
        // value = digits × 10^exponent, so the scaled value is digits × 10^(exponent + scale).
        var digits = number.digits.drop { $0 == 0 }
        if digits.isEmpty { return 0 }
        var shift = number.exponent + scale
        while shift < 0 {
            // Dropping a digit divides by ten: only zeros may go, or the amount is too precise.
            guard digits.last == 0 else { return nil }
            digits.removeLast()
            shift += 1
        }
        // Int64 holds 19 digits; more can only overflow (and bounds the loop for `1e999999`).
        guard digits.count + shift <= 19 else { return nil }
        var result: Int64 = 0
        for d in digits + Array(repeating: 0, count: shift) {
            let (m, o1) = result.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int64(d))
            if o1 || o2 { return nil }
            result = a
        }
        return number.negative ? -result : result
    }

    public static func formatDecimal(_ v: Int64, scale: Int) -> String {
        // Written backwards into a stack buffer: built from Strings and trimmed `Character` by
        // `Character`, the budget headers' two amounts were ~1 % of Tollgate's CPU per request.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: scale + 22) { buffer in
            var i = buffer.count
            func put(_ byte: UInt8) { i -= 1; buffer[i] = byte }
            var rest = v.magnitude
            var significant = false // a fraction digit other than a trailing zero has been written
            for _ in 0..<scale {
                let digit = UInt8(rest % 10)
                rest /= 10
                if significant || digit != 0 { significant = true; put(0x30 + digit) }
            }
            if significant { put(UInt8(ascii: ".")) }
            repeat { put(0x30 + UInt8(rest % 10)); rest /= 10 } while rest > 0
            if v < 0 { put(UInt8(ascii: "-")) }
            return String(decoding: UnsafeBufferPointer(rebasing: buffer[i...]), as: UTF8.self)
        }
    }
}

/// A price in nano-USD per million tokens, as pricing pages quote it (USD per 1M tokens).
public struct PricePerMillion: Hashable, Sendable {
    public var nanoUSD: Int64
    public init(nanoUSD: Int64) { self.nanoUSD = nanoUSD }
    /// Plain decimals only (`2.50`, not `2.5e0`): pricing tables are written by hand from pricing
    /// pages, and PricingTests holds `1e3` to be a typo there.
    public init?(usd text: String) {
        guard let v = NanoUSD.parseDecimal(text, scale: 9, exponent: false), v >= 0 else { return nil }
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

/// A number as `-?digits(.digits)?([eE][+-]?digits)?`, split into its decimal digits (integer
/// and fraction together) and the power of ten they are multiplied by.
struct DecimalText {
    var negative: Bool
    var digits: [UInt8]
    var exponent: Int
    /// Written with `e` or `E`.
    var hasExponent: Bool

    /// Exponents beyond this only ever yield zero, overflow or an over-precise amount.
    static let exponentBound = 1_000_000

    init?(_ text: String) {
        let bytes = Array(text.utf8)
        var i = 0
        func isDigit(_ k: Int) -> Bool { k < bytes.count && bytes[k] >= 0x30 && bytes[k] <= 0x39 }
        func run() -> [UInt8] {
            var out: [UInt8] = []
            while isDigit(i) { out.append(bytes[i] - 0x30); i += 1 }
            return out
        }
        negative = i < bytes.count && bytes[i] == UInt8(ascii: "-")
        if negative { i += 1 }
        let whole = run()
        guard !whole.isEmpty else { return nil }
        var fraction: [UInt8] = []
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            fraction = run()
            guard !fraction.isEmpty else { return nil }
        }
        var exponent = 0
        hasExponent = i < bytes.count && (bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E"))
        if hasExponent {
            i += 1
            var sign = 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") {
                sign = bytes[i] == UInt8(ascii: "-") ? -1 : 1
                i += 1
            }
            let written = run()
            guard !written.isEmpty else { return nil }
            for d in written { exponent = min(exponent * 10 + Int(d), Self.exponentBound) }
            exponent *= sign
        }
        guard i == bytes.count else { return nil }
        self.digits = whole + fraction
        self.exponent = exponent - fraction.count
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
