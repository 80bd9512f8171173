/// The rules around a client's budget wall (README, "Budget policies"). Defaults come from the
/// config's `clients.defaults`; a client's own values live in Redis beside its limits
/// (`tollgate:{C}:limits`, fields below), set through the admin API or the CLI. The reserve
/// script reads them in the same call that decides the budget, so every replica applies the
/// client's current policy atomically.
public struct ClientPolicy: Sendable, Equatable {
    /// What happens when a request does not fit the budget.
    public enum OnLimit: String, Sendable, CaseIterable {
        /// 402 (or 429): today's wall.
        case block
        /// Forward anyway, mark the answer `X-Budget-Exceeded: true`, count the spend in
        /// `over_limit_spent`. Gives up the guarantee, deliberately.
        case warn
        /// Answer 200 with a well-formed completion that says the budget is exhausted; nothing is
        /// sent upstream or charged.
        case stop
    }

    /// Requests for expensive models move to cheaper ones once spent + reserved reaches
    /// `atPercent` of a limit.
    public struct Downgrade: Sendable, Equatable {
        public var atPercent: Int
        public var models: [String: String]
        public init(atPercent: Int, models: [String: String]) {
            self.atPercent = atPercent
            self.models = models
        }
    }

    /// The same request more than `maxRepeats` times within `windowSeconds` is refused (429).
    public struct LoopBreaker: Sendable, Equatable {
        public var maxRepeats: Int
        public var windowSeconds: Int
        public init(maxRepeats: Int, windowSeconds: Int) {
            self.maxRepeats = maxRepeats
            self.windowSeconds = windowSeconds
        }
    }

    public var onLimit: OnLimit = .block
    public var downgrade: Downgrade?
    /// nil: off. Off unless configured: benchmarks and eval harnesses repeat requests on purpose.
    public var loopBreaker: LoopBreaker?
    /// Cap of a workflow run (`X-Budget-Run`) that names none (`X-Budget-Run-USD`); nil: runs are
    /// capped only by the day and month.
    public var runLimit: NanoUSD?
    /// How long a run's counters live after its last reservation.
    public var runTTLSeconds = 7 * 86_400
    /// Percents of a budget (day, month, run) whose crossing fires an alert (`alerts.thresholds`);
    /// empty: none.
    public var alertThresholds = [50, 80, 100]

    public init() {}

    /// Field names in the client's limits hash.
    public enum Field {
        public static let onLimit = "on_limit"
        public static let downgradeAt = "downgrade_at"
        /// `downgrade:<model>` → the cheaper model.
        public static func downgrade(_ model: String) -> String { "downgrade:" + model }
        public static let loopMax = "loop_max"
        public static let loopWindow = "loop_window"
        public static let runLimit = "run_limit"
        /// Comma-separated percents, or `none` (the scripts parse the digits).
        public static let alerts = "alerts"
    }
}
