/// A workflow run named by `X-Budget-Run`, e.g. `research-42`: its spend is capped on its own.
/// It becomes part of Redis key names, so it is validated as strictly as `ClientID` (no braces:
/// they would break the cluster hash tag).
public struct RunID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init?(_ raw: String) {
        guard (1...128).contains(raw.utf8.count), raw.utf8.allSatisfy(Self.isAllowed) else { return nil }
        rawValue = raw
    }

    public var description: String { rawValue }

    /// `ClientID`'s alphabet without `@`.
    static func isAllowed(_ b: UInt8) -> Bool { b != UInt8(ascii: "@") && ClientID.isAllowed(b) }

    public static let rule = "1-128 characters of A-Z a-z 0-9 . _ : -"
}

/// A budget header whose value Tollgate cannot use; the request is refused with `message` (400)
/// rather than run under a limit the client did not mean.
public struct BudgetHeaderProblem: Error, Equatable, Sendable, CustomStringConvertible {
    /// The header's name as configured, e.g. `X-Budget-Daily-USD`.
    public let header: String
    public let message: String
    public var description: String { message }
}

/// The per-request budget headers of one request, parsed. A cap can only lower the client's
/// configured limit for this request (`lowering`); it never raises one.
public struct BudgetHeaderCaps: Sendable, Equatable {
    public var daily: NanoUSD?
    public var monthly: NanoUSD?
    public var run: RunID?
    /// The run's cap; only with `run`. Nil: the policy's `runLimit`.
    public var runLimit: NanoUSD?

    public init(daily: NanoUSD? = nil, monthly: NanoUSD? = nil, run: RunID? = nil, runLimit: NanoUSD? = nil) {
        self.daily = daily
        self.monthly = monthly
        self.run = run
        self.runLimit = runLimit
    }

    /// Reads the headers named in `names` through `value` (a header's value, or nil when the
    /// request has none; a repeated header arrives joined with ", " and is refused). Spaces and
    /// tabs around a value are not part of it (RFC 9110 §5.5).
    public init(names: BudgetHeaderNames, value: (_ name: String) -> String?) throws(BudgetHeaderProblem) {
        func trimmed(_ name: String) -> String? {
            value(name).map { raw in
                var s = Substring(raw)
                while s.first == " " || s.first == "\t" { s.removeFirst() }
                while s.last == " " || s.last == "\t" { s.removeLast() }
                return String(s)
            }
        }
        func usd(_ name: String) throws(BudgetHeaderProblem) -> NanoUSD? {
            guard let text = trimmed(name) else { return nil }
            guard let v = NanoUSD(usd: text), v >= .zero, v < NanoUSD.scriptLimit else {
                throw BudgetHeaderProblem(
                    header: name,
                    message: "\(name) must be a USD amount like 3.00, from 0 to 9000000 with at most 9 decimals (got '\(Self.shown(text))')")
            }
            return v
        }
        daily = try usd(names.daily)
        monthly = try usd(names.monthly)
        runLimit = try usd(names.runUSD)
        if let text = trimmed(names.run) {
            guard let id = RunID(text) else {
                throw BudgetHeaderProblem(
                    header: names.run, message: "\(names.run) must be a run id of \(RunID.rule), e.g. research-42 (got '\(Self.shown(text))')")
            }
            run = id
        } else if runLimit != nil {
            throw BudgetHeaderProblem(
                header: names.runUSD,
                message: "\(names.runUSD) caps one workflow run, so it needs \(names.run) too, e.g. \(names.run): research-42")
        }
    }

    public var isEmpty: Bool { daily == nil && monthly == nil && run == nil && runLimit == nil }

    /// The limit that applies to this request: the header's cap when it is below the configured
    /// limit, else the configured limit (nil on both sides: no limit).
    public static func lowering(_ configured: NanoUSD?, to cap: NanoUSD?) -> NanoUSD? {
        guard let cap else { return configured }
        guard let configured else { return cap }
        return min(configured, cap)
    }

    /// Echoing a header back into an error: long values are cut, so a 400 stays small.
    static func shown(_ text: String) -> String {
        text.count <= 64 ? text : String(text.prefix(64)) + "…"
    }
}

/// The per-request budget headers. They only ever lower a client's limits, and Tollgate strips
/// them before forwarding.
public struct BudgetHeaderNames: Sendable, Equatable {
    public var daily = "X-Budget-Daily-USD"
    public var monthly = "X-Budget-Monthly-USD"
    /// A workflow run id, e.g. `research-42`: its spend is capped on its own.
    public var run = "X-Budget-Run"
    public var runUSD = "X-Budget-Run-USD"
    public init() {}
    public var all: [String] { [daily, monthly, run, runUSD] }
}
