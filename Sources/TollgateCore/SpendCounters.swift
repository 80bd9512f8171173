/// The counters of one day or month hash (`tollgate:{C}:day:…`, docs/redis.md), or a sum of
/// several: what analytics, the CLI and the dashboard show. Amounts stay nano-USD integers.
public struct SpendCounters: Sendable, Equatable {
    public var spent: NanoUSD = .zero
    /// Worst-case cost of requests in flight; only meaningful for today.
    public var reserved: NanoUSD = .zero
    public var requests: Int64 = 0
    public var refused: Int64 = 0
    public var loopTrips: Int64 = 0
    public var downgrades: Int64 = 0
    /// Settled spend per model (`model:<name>` fields; day hashes only).
    public var models: [String: NanoUSD] = [:]

    public init() {}

    /// The hash fields the scripts write; absent or malformed fields count as zero.
    public enum Field {
        public static let spent = "spent", reserved = "reserved", requests = "requests", refused = "refused"
        public static let loopTrips = "loop_trips", downgrades = "downgrades"
        public static let modelPrefix = "model:"
    }

    public init(hash: [String: String]) {
        func count(_ field: String) -> Int64 { hash[field].flatMap { Int64($0) } ?? 0 }
        spent = NanoUSD(count(Field.spent))
        reserved = NanoUSD(count(Field.reserved))
        requests = count(Field.requests)
        refused = count(Field.refused)
        loopTrips = count(Field.loopTrips)
        downgrades = count(Field.downgrades)
        for (field, value) in hash where field.hasPrefix(Field.modelPrefix) {
            guard let nano = Int64(value), field.utf8.count > Field.modelPrefix.utf8.count else { continue }
            models[String(field.dropFirst(Field.modelPrefix.count)), default: .zero] = NanoUSD(nano)
        }
    }

    public static func += (a: inout SpendCounters, b: SpendCounters) {
        a.spent = a.spent + b.spent
        a.reserved = a.reserved + b.reserved
        a.requests += b.requests
        a.refused += b.refused
        a.loopTrips += b.loopTrips
        a.downgrades += b.downgrades
        a.models.merge(b.models, uniquingKeysWith: +)
    }

    /// Models by spend, highest first (ties by name, so output is stable).
    public var modelsBySpend: [(model: String, spent: NanoUSD)] {
        models.map { (model: $0.key, spent: $0.value) }.sorted { ($0.spent, $1.model) > ($1.spent, $0.model) }
    }
}

/// One day's counters.
public struct DaySpend: Sendable, Equatable {
    public var date: String
    public var counters: SpendCounters

    public init(date: String, counters: SpendCounters) {
        self.date = date
        self.counters = counters
    }
}

/// Share of a limit used, in tenths of a percent, rounded down (integer arithmetic: money never
/// goes through floating point). A zero limit is full as soon as anything is spent.
public func permille(_ spent: NanoUSD, of limit: NanoUSD) -> Int64 {
    guard limit.value > 0 else { return spent.value > 0 ? 1000 : 0 }
    return Int64(Int128(max(spent.value, 0)) * 1000 / Int128(limit.value))
}
