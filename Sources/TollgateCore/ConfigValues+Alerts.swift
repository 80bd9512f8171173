import Foundation

/// `alerts.*`: thresholds, the sinks and the sender's pacing (docs/config.md). Credentials are
/// named by `*_env` settings and read here, at load, so a missing one stops the start with the
/// key that names it rather than failing the first alert hours later.
extension ConfigValues {
    static let alertKeys: Set<String> = [
        "alerts", "alerts.thresholds", "alerts.max_attempts", "alerts.initial_backoff_ms", "alerts.max_backoff_seconds",
        "alerts.poll_interval_ms", "alerts.outbox_max_length",
        "alerts.webhook", "alerts.webhook.url", "alerts.webhook.secret_env", "alerts.webhook.timeout_seconds",
        "alerts.slack", "alerts.slack.url", "alerts.slack.url_env", "alerts.slack.timeout_seconds",
        "alerts.email", "alerts.email.smtp_url", "alerts.email.starttls", "alerts.email.username", "alerts.email.password_env",
        "alerts.email.from", "alerts.email.to", "alerts.email.timeout_seconds",
    ]
    static let defaultWebhookSecretEnv = "TOLLGATE_ALERTS_WEBHOOK_SECRET"
    /// Shorter secrets are guessable offline from one signed request.
    static let minimumSecretBytes = 16

    func alerts(environment: [String: String]) throws -> TollgateConfig.Alerts {
        var a = TollgateConfig.Alerts()
        a.maxAttempts = try int("alerts.max_attempts", in: 1...1_000, "") ?? a.maxAttempts
        a.initialBackoffMilliseconds = try int("alerts.initial_backoff_ms", in: 1...3_600_000, "milliseconds ") ?? a.initialBackoffMilliseconds
        a.maxBackoffSeconds = try int("alerts.max_backoff_seconds", in: 1...86_400, "seconds ") ?? a.maxBackoffSeconds
        guard a.initialBackoffMilliseconds <= a.maxBackoffSeconds * 1_000 else {
            throw fail("alerts.initial_backoff_ms", "must not exceed alerts.max_backoff_seconds (\(a.maxBackoffSeconds) s); lower it or raise the maximum")
        }
        a.pollIntervalMilliseconds = try int("alerts.poll_interval_ms", in: 10...60_000, "milliseconds ") ?? a.pollIntervalMilliseconds
        a.outboxMaxLength = try int("alerts.outbox_max_length", in: 10...10_000_000, "entries ") ?? a.outboxMaxLength
        if has(under: "alerts.webhook.") { a.webhook = try webhook(environment) }
        if has(under: "alerts.slack.") { a.slack = try slack(environment) }
        if has(under: "alerts.email.") { a.email = try email(environment) }
        return a
    }

    /// `alerts.thresholds`: the default of every client's policy (`ClientPolicy.alertThresholds`).
    func alertThresholds() throws -> [Int]? {
        let key = "alerts.thresholds"
        guard let items = try list(key) else { return nil }
        let text = items.joined(separator: ",")
        guard let values = AlertThresholds.validated(text) else { throw fail(key, "must be \(AlertThresholds.rule) (got '\(text)')") }
        return values
    }

    private func webhook(_ environment: [String: String]) throws -> TollgateConfig.Alerts.Webhook {
        let url = try httpURL("alerts.webhook.url", what: "the receiver's URL, e.g. https://hooks.example.com/tollgate")
        let secretKey = "alerts.webhook.secret_env"
        guard let name = present.contains(secretKey) ? string(secretKey) : Self.defaultWebhookSecretEnv, !name.isEmpty else {
            throw fail(secretKey, "is required with a webhook: name the environment variable holding the signing secret")
        }
        let secret = try resolve(secretKey, name, environment, what: "the webhook signing secret")
        guard secret.utf8.count >= Self.minimumSecretBytes else {
            throw fail(secretKey, "names \(name), whose value is shorter than \(Self.minimumSecretBytes) bytes; use a random secret, e.g. `openssl rand -hex 32`")
        }
        return .init(url: url, secret: Secret(secret),
                     timeoutSeconds: try int("alerts.webhook.timeout_seconds", in: 1...300, "seconds ") ?? 10)
    }

    private func slack(_ environment: [String: String]) throws -> TollgateConfig.Alerts.Slack {
        let inline = string("alerts.slack.url"), envName = string("alerts.slack.url_env")
        let url: String
        switch (inline, envName) {
        case (let u?, nil): url = u
        case (nil, let name?): url = try resolve("alerts.slack.url_env", name, environment, what: "the Slack incoming-webhook URL")
        default:
            throw fail("alerts.slack.url", "set exactly one of alerts.slack.url and alerts.slack.url_env (the name of the environment variable holding the URL)")
        }
        // The URL is the credential: the error never repeats it.
        guard let u = URL(string: url), ["http", "https"].contains(u.scheme ?? ""), u.host != nil else {
            throw fail(envName == nil ? "alerts.slack.url" : "alerts.slack.url_env", "is not an http(s) URL; copy the incoming-webhook URL from Slack (https://hooks.slack.com/services/…)")
        }
        return .init(url: Secret(url), timeoutSeconds: try int("alerts.slack.timeout_seconds", in: 1...300, "seconds ") ?? 10)
    }

    private func email(_ environment: [String: String]) throws -> TollgateConfig.Alerts.Email {
        let urlKey = "alerts.email.smtp_url"
        guard let raw = string(urlKey) else { throw fail(urlKey, "is required with e-mail alerts, e.g. smtp://mail.example.com:587 or smtps://mail.example.com:465") }
        guard let u = URLComponents(string: raw), let scheme = u.scheme, ["smtp", "smtps"].contains(scheme),
              let host = u.host, !host.isEmpty, (1...65_535).contains(u.port ?? 25) else {
            throw fail(urlKey, "must be smtp://HOST[:PORT] or smtps://HOST[:PORT] (got '\(raw)')")
        }
        guard u.user == nil, u.password == nil else {
            throw fail(urlKey, "must not carry credentials; use alerts.email.username and alerts.email.password_env")
        }
        let tlsKey = "alerts.email.starttls"
        var startTLS = TollgateConfig.Alerts.Email.StartTLS.required
        if let tls = try choice(tlsKey, TollgateConfig.Alerts.Email.StartTLS.self, options: ["required", "optional", "off"]) {
            guard scheme == "smtp" else { throw fail(tlsKey, "applies to smtp:// only; smtps:// is TLS from the first byte, so remove it") }
            startTLS = tls
        }
        let username = string("alerts.email.username"), passwordEnv = string("alerts.email.password_env")
        var password: Secret?
        switch (username, passwordEnv) {
        case (nil, nil): break
        case (_?, let name?): password = Secret(try resolve("alerts.email.password_env", name, environment, what: "the SMTP password"))
        case (nil, _?): throw fail("alerts.email.username", "is required with alerts.email.password_env")
        case (_?, nil): throw fail("alerts.email.password_env", "is required with alerts.email.username: name the environment variable holding the SMTP password")
        }
        // Without a guaranteed TLS upgrade, AUTH would put the password on the wire in clear.
        if password != nil, scheme == "smtp", startTLS != .required, !Self.isLoopback(host) {
            throw fail(tlsKey, "\(startTLS.rawValue) would let the SMTP password cross the network in clear text; use required (or smtps://), or a relay on this host")
        }
        let fromKey = "alerts.email.from", toKey = "alerts.email.to"
        guard let from = string(fromKey) else { throw fail(fromKey, "is required with e-mail alerts, e.g. tollgate@example.com") }
        guard Self.isMailbox(from) else { throw fail(fromKey, "must be a bare address such as tollgate@example.com (got '\(from)')") }
        guard let to = try list(toKey), !to.isEmpty else { throw fail(toKey, "is required with e-mail alerts: one address or a comma-separated list") }
        if let bad = to.first(where: { !Self.isMailbox($0) }) {
            throw fail(toKey, "must list bare addresses such as ops@example.com (got '\(bad)')")
        }
        return .init(smtpURL: raw, startTLS: startTLS, username: username, password: password, from: from, to: to,
                     timeoutSeconds: try int("alerts.email.timeout_seconds", in: 1...600, "seconds ") ?? 30)
    }

    private func httpURL(_ key: String, what: String) throws -> String {
        guard let s = string(key) else { throw fail(key, "is required: \(what)") }
        guard let u = URL(string: s), ["http", "https"].contains(u.scheme ?? ""), u.host != nil else {
            throw fail(key, "must be an http:// or https:// URL: \(what) (got '\(s)')")
        }
        return s
    }

    /// The value of the environment variable `name` that `key` names; the error names both,
    /// never the value.
    private func resolve(_ key: String, _ name: String, _ environment: [String: String], what: String) throws -> String {
        guard let value = environment[name], !value.isEmpty else {
            throw fail(key, "names \(name), which is not set (or empty); export \(name) with \(what)")
        }
        return value
    }

    /// `local@domain` with nothing that could end a header or an SMTP command.
    static func isMailbox(_ s: String) -> Bool {
        guard let at = s.lastIndex(of: "@"), at != s.startIndex, s.index(after: at) != s.endIndex, s.utf8.count <= 254 else { return false }
        return s.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value != 0x7F && !"<>,;\"()[]\\".unicodeScalars.contains($0) }
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }
}
