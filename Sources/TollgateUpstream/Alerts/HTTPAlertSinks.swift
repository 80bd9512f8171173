import Foundation
import TollgateCore

/// POSTs `BudgetAlert.json`, signed (`AlertSignature`): the receiver checks the signature and
/// the timestamp, and de-duplicates on `X-Tollgate-Alert-Id` (delivery is at least once).
public struct WebhookSink: AlertSink {
    public let name = "webhook"
    let settings: TollgateConfig.Alerts.Webhook
    let upstream: UpstreamClient

    public init(_ settings: TollgateConfig.Alerts.Webhook, upstream: UpstreamClient) {
        self.settings = settings
        self.upstream = upstream
    }

    public func deliver(_ alert: BudgetAlert) async throws {
        let body = Array(alert.json.utf8)
        // Signed at each attempt, so a retry hours later still passes the receiver's replay window.
        let now = UnixTime(seconds: Int64(Date().timeIntervalSince1970))
        let headers = [
            (name: AlertSignature.signatureHeader, value: AlertSignature.sign(body: body, timestamp: now, secret: settings.secret.value)),
            (name: AlertSignature.timestampHeader, value: String(now.seconds)),
            (name: AlertSignature.alertIDHeader, value: singleLine(alert.id)),
        ]
        try await HTTPAlertPost(sink: name, url: settings.url, timeoutSeconds: settings.timeoutSeconds, secrets: [settings.secret.value])
            .send(body, headers: headers, through: upstream)
    }
}

/// A Slack incoming webhook: `{"text": summary}`.
public struct SlackSink: AlertSink {
    public let name = "slack"
    let settings: TollgateConfig.Alerts.Slack
    let upstream: UpstreamClient

    public init(_ settings: TollgateConfig.Alerts.Slack, upstream: UpstreamClient) {
        self.settings = settings
        self.upstream = upstream
    }

    public func deliver(_ alert: BudgetAlert) async throws {
        let body = Array(Self.message(alert.summary).utf8)
        // The URL is the credential: its path (the token) must not show up in an error either.
        let path = URLComponents(string: settings.url.value)?.path ?? ""
        try await HTTPAlertPost(sink: name, url: settings.url.value, timeoutSeconds: settings.timeoutSeconds,
                                secrets: [settings.url.value, path]).send(body, headers: [], through: upstream)
    }

    /// Slack reads `&`, `<` and `>` in `text` as markup (links, mentions), so they are escaped
    /// as Slack documents before the JSON quoting.
    static func message(_ text: String) -> String {
        let escaped = text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
        return "{\"text\":" + jsonQuoted(escaped) + "}"
    }
}

/// One JSON POST through the upstream client, its outcome sorted into retriable or permanent.
struct HTTPAlertPost {
    let sink: String
    let url: String
    let timeoutSeconds: Int
    let secrets: [String]

    func send(_ body: [UInt8], headers: [(name: String, value: String)], through upstream: UpstreamClient) async throws {
        let request = UpstreamRequest(
            url: url, method: "POST",
            headers: [(name: "Content-Type", value: "application/json"), (name: "User-Agent", value: "tollgate-alerts")] + headers,
            body: body, collectBody: true, timeoutMilliseconds: timeoutSeconds * 1_000)
        let host = URLComponents(string: url)?.host ?? "the receiver"
        var status = 0, answer: [UInt8] = []
        for await part in upstream.start(request).parts {
            switch part {
            case .head(let head): status = head.status
            case .body(let bytes): answer += bytes
            case .end: break
            case .failed(let failure):
                if failure.kind == .cancelled, Task.isCancelled { throw CancellationError() }
                let what = failure.kind == .connect ? "could not connect to \(host)" : "transfer to \(host) failed"
                throw AlertDeliveryError(sink: sink, isRetriable: true, message: "\(what): \(failure.message)", hiding: secrets)
            }
        }
        if Task.isCancelled, status == 0 { throw CancellationError() }
        guard !(200...299).contains(status) else { return }
        // Status 0: the stream ended without an answer, as after a dropped connection.
        let retriable = status == 0 || status >= 500 || status == 408 || status == 429
        var message = "\(host) answered HTTP \(status)"
        if (300...399).contains(status) { message += " (redirects are not followed: configure the final URL)" }
        let excerpt = singleLine(String(decoding: answer.prefix(200), as: UTF8.self))
        if !excerpt.isEmpty { message += ": " + excerpt }
        throw AlertDeliveryError(sink: sink, isRetriable: retriable, status: status, message: message, hiding: secrets)
    }
}
