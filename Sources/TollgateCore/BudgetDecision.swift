/// The outcome of `lua/reserve_v5.lua`, the one place the budget is decided.
/// `TollgateRedis.BudgetStore.reserve` calls the script and builds these from its reply.
public enum BudgetPeriod: String, Sendable {
    /// `run`: a workflow run's own cap (`X-Budget-Run`), which resets only when the run expires.
    case daily, monthly, run
}

/// A granted reservation's handle in Redis: its member of the client's `leases` sorted set,
/// `A|<reservation id>|<cost>|<day key>|<month key>|<run key>|<flags>`, exactly as `reserve_v4.lua` and `reserve_v5.lua` write it.
/// Settle and renew pass it back; the scripts act on it only while it is still in the set, so a
/// forged or stale lease charges nothing.
public struct Lease: Hashable, Sendable, CustomStringConvertible {
    public let reservation: ReservationID
    public let member: String

    public init(reservation: ReservationID, member: String) {
        self.reservation = reservation
        self.member = member
    }

    public var description: String { member }
}

/// A reservation that fits (or, with `on_limit: warn`, one let through over the limit); the
/// numbers describe the binding limit after it.
public struct BudgetGrant: Sendable, Equatable {
    public var lease: Lease
    public var grantedOutputTokens: Int64
    public var reserved: NanoUSD
    public var limit: NanoUSD
    public var remaining: NanoUSD
    /// nil for a workflow run, which has no reset time.
    public var resetsAt: UnixTime?
    public var leasesReaped: Int
    public var period: BudgetPeriod = .daily
    /// `on_limit: warn` let it through although it does not fit.
    public var overLimit = false
    /// The cheaper model the policy moved the request to.
    public var downgradedTo: String?

    public init(lease: Lease, grantedOutputTokens: Int64, reserved: NanoUSD, limit: NanoUSD, remaining: NanoUSD, resetsAt: UnixTime?, leasesReaped: Int) {
        self.lease = lease
        self.grantedOutputTokens = grantedOutputTokens
        self.reserved = reserved
        self.limit = limit
        self.remaining = remaining
        self.resetsAt = resetsAt
        self.leasesReaped = leasesReaped
    }
}

/// A request the budget cannot cover: which limit binds, its size, what is spent and reserved.
public struct BudgetRefusal: Sendable, Equatable {
    public var period: BudgetPeriod
    public var limit: NanoUSD
    public var spent: NanoUSD
    public var reserved: NanoUSD
    /// nil for a workflow run, which has no reset time.
    public var resetsAt: UnixTime?
    public var leasesReaped: Int
    /// `block`: answer 402/429; `stop`: answer with a completion that says so.
    public var action: ClientPolicy.OnLimit = .block

    public init(period: BudgetPeriod, limit: NanoUSD, spent: NanoUSD, reserved: NanoUSD, resetsAt: UnixTime?, leasesReaped: Int = 0) {
        self.period = period
        self.limit = limit
        self.spent = spent
        self.reserved = reserved
        self.resetsAt = resetsAt
        self.leasesReaped = leasesReaped
    }
}

/// The loop breaker tripped: this request was seen more than `maxRepeats` times in the window.
public struct LoopTrip: Sendable, Equatable {
    public var maxRepeats: Int
    public var seen: Int
    public var windowSeconds: Int
    public var retryAt: UnixTime
    public var leasesReaped: Int
    public init(maxRepeats: Int, seen: Int, windowSeconds: Int, retryAt: UnixTime, leasesReaped: Int) {
        self.maxRepeats = maxRepeats
        self.seen = seen
        self.windowSeconds = windowSeconds
        self.retryAt = retryAt
        self.leasesReaped = leasesReaped
    }
}

public enum ReserveOutcome: Sendable, Equatable {
    case granted(BudgetGrant)
    case refused(BudgetRefusal)
    case loopDetected(LoopTrip)
    /// The client's policy downgrades to this model, which the caller did not price: nothing was
    /// written; reserve again with its estimate (`ReserveOptions.fallback`).
    case priceFallback(model: String)
}

/// What a request brings to the reserve script besides its estimate, for the client's policy.
public struct ReserveOptions: Sendable, Equatable {
    public var model: String
    /// The cheaper model the caller expects the policy to downgrade to, priced.
    public var fallback: Fallback?
    /// The loop breaker's fingerprint of the request (nil: not checked).
    public var fingerprint: String?
    public var run: Run?
    /// Header budgets: they can only lower the client's limits.
    public var dailyCap: NanoUSD?
    public var monthlyCap: NanoUSD?

    public struct Fallback: Sendable, Equatable {
        public var model: String
        public var estimate: CostEstimate
        public init(model: String, estimate: CostEstimate) {
            self.model = model
            self.estimate = estimate
        }
    }

    public struct Run: Sendable, Equatable {
        public var id: String
        public var cap: NanoUSD?
        public init(id: String, cap: NanoUSD?) {
            self.id = id
            self.cap = cap
        }
    }

    public init(model: String = "", fallback: Fallback? = nil, fingerprint: String? = nil, run: Run? = nil,
                dailyCap: NanoUSD? = nil, monthlyCap: NanoUSD? = nil) {
        self.model = model
        self.fallback = fallback
        self.fingerprint = fingerprint
        self.run = run
        self.dailyCap = dailyCap
        self.monthlyCap = monthlyCap
    }
}

/// What `lua/settle_v5.lua` did with a lease.
public enum SettleOutcome: Int, Sendable {
    /// Already settled, never reserved, or not a lease: nothing was charged this time.
    case unknownLease = 0
    case settled = 1
    /// The lease had been reaped; its charge was made (or corrected) to the actual cost, once.
    case settledAfterReap = 2
}

/// Seconds since the Unix epoch, as Redis TIME reports them.
public struct UnixTime: Hashable, Sendable, Comparable {
    public var seconds: Int64
    public init(seconds: Int64) { self.seconds = seconds }
    public static func < (a: UnixTime, b: UnixTime) -> Bool { a.seconds < b.seconds }

    /// RFC 3339 in UTC, e.g. `2026-11-24T00:00:00Z`.
    public var rfc3339: String { CivilDate.timestamp(seconds) }
}

/// Proleptic Gregorian date arithmetic (Howard Hinnant's algorithms), the same as the Lua scripts use.
public enum CivilDate {
    /// `YYYY-MM-DDTHH:MM:SSZ` in UTC, or `….mmmZ` with `milliseconds` (0…999). Written into a
    /// stack buffer: every answer's budget headers and every access-log line carry one, and
    /// string interpolation made each cost a dozen small allocations.
    public static func timestamp(_ seconds: Int64, milliseconds: Int64? = nil) -> String {
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let (y, m, d) = fromDays(days)
        guard (1000...9999).contains(y) else {
            // Outside four-digit years the year is written as it is (rare: tests and far-off resets).
            func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
            let fraction = milliseconds.map { "." + String(String($0 + 1000).dropFirst()) } ?? ""
            return "\(y)-\(two(m))-\(two(d))T\(two(secondOfDay / 3600)):\(two(secondOfDay % 3600 / 60)):\(two(secondOfDay % 60))\(fraction)Z"
        }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 24) { b in
            func digits(_ at: Int, _ v: Int64, _ count: Int) {
                var v = v
                for i in stride(from: at + count - 1, through: at, by: -1) { b[i] = 0x30 + UInt8(v % 10); v /= 10 }
            }
            digits(0, y, 4)
            b[4] = UInt8(ascii: "-"); digits(5, m, 2); b[7] = UInt8(ascii: "-"); digits(8, d, 2)
            b[10] = UInt8(ascii: "T"); digits(11, secondOfDay / 3600, 2); b[13] = UInt8(ascii: ":")
            digits(14, secondOfDay % 3600 / 60, 2); b[16] = UInt8(ascii: ":"); digits(17, secondOfDay % 60, 2)
            var end = 19
            if let milliseconds {
                b[19] = UInt8(ascii: ".")
                digits(20, milliseconds, 3)
                end = 23
            }
            b[end] = UInt8(ascii: "Z")
            return String(decoding: UnsafeBufferPointer(rebasing: b[0...end]), as: UTF8.self)
        }
    }

    public static func fromDays(_ z0: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    public static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = month > 2 ? month - 3 : month + 9
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// Parses `YYYY-MM-DD` (a real date) into days since 1970-01-01.
    public static func parseDay(_ text: String) -> Int64? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              let y = Int64(parts[0]), let m = Int64(parts[1]), let d = Int64(parts[2]), (1...12).contains(m), (1...31).contains(d) else { return nil }
        let days = Self.days(year: y, month: m, day: d)
        return fromDays(days) == (y, m, d) ? days : nil
    }

    /// `YYYY-MM-DD` of the local day containing `time` at a fixed UTC offset.
    public static func dayString(_ time: UnixTime, utcOffset: Int64) -> String {
        let local = time.seconds + utcOffset
        let (y, m, d) = fromDays(local >= 0 ? local / 86_400 : (local - 86_399) / 86_400)
        return String(format4: y) + "-" + String(format2: m) + "-" + String(format2: d)
    }
}

extension String {
    init(format2 v: Int64) { self = v < 10 ? "0" + v.description : v.description }
    init(format4 v: Int64) {
        let digits = v.description
        var padded = digits
        while padded.count < 4 { padded = "0" + padded }
        self = padded
    }
}

/// The Redis key names, in one place (documented in docs/redis.md). Every key of a client
/// carries the hash tag `{CLIENT}` so they share one Redis Cluster slot.
public struct RedisKeys: Sendable {
    public let client: ClientID
    /// The prefix the scripts derive day and month keys from. Made once: every reserve names
    /// four keys, and each was two new strings when the prefix was made per key.
    public let base: String

    public init(_ client: ClientID) {
        self.client = client
        base = Self.joined(Self.namespace, ":{", client.rawValue, "}")
    }

    public static let namespace = "tollgate"
    public var limits: String { Self.joined(base, ":limits") }
    public var leases: String { Self.joined(base, ":leases") }
    public func day(_ date: String) -> String { Self.joined(base, ":day:", date) }
    public func month(_ yearMonth: String) -> String { Self.joined(base, ":month:", yearMonth) }
    /// A workflow run's counters (lua/reserve_v5.lua builds the same name from the prefix).
    public func run(_ id: RunID) -> String { Self.joined(base, ":run:", id.rawValue) }

    /// One string of exactly the parts' length: `a + b + c` makes a string per `+`.
    static func joined(_ a: String, _ b: String, _ c: String = "", _ d: String = "") -> String {
        var key = ""
        key.reserveCapacity(a.utf8.count + b.utf8.count + c.utf8.count + d.utf8.count)
        key += a
        key += b
        key += c
        key += d
        return key
    }
}
