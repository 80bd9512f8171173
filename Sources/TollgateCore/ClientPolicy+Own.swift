/// A client's own policy values as they sit in its limits hash (`ClientPolicy.Field`); nil: the
/// config default applies. `lua/reserve_v5.lua` reads the same fields in the same way.
public struct OwnPolicy: Sendable, Equatable {
    public var onLimit: ClientPolicy.OnLimit?
    /// 0: downgrade off for this client.
    public var downgradeAt: Int?
    /// model → cheaper model, or `none` (no downgrade for that model).
    public var downgrades: [String: String] = [:]
    /// 0: loop breaker off for this client.
    public var loopMax: Int?
    public var loopWindow: Int?
    public var runLimit: NanoUSD?
    /// Empty: alerts off for this client.
    public var alertThresholds: [Int]?

    public init() {}

    /// Reads the limits hash (HGETALL); fields the script could not use either are ignored.
    public init(hash: [String: String]) {
        typealias F = ClientPolicy.Field
        onLimit = hash[F.onLimit].flatMap(ClientPolicy.OnLimit.init(rawValue:))
        downgradeAt = hash[F.downgradeAt].flatMap { Int($0) }
        loopMax = hash[F.loopMax].flatMap { Int($0) }
        loopWindow = hash[F.loopWindow].flatMap { Int($0) }
        runLimit = hash[F.runLimit].flatMap { Int64($0) }.map(NanoUSD.init)
        alertThresholds = hash[F.alerts].map(AlertThresholds.parse)
        for (field, value) in hash where field.hasPrefix(ClientPolicy.Field.downgradePrefix) {
            downgrades[String(field.dropFirst(ClientPolicy.Field.downgradePrefix.count))] = value
        }
    }
}

/// The policy in force for one client: its own values over the defaults, each marked whether
/// it is the default (as the admin API marks limits).
public struct EffectivePolicy: Sendable, Equatable {
    public struct Value<T: Sendable & Equatable>: Sendable, Equatable {
        public var value: T
        public var isDefault: Bool
        public init(value: T, isDefault: Bool) {
            self.value = value
            self.isDefault = isDefault
        }
    }

    public var onLimit: Value<ClientPolicy.OnLimit>
    /// 0: off.
    public var downgradeAt: Value<Int>
    /// `none` as a value: the client's own "do not downgrade this model" over a default mapping.
    public var downgrades: [String: Value<String>]
    /// 0: off.
    public var loopMax: Value<Int>
    public var loopWindow: Value<Int>
    /// nil: runs are capped only by the day and month (or a request's header).
    public var runLimit: Value<NanoUSD?>
    /// Empty: off.
    public var alertThresholds: Value<[Int]>

    public init(own: OwnPolicy, defaults: ClientPolicy) {
        func pick<T: Sendable & Equatable>(_ own: T?, _ fallback: T) -> Value<T> { Value(value: own ?? fallback, isDefault: own == nil) }
        onLimit = pick(own.onLimit, defaults.onLimit)
        downgradeAt = pick(own.downgradeAt, defaults.downgrade?.atPercent ?? 0)
        var models = (defaults.downgrade?.models ?? [:]).mapValues { Value(value: $0, isDefault: true) }
        for (model, cheaper) in own.downgrades { models[model] = Value(value: cheaper, isDefault: false) }
        downgrades = models
        loopMax = pick(own.loopMax, defaults.loopBreaker?.maxRepeats ?? 0)
        // The script's fallback window when the defaults have no loop breaker (BudgetStore).
        loopWindow = pick(own.loopWindow, defaults.loopBreaker?.windowSeconds ?? 60)
        runLimit = Value<NanoUSD?>(value: own.runLimit ?? defaults.runLimit, isDefault: own.runLimit == nil)
        alertThresholds = pick(own.alertThresholds, defaults.alertThresholds)
    }
}

extension ClientPolicy.Field {
    public static let downgradePrefix = "downgrade:"
}

/// What a client's own policy values may be; the admin API and the CLI check with these and
/// phrase the fix in their own terms.
public enum PolicyRule {
    /// 0 turns downgrade off for the client.
    public static let percent = 0...100
    /// 0 turns the loop breaker off for the client.
    public static let loopMax = 0...1_000_000
    public static let loopWindow = 1...86_400
    /// Model names become hash field names and sit in `|`-separated lease data.
    public static func isModelName(_ name: String) -> Bool {
        (1...200).contains(name.utf8.count) && !name.contains("|")
    }
    public static let modelName = "a model name of 1-200 characters without '|'"
}
