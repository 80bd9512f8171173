import Crypto
import Foundation
import NIOCore
import NIOPosix
import Testing
import TollgateCore
import TollgateUpstream

/// The sinks against real receivers on loopback: a Hummingbird app for the HTTP ones, a small
/// SMTP server for e-mail. STARTTLS is supported (`alerts.email.starttls`) but tested here only
/// as far as configuration and refusal go: the test server offers no TLS.
@Suite("Alert sinks: webhook, Slack and e-mail deliver to real receivers", .timeLimit(.minutes(2)))
struct AlertSinkTests {
    static let secret = "test-signing-secret-0123456789"
    static let upstream = TestClient.shared.curl

    static func alert(client: String = "team:alice@corp.example", window: String = "2026-11-30", period: BudgetPeriod = .daily,
                      cause: BudgetAlert.Cause = .spent) -> BudgetAlert {
        BudgetAlert(client: ClientID(client)!, period: period, window: window, thresholdPercent: 80,
                    limit: NanoUSD(usd: "10")!, spent: NanoUSD(usd: "8.25")!, cause: cause, firedAt: UnixTime(seconds: 1_796_040_000))
    }

    static func webhook(_ url: String) -> WebhookSink {
        WebhookSink(.init(url: url, secret: Secret(secret), timeoutSeconds: 5), upstream: upstream)
    }

    /// A loopback port nothing listens on: bound, then closed.
    static func closedPort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress!.port!
        try await channel.close()
        return port
    }

    static func deliveryError(_ sink: any AlertSink, _ alert: BudgetAlert = alert()) async -> AlertDeliveryError? {
        do {
            try await sink.deliver(alert)
            return nil
        } catch let error as AlertDeliveryError {
            return error
        } catch {
            Issue.record("not an AlertDeliveryError: \(error)")
            return nil
        }
    }

    // MARK: webhook

    @Test("the webhook receives exactly alert.json, with its id, and a signature the receiver can recompute")
    func webhookSigned() async throws {
        let hook = try await HookReceiver.start()
        let alert = Self.alert()
        let before = Int64(Date().timeIntervalSince1970)
        try await Self.webhook(hook.url("/status/200")).deliver(alert)
        let after = Int64(Date().timeIntervalSince1970)
        await hook.stop()

        let got = try #require(hook.requests.first)
        #expect(hook.requests.count == 1)
        #expect(got.body == Array(alert.json.utf8))
        #expect(got.header("Content-Type") == "application/json")
        #expect(got.header("X-Tollgate-Alert-Id") == "team:alice@corp.example|daily|2026-11-30|80")
        let timestamp = try #require(got.header("X-Tollgate-Timestamp").flatMap { Int64($0) })
        #expect((before...after).contains(timestamp))

        // The receiver's own computation, as the README tells integrators to do it.
        let mac = HMAC<SHA256>.authenticationCode(for: Array("\(timestamp).".utf8) + got.body,
                                                  using: SymmetricKey(data: Array(Self.secret.utf8)))
        let hex = mac.map { String(format: "%02x", $0) }.joined()
        let signature = try #require(got.header("X-Tollgate-Signature"))
        #expect(signature == "sha256=" + hex)
        #expect(AlertSignature.verify(body: got.body, timestamp: UnixTime(seconds: timestamp), signature: signature,
                                      secret: Self.secret, now: UnixTime(seconds: after)))
        #expect(!AlertSignature.verify(body: got.body, timestamp: UnixTime(seconds: timestamp), signature: signature,
                                       secret: "another-secret-0123456789", now: UnixTime(seconds: after)))
    }

    @Test("a receiver's 5xx, 408 and 429 are retriable; other 4xx and redirects are permanent", arguments: [
        (500, true), (503, true), (408, true), (429, true), (400, false), (401, false), (404, false), (301, false),
    ])
    func webhookStatus(status: Int, retriable: Bool) async throws {
        let hook = try await HookReceiver.start()
        let error = await Self.deliveryError(Self.webhook(hook.url("/status/\(status)")))
        await hook.stop()
        let e = try #require(error)
        #expect(e.sink == "webhook")
        #expect(e.status == status)
        #expect(e.isRetriable == retriable)
        #expect(e.message.contains("HTTP \(status)"))
        #expect(!e.description.contains(Self.secret))
    }

    @Test("nothing listening is retriable")
    func webhookUnreachable() async throws {
        let port = try await Self.closedPort()
        let e = try #require(await Self.deliveryError(Self.webhook("http://127.0.0.1:\(port)/hook")))
        #expect(e.isRetriable)
        #expect(e.status == nil)
        #expect(e.message.contains("could not connect to 127.0.0.1"))
    }

    // MARK: Slack

    @Test("Slack gets {\"text\": summary} as valid JSON, with quotes and HTML escaped")
    func slackText() async throws {
        let hook = try await HookReceiver.start()
        // Client ids cannot hold quotes or markup (ClientID.rule), a window from the outbox can.
        let alert = Self.alert(window: #"run "<b>x</b>" & co \ done"#, period: .run)
        try await SlackSink(.init(url: Secret(hook.url("/status/200/T0SECRET"))), upstream: Self.upstream).deliver(alert)
        await hook.stop()
        let got = try #require(hook.requests.first)
        #expect(got.header("Content-Type") == "application/json")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(got.body)) as? [String: Any])
        #expect(object.keys.sorted() == ["text"])
        let text = try #require(object["text"] as? String)
        #expect(text.contains("team:alice@corp.example"))
        #expect(text.contains(#"run "&lt;b&gt;x&lt;/b&gt;" &amp; co \ done"#))
        #expect(text == alert.summary.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;"))
    }

    @Test("a Slack failure never shows the webhook URL, which is the credential")
    func slackFailureHidesURL() async throws {
        let hook = try await HookReceiver.start()
        let url = hook.url("/status/404/T0SECRET")
        let e = try #require(await Self.deliveryError(SlackSink(.init(url: Secret(url)), upstream: Self.upstream)))
        await hook.stop()
        #expect(hook.requests.count == 1)  // the receiver echoed the path in its answer
        #expect(e.sink == "slack")
        #expect(!e.isRetriable)
        #expect(!e.description.contains("T0SECRET"))
        #expect(e.description.contains("HTTP 404"))
    }

    // MARK: e-mail

    static func email(_ url: String, username: String? = nil, password: String? = nil, startTLS: TollgateConfig.Alerts.Email.StartTLS = .off,
                      to: [String] = ["ops@example.com", "cfo@example.com"]) -> EmailSink {
        EmailSink(.init(smtpURL: url, startTLS: startTLS, username: username, password: password.map(Secret.init),
                        from: "tollgate@example.com", to: to, timeoutSeconds: 5))
    }

    @Test("the mail arrives with subject, recipients and the alert, after AUTH with the configured credentials")
    func emailDelivered() async throws {
        let smtp = try await SMTPReceiver.start()
        let alert = Self.alert()
        try await Self.email(smtp.url, username: "tollgate", password: "pw-0123456789").deliver(alert)
        await smtp.stop()

        let mail = try #require(smtp.received.first)
        #expect(smtp.received.count == 1)
        #expect(mail.credentials?.0 == "tollgate")
        #expect(mail.credentials?.1 == "pw-0123456789")
        #expect(mail.from == "tollgate@example.com")
        #expect(mail.recipients == ["ops@example.com", "cfo@example.com"])
        let lines = mail.message.components(separatedBy: "\r\n")
        #expect(lines.contains("Subject: " + alert.summary))
        #expect(lines.contains("To: ops@example.com, cfo@example.com"))
        #expect(lines.contains("From: tollgate@example.com"))
        #expect(lines.contains("Message-ID: " + AlertEmail.messageID(for: alert)))
        #expect(lines.contains { $0.hasPrefix("Date: ") })
        #expect(lines.contains(alert.json))
    }

    @Test("without credentials no AUTH is sent")
    func emailWithoutAuth() async throws {
        let smtp = try await SMTPReceiver.start()
        try await Self.email(smtp.url).deliver(Self.alert())
        await smtp.stop()
        let mail = try #require(smtp.received.first)
        #expect(mail.credentials == nil)
        #expect(mail.recipients == ["ops@example.com", "cfo@example.com"])
    }

    @Test("SMTP answers decide: 451 retriable, 550 and a refused login permanent, nothing listening retriable")
    func emailFailures() async throws {
        let smtp = try await SMTPReceiver.start()
        let busy = try #require(await Self.deliveryError(Self.email(smtp.url, to: ["busy@example.com"])))
        #expect(busy.isRetriable)
        #expect(busy.status == 451)
        let rejected = try #require(await Self.deliveryError(Self.email(smtp.url, to: ["reject@example.com"])))
        #expect(!rejected.isRetriable)
        #expect(rejected.status == 550)
        let login = try #require(await Self.deliveryError(Self.email(smtp.url, username: "tollgate", password: "wrong")))
        #expect(!login.isRetriable)
        #expect(login.status == 535)
        #expect(login.message.contains("refused the login"))
        #expect(smtp.received.isEmpty)
        await smtp.stop()

        let port = try await Self.closedPort()
        let unreachable = try #require(await Self.deliveryError(Self.email("smtp://127.0.0.1:\(port)", username: "u", password: "pw-0123456789")))
        #expect(unreachable.isRetriable)
        #expect(unreachable.sink == "email")
        #expect(!unreachable.description.contains("pw-0123456789"))
    }

    @Test("starttls required against a server without STARTTLS: nothing is sent, and the error is permanent")
    func emailRequiresTLS() async throws {
        let smtp = try await SMTPReceiver.start()
        let e = try #require(await Self.deliveryError(Self.email(smtp.url, username: "u", password: "pw-0123456789", startTLS: .required)))
        await smtp.stop()
        #expect(!e.isRetriable)
        #expect(e.message.contains("STARTTLS"))
        #expect(smtp.received.isEmpty)
    }

    // MARK: factory

    @Test("AlertSinks.make builds one sink per configured channel, named for the sender")
    func factory() throws {
        var alerts = TollgateConfig.Alerts()
        #expect(AlertSinks.make(from: alerts, upstream: Self.upstream).isEmpty)
        alerts.webhook = .init(url: "http://127.0.0.1:1/h", secret: Secret(Self.secret))
        alerts.slack = .init(url: Secret("http://127.0.0.1:1/s"))
        alerts.email = .init(smtpURL: "smtp://127.0.0.1:1", from: "a@b.c", to: ["x@y.z"])
        #expect(AlertSinks.make(from: alerts, upstream: Self.upstream).map(\.name) == ["webhook", "slack", "email"])
    }
}
