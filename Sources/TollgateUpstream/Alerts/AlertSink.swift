import NIOPosix
import TollgateCore

/// Where threshold alerts go. The sender (TollgateServer's `AlertSender`) calls `deliver` for
/// every sink that does not have an alert yet and retries what failed retriably.
public protocol AlertSink: Sendable {
    /// `webhook`, `slack` or `email`: what the sender records an alert as delivered to.
    var name: String { get }
    /// Returns once the receiver accepted the alert; throws `AlertDeliveryError` otherwise.
    func deliver(_ alert: BudgetAlert) async throws
}

/// Why an alert did not arrive, and whether trying again later can help.
public struct AlertDeliveryError: Error, Sendable, CustomStringConvertible {
    public var sink: String
    /// Connection failures, timeouts, HTTP 5xx, 408 and 429, SMTP 4xx: the receiver may take
    /// it later. Anything else (other 4xx, SMTP 5xx, a refused login, a TLS requirement the
    /// server cannot meet) fails the same way every time until someone changes a setting.
    public var isRetriable: Bool
    /// The HTTP status or SMTP reply code, when the receiver answered.
    public var status: Int?
    /// What went wrong, with the sink's credentials taken out.
    public var message: String

    /// `secrets`: every credential the message might echo (curl's error text, a receiver's
    /// answer); each is replaced by `<redacted>`.
    init(sink: String, isRetriable: Bool, status: Int? = nil, message: String, hiding secrets: [String]) {
        self.sink = sink
        self.isRetriable = isRetriable
        self.status = status
        var clean = message
        for secret in secrets where secret.count >= 4 { clean = clean.replacingOccurrences(of: secret, with: "<redacted>") }
        self.message = clean
    }

    public var description: String {
        "\(sink) alert not delivered (\(isRetriable ? "will retry" : "permanent")): \(message)"
    }
}

public enum AlertSinks {
    /// One sink per configured channel (`alerts.webhook`, `alerts.slack`, `alerts.email`).
    /// HTTP sinks share `upstream`'s connections; e-mail runs curl's blocking SMTP transfer on
    /// `threadPool` (the shared NIO pool by default: alerts are rare and each transfer is bounded
    /// by `alerts.email.timeout_seconds`).
    public static func make(from alerts: TollgateConfig.Alerts, upstream: UpstreamClient,
                            threadPool: NIOThreadPool = EmailSink.submissionPool) -> [any AlertSink] {
        var sinks: [any AlertSink] = []
        if let webhook = alerts.webhook { sinks.append(WebhookSink(webhook, upstream: upstream)) }
        if let slack = alerts.slack { sinks.append(SlackSink(slack, upstream: upstream)) }
        if let email = alerts.email { sinks.append(EmailSink(email, threadPool: threadPool)) }
        return sinks
    }
}
