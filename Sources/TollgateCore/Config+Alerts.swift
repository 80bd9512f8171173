extension TollgateConfig {
    /// Threshold alerts (`alerts.*`, docs/config.md; README, "Alerts"). The scripts fire them
    /// into an outbox; the sender delivers them to every configured sink, retrying with backoff.
    /// `alerts.thresholds` is read into `clients.defaults.alertThresholds`: the thresholds are
    /// part of a client's policy, which its own `alerts` field overrides.
    public struct Alerts: Sendable {
        public var webhook: Webhook?
        public var slack: Slack?
        public var email: Email?
        /// Attempts per sink before an alert is given up (permanent failures stop at once).
        public var maxAttempts = 10
        public var initialBackoffMilliseconds = 500
        public var maxBackoffSeconds = 60
        public var pollIntervalMilliseconds = 500
        /// Entries an outbox stream keeps at most (an undeliverable backlog must not grow forever).
        public var outboxMaxLength = 10_000

        public init() {}

        /// A signed JSON POST of `BudgetAlert.json` (`AlertSignature`).
        public struct Webhook: Sendable {
            public var url: String
            public var secret: Secret
            public var timeoutSeconds = 10
            public init(url: String, secret: Secret, timeoutSeconds: Int = 10) {
                self.url = url
                self.secret = secret
                self.timeoutSeconds = timeoutSeconds
            }
        }

        /// A Slack incoming webhook. Its URL is itself the credential, hence `Secret`.
        public struct Slack: Sendable {
            public var url: Secret
            public var timeoutSeconds = 10
            public init(url: Secret, timeoutSeconds: Int = 10) {
                self.url = url
                self.timeoutSeconds = timeoutSeconds
            }
        }

        public struct Email: Sendable {
            /// For `smtp://` only; `smtps://` is TLS from the first byte.
            public enum StartTLS: String, Sendable {
                /// Refuse to send unless the server upgrades the connection.
                case required
                /// Upgrade when the server offers it, else send in clear text.
                case optional
                case off
            }
            /// `smtp://host[:port]` or `smtps://host[:port]`.
            public var smtpURL: String
            public var startTLS: StartTLS
            public var username: String?
            public var password: Secret?
            /// Bare addresses (`alerts@example.com`), used in the envelope and the headers.
            public var from: String
            public var to: [String]
            public var timeoutSeconds = 30

            public init(smtpURL: String, startTLS: StartTLS = .required, username: String? = nil, password: Secret? = nil,
                        from: String, to: [String], timeoutSeconds: Int = 30) {
                self.smtpURL = smtpURL
                self.startTLS = startTLS
                self.username = username
                self.password = password
                self.from = from
                self.to = to
                self.timeoutSeconds = timeoutSeconds
            }
        }
    }
}
