import Testing
@testable import TollgateCore

@Suite("TollgateConfig: alerts")
struct AlertConfigTests {
    static let secretEnv = ["HOOK_SECRET": "s3cret-s3cret-s3cret", "TOLLGATE_ALERTS_WEBHOOK_SECRET": "default-secret-0123456789"]

    @Test("defaults: thresholds 50, 80, 100, no sinks, the sender's pacing")
    func defaults() throws {
        let c = try TollgateConfig.load(yaml: "")
        #expect(c.clients.defaults.alertThresholds == [50, 80, 100])
        let a = c.alerts
        #expect(a.webhook == nil && a.slack == nil && a.email == nil)
        #expect(a.maxAttempts == 10)
        #expect(a.initialBackoffMilliseconds == 500)
        #expect(a.maxBackoffSeconds == 60)
        #expect(a.pollIntervalMilliseconds == 500)
        #expect(a.outboxMaxLength == 10_000)
    }

    @Test("thresholds as a comma string or a YAML list become every client's default, sorted and unique; none and empty turn alerts off", arguments: [
        ("alerts: { thresholds: \"90, 50\" }", [50, 90]),
        ("alerts: { thresholds: [100, 25, 75] }", [25, 75, 100]),
        ("alerts:\n  thresholds:\n    - 80\n    - 120\n", [80, 120]),
        ("alerts: { thresholds: 100 }", [100]),
        ("alerts: { thresholds: none }", []),
        ("alerts: { thresholds: \"\" }", []),
        ("alerts: { thresholds: [] }", []),
        ("alerts: { thresholds: \"80,50,80\" }", [50, 80]),
    ])
    func thresholds(yaml: String, expected: [Int]) throws {
        #expect(try TollgateConfig.load(yaml: yaml).clients.defaults.alertThresholds == expected)
    }

    @Test("a full alerts section")
    func full() throws {
        let yaml = """
            alerts:
              thresholds: [50, 90]
              max_attempts: 5
              initial_backoff_ms: 250
              max_backoff_seconds: 30
              poll_interval_ms: 100
              outbox_max_length: 500
              webhook: { url: "https://hooks.example.com/tollgate?x=1", secret_env: HOOK_SECRET, timeout_seconds: 3 }
              slack: { url_env: SLACK_URL }
              email:
                smtp_url: smtp://mail.example.com:587
                username: tollgate
                password_env: SMTP_PASSWORD
                from: tollgate@example.com
                to: [ops@example.com, "finance@example.com"]
                timeout_seconds: 20
            """
        let env = Self.secretEnv.merging(["SLACK_URL": "https://hooks.slack.com/services/T0/B0/xyz", "SMTP_PASSWORD": "pw"]) { $1 }
        let c = try TollgateConfig.load(yaml: yaml, environment: env)
        #expect(c.clients.defaults.alertThresholds == [50, 90])
        let a = c.alerts
        #expect(a.maxAttempts == 5)
        #expect(a.initialBackoffMilliseconds == 250)
        #expect(a.maxBackoffSeconds == 30)
        #expect(a.pollIntervalMilliseconds == 100)
        #expect(a.outboxMaxLength == 500)
        let webhook = try #require(a.webhook)
        #expect(webhook.url == "https://hooks.example.com/tollgate?x=1")
        #expect(webhook.secret.value == "s3cret-s3cret-s3cret")
        #expect(webhook.timeoutSeconds == 3)
        #expect(a.slack?.url.value == "https://hooks.slack.com/services/T0/B0/xyz")
        #expect(a.slack?.timeoutSeconds == 10)
        let email = try #require(a.email)
        #expect(email.smtpURL == "smtp://mail.example.com:587")
        #expect(email.startTLS == .required)
        #expect(email.username == "tollgate")
        #expect(email.password?.value == "pw")
        #expect(email.from == "tollgate@example.com")
        #expect(email.to == ["ops@example.com", "finance@example.com"])
        #expect(email.timeoutSeconds == 20)
    }

    @Test("the webhook secret comes from TOLLGATE_ALERTS_WEBHOOK_SECRET unless secret_env names another; a URL override works")
    func webhookDefaults() throws {
        let a = try TollgateConfig.load(yaml: "alerts: { webhook: { url: 'http://127.0.0.1:9/h' } }", environment: Self.secretEnv).alerts
        #expect(a.webhook?.secret.value == "default-secret-0123456789")
        let env = Self.secretEnv.merging(["TOLLGATE_ALERTS_WEBHOOK_URL": "https://env.example/h", "TOLLGATE_ALERTS_THRESHOLDS": "10,20"]) { $1 }
        let b = try TollgateConfig.load(yaml: "", environment: env)
        #expect(b.alerts.webhook?.url == "https://env.example/h")
        #expect(b.clients.defaults.alertThresholds == [10, 20])
    }

    @Test("e-mail: starttls defaults to required on smtp://, may be optional or off on a loopback relay, and a comma list of recipients")
    func emailVariants() throws {
        let relay = try TollgateConfig.load(yaml: """
            alerts: { email: { smtp_url: "smtp://127.0.0.1:2525", starttls: off, username: u, password_env: P, from: a@b.c, to: "x@y.z, w@y.z" } }
            """, environment: ["P": "pw"]).alerts.email
        #expect(relay?.startTLS == .off)
        #expect(relay?.to == ["x@y.z", "w@y.z"])
        let open = try TollgateConfig.load(yaml: "alerts: { email: { smtp_url: smtp://mail.example.com, starttls: optional, from: a@b.c, to: x@y.z } }")
        #expect(open.alerts.email?.startTLS == .optional)
        let tls = try TollgateConfig.load(yaml: "alerts: { email: { smtp_url: smtps://mail.example.com:465, from: a@b.c, to: x@y.z } }")
        #expect(tls.alerts.email?.startTLS == .required)
    }

    @Test("a secret prints as <redacted>, so a config can be logged")
    func redacted() throws {
        let a = try TollgateConfig.load(yaml: "alerts: { webhook: { url: 'http://h/x', secret_env: HOOK_SECRET } }", environment: Self.secretEnv).alerts
        #expect("\(a)".contains("s3cret") == false)
        var dumped = ""
        dump(a, to: &dumped)
        #expect(!dumped.contains("s3cret"))
        #expect(dumped.contains("http://h/x"))
    }

    @Test("each mistake names its key and says what to do", arguments: [
        ("alerts: { thresholds: \"0,50\" }", "alerts.thresholds", "1 to 1000"),
        ("alerts: { thresholds: \"50,1001\" }", "alerts.thresholds", "1 to 1000"),
        ("alerts: { thresholds: \"50,abc\" }", "alerts.thresholds", "'50,abc'"),
        ("alerts: { thresholds: [{ a: 1 }] }", "alerts.thresholds", "list of plain values"),
        ("alerts: { max_attempts: 0 }", "alerts.max_attempts", "1 to 1000"),
        ("alerts: { initial_backoff_ms: 90000, max_backoff_seconds: 60 }", "alerts.initial_backoff_ms", "max_backoff_seconds"),
        ("alerts: { poll_interval_ms: 1 }", "alerts.poll_interval_ms", "10 to 60000"),
        ("alerts: { webhook: { secret_env: HOOK_SECRET } }", "alerts.webhook.url", "is required"),
        ("alerts: { webhook: { url: ftp://h/x, secret_env: HOOK_SECRET } }", "alerts.webhook.url", "http://"),
        ("alerts: { webhook: { url: http://h/x, secret_env: MISSING } }", "alerts.webhook.secret_env", "MISSING, which is not set"),
        ("alerts: { webhook: { url: http://h/x, secret_env: ~ } }", "alerts.webhook.secret_env", "is required"),
        ("alerts: { webhook: { url: http://h/x, secret_env: SHORT } }", "alerts.webhook.secret_env", "shorter than 16"),
        ("alerts: { wbehook: { url: http://h/x } }", "alerts.wbehook", "not a known setting"),
        ("alerts: { slack: { timeout_seconds: 5 } }", "alerts.slack.url", "exactly one"),
        ("alerts: { slack: { url: https://a/b, url_env: SLACK } }", "alerts.slack.url", "exactly one"),
        ("alerts: { slack: { url_env: MISSING } }", "alerts.slack.url_env", "MISSING, which is not set"),
        ("alerts: { slack: { url: not-a-url } }", "alerts.slack.url", "not an http(s) URL"),
        ("alerts: { email: { smtp_url: http://mail.example.com, from: a@b.c, to: x@y.z } }", "alerts.email.smtp_url", "smtp://HOST"),
        ("alerts: { email: { from: a@b.c, to: x@y.z } }", "alerts.email.smtp_url", "is required"),
        ("alerts: { email: { smtp_url: 'smtp://u:p@mail.example.com', from: a@b.c, to: x@y.z } }", "alerts.email.smtp_url", "credentials"),
        ("alerts: { email: { smtp_url: smtps://mail.example.com, starttls: off, from: a@b.c, to: x@y.z } }", "alerts.email.starttls", "smtp:// only"),
        ("alerts: { email: { smtp_url: smtp://mail.example.com, starttls: maybe, from: a@b.c, to: x@y.z } }", "alerts.email.starttls", "required, optional, off"),
        ("alerts: { email: { smtp_url: smtp://mail.example.com, starttls: off, username: u, password_env: P, from: a@b.c, to: x@y.z } }",
         "alerts.email.starttls", "clear text"),
        ("alerts: { email: { smtp_url: smtp://mail.example.com, username: u, from: a@b.c, to: x@y.z } }", "alerts.email.password_env", "is required"),
        ("alerts: { email: { smtp_url: smtp://mail.example.com, password_env: P, from: a@b.c, to: x@y.z } }", "alerts.email.username", "is required"),
        ("alerts: { email: { smtp_url: smtp://mail.example.com, username: u, password_env: MISSING, from: a@b.c, to: x@y.z } }",
         "alerts.email.password_env", "MISSING"),
        ("alerts: { email: { smtp_url: smtp://mail.example.com, to: x@y.z } }", "alerts.email.from", "is required"),
        ("alerts: { email: { smtp_url: smtp://mail.example.com, from: 'Ops <a@b.c>', to: x@y.z } }", "alerts.email.from", "bare address"),
        ("alerts: { email: { smtp_url: smtp://mail.example.com, from: a@b.c } }", "alerts.email.to", "is required"),
        ("alerts: { email: { smtp_url: smtp://mail.example.com, from: a@b.c, to: \"x@y.z, nobody\" } }", "alerts.email.to", "'nobody'"),
        ("alerts: { email: { smtp_url: smtp://mail.example.com, from: a@b.c, to: x@y.z, timeout_seconds: 0 } }", "alerts.email.timeout_seconds", "1 to 600"),
    ])
    func mistakes(yaml: String, key: String, hint: String) {
        let env = Self.secretEnv.merging(["SHORT": "tooshort", "SLACK": "https://a/b", "P": "pw"]) { $1 }
        let error = #expect(throws: ConfigError.self) { try TollgateConfig.load(yaml: yaml, environment: env) }
        #expect(error?.key == key)
        #expect(error?.message.contains(hint) == true, "\(error?.message ?? "")")
    }

    @Test("an error about a credential never shows its value")
    func errorsHideSecrets() {
        let error = #expect(throws: ConfigError.self) {
            try TollgateConfig.load(yaml: "alerts: { slack: { url_env: SLACK } }", environment: ["SLACK": "xoxb-not-a-url-secret"])
        }
        #expect(error?.key == "alerts.slack.url_env")
        #expect(error?.description.contains("xoxb") == false)
    }
}
