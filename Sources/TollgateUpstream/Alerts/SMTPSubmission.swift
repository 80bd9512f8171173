import CCurl
import TollgateCore

/// One message handed to an SMTP server by curl's easy interface: connect, (STARTTLS), AUTH
/// when configured, MAIL FROM, RCPT TO for each recipient, DATA. `perform` blocks for up to
/// `timeoutSeconds`; call it on a thread pool. Used by one thread at a time (the pool's).
final class SMTPSubmission: @unchecked Sendable {
    let settings: TollgateConfig.Alerts.Email
    let message: [UInt8]
    /// How much of `message` curl has read (the read callback's position).
    private var sent = 0

    init(settings: TollgateConfig.Alerts.Email, message: [UInt8]) {
        self.settings = settings
        self.message = message
    }

    /// Nil when the server accepted the message for every recipient.
    func perform() -> AlertDeliveryError? {
        // curl_easy_init would run curl_global_init itself, unsafely if two threads race there.
        do throws(UpstreamClient.SetupError) { try CurlGlobal.initialize() } catch {
            return failure(error.description, retriable: false)
        }
        guard let easy = curl_easy_init() else { return failure("curl_easy_init failed", retriable: true) }
        var recipients: UnsafeMutablePointer<curl_slist>?
        let errorText = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorText.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        defer {
            curl_easy_cleanup(easy)
            curl_slist_free_all(recipients)
            errorText.deallocate()
        }
        for address in settings.to { recipients = curl_slist_append(recipients, "<\(address)>") }
        do throws(AlertDeliveryError) {
            try configure(easy, recipients: recipients, errorText: errorText)
        } catch {
            return error
        }
        sent = 0
        let result = curl_easy_perform(easy)
        guard result != CURLE_OK else { return nil }
        var reply = 0
        _ = tg_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &reply)
        let detail = errorText.pointee != 0 ? String(cString: errorText) : String(cString: curl_easy_strerror(result))
        return classify(result, reply: reply, detail: detail)
    }

    private func configure(_ h: UnsafeMutableRawPointer, recipients: UnsafeMutablePointer<curl_slist>?,
                           errorText: UnsafeMutablePointer<CChar>) throws(AlertDeliveryError) {
        func check(_ code: CURLcode, _ option: String) throws(AlertDeliveryError) {
            guard code != CURLE_OK else { return }
            throw failure("this libcurl refused \(option): \(String(cString: curl_easy_strerror(code)))", retriable: false)
        }
        let tls: curl_usessl
        switch settings.startTLS {
        case .required: tls = CURLUSESSL_ALL
        case .optional: tls = CURLUSESSL_TRY
        case .off: tls = CURLUSESSL_NONE
        }
        try check(tg_easy_setopt_pointer(h, CURLOPT_ERRORBUFFER, errorText), "CURLOPT_ERRORBUFFER")
        try check(tg_easy_setopt_string(h, CURLOPT_URL, settings.smtpURL), "CURLOPT_URL")
        try check(tg_easy_setopt_long(h, CURLOPT_NOSIGNAL, 1), "CURLOPT_NOSIGNAL")
        // smtps:// is TLS from the first byte whatever this says; ALL there is just as strict.
        try check(tg_easy_setopt_long(h, CURLOPT_USE_SSL, Int(settings.smtpURL.hasPrefix("smtps:") ? CURLUSESSL_ALL.rawValue : tls.rawValue)), "CURLOPT_USE_SSL")
        try check(tg_easy_setopt_long(h, CURLOPT_CONNECTTIMEOUT, min(settings.timeoutSeconds, 10)), "CURLOPT_CONNECTTIMEOUT")
        try check(tg_easy_setopt_long(h, CURLOPT_TIMEOUT, settings.timeoutSeconds), "CURLOPT_TIMEOUT")
        if let username = settings.username { try check(tg_easy_setopt_string(h, CURLOPT_USERNAME, username), "CURLOPT_USERNAME") }
        if let password = settings.password { try check(tg_easy_setopt_string(h, CURLOPT_PASSWORD, password.value), "CURLOPT_PASSWORD") }
        try check(tg_easy_setopt_string(h, CURLOPT_MAIL_FROM, "<\(settings.from)>"), "CURLOPT_MAIL_FROM")
        try check(tg_easy_setopt_slist(h, CURLOPT_MAIL_RCPT, recipients), "CURLOPT_MAIL_RCPT")
        try check(tg_easy_setopt_long(h, CURLOPT_UPLOAD, 1), "CURLOPT_UPLOAD")
        try check(tg_easy_setopt_off_t(h, CURLOPT_INFILESIZE_LARGE, curl_off_t(message.count)), "CURLOPT_INFILESIZE_LARGE")
        // `self` outlives the transfer: `perform` holds it until curl_easy_perform returns.
        try check(tg_easy_setopt_pointer(h, CURLOPT_READDATA, Unmanaged.passUnretained(self).toOpaque()), "CURLOPT_READDATA")
        try check(tg_easy_setopt_data_callback(h, CURLOPT_READFUNCTION) { buffer, size, count, userdata in
            let me = Unmanaged<SMTPSubmission>.fromOpaque(userdata!).takeUnretainedValue()
            return me.read(into: buffer!, capacity: size * count)
        }, "CURLOPT_READFUNCTION")
    }

    private func read(into buffer: UnsafeMutablePointer<CChar>, capacity: Int) -> Int {
        let n = min(capacity, message.count - sent)
        guard n > 0 else { return 0 }
        message.withUnsafeBytes { bytes in
            UnsafeMutableRawPointer(buffer).copyMemory(from: bytes.baseAddress! + sent, byteCount: n)
        }
        sent += n
        return n
    }

    /// SMTP says it itself: 4xx replies are transient, 5xx permanent. Without a reply the
    /// network failed (retriable), unless curl names a setting that cannot work.
    private func classify(_ result: CURLcode, reply: Int, detail: String) -> AlertDeliveryError {
        let host = settings.smtpURL.split(separator: "/").dropFirst().first.map(String.init) ?? "the SMTP server"
        let code: Int? = reply > 0 ? reply : nil
        let settingProblems: [CURLcode: String] = [
            CURLE_LOGIN_DENIED: "the server refused the login; check alerts.email.username and the password",
            CURLE_USE_SSL_FAILED: "the server offers no STARTTLS, which alerts.email.starttls: required demands",
            CURLE_PEER_FAILED_VERIFICATION: "the server's TLS certificate did not verify",
            CURLE_UNSUPPORTED_PROTOCOL: "this libcurl cannot speak the URL's protocol",
            CURLE_URL_MALFORMAT: "alerts.email.smtp_url is malformed",
        ]
        if let advice = settingProblems[result] {
            return failure("\(host): \(advice) (\(detail))", retriable: false, reply: code)
        }
        let retriable = !(500...599).contains(reply)
        return failure("\(host): \(detail)" + (code.map { " (SMTP reply \($0))" } ?? ""), retriable: retriable, reply: code)
    }

    private func failure(_ message: String, retriable: Bool, reply: Int? = nil) -> AlertDeliveryError {
        AlertDeliveryError(sink: "email", isRetriable: retriable, status: reply, message: message,
                           hiding: settings.password.map { [$0.value] } ?? [])
    }
}
