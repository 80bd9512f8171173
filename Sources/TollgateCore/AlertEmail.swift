import Foundation

/// The RFC 5322 message an e-mail alert sends: headers, then the details in plain text and the
/// webhook's JSON, so a mail rule or a script can use either. Lines end in CRLF, as SMTP wants;
/// curl dot-stuffs the body itself.
public struct AlertEmail: Sendable {
    public var from: String
    public var to: [String]

    public init(from: String, to: [String]) {
        self.from = from
        self.to = to
    }

    /// The whole message, `date` being the time it is sent.
    public func message(for alert: BudgetAlert, date: UnixTime) -> String {
        let headers = [
            "Date: " + Self.rfc5322Date(date),
            "From: " + from,
            "To: " + to.joined(separator: ", "),
            "Subject: " + Self.headerText(alert.summary),
            "Message-ID: " + Self.messageID(for: alert),
            "X-Tollgate-Alert-Id: " + singleLine(alert.id),
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
        ]
        let body = [
            alert.summary,
            "",
            "Client:    \(alert.client.rawValue)",
            "Budget:    \(alert.period.rawValue) (\(alert.window))",
            "Threshold: \(alert.thresholdPercent)%",
            "Spent:     \(alert.spent) of \(alert.limit)",
            "Cause:     \(alert.cause == .refused ? "a request was refused at the limit" : "settled spend reached the threshold")",
            "Fired at:  \(alert.firedAt.rfc3339)",
            "Alert id:  \(alert.id)",
            "",
            "As JSON (the webhook payload):",
            alert.json,
        ]
        return (headers + [""] + body.map(singleLine)).joined(separator: "\r\n") + "\r\n"
    }

    /// The same for every retry of an alert, so a mail client shows a resent alert once.
    /// `<alert.ID@tollgate>` with every character outside RFC 5322's atext written `=HH`.
    public static func messageID(for alert: BudgetAlert) -> String {
        let atext = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/?^_`{|}~".utf8)
        var encoded = ""
        for b in alert.id.utf8 {
            if atext.contains(b) {
                encoded.unicodeScalars.append(Unicode.Scalar(b))
            } else {
                let hex = String(b, radix: 16, uppercase: true)
                encoded += "=" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return "<alert." + encoded + "@tollgate>"
    }

    /// A header value that cannot end the header: control characters become spaces, and text
    /// beyond ASCII is sent as RFC 2047 encoded words (UTF-8, base64), at most 75 characters each.
    static func headerText(_ s: String) -> String {
        let flat = singleLine(s)
        guard !flat.utf8.allSatisfy({ $0 < 0x80 }) else { return flat }
        var words: [String] = [], chunk: [UInt8] = []
        for scalar in flat.unicodeScalars {
            let bytes = Array(String(scalar).utf8)
            // 45 bytes → 60 base64 characters + 12 of `=?UTF-8?B?…?=` stays within 75.
            if chunk.count + bytes.count > 45 {
                words.append(encodedWord(chunk))
                chunk = []
            }
            chunk += bytes
        }
        if !chunk.isEmpty { words.append(encodedWord(chunk)) }
        return words.joined(separator: "\r\n ")
    }

    static func encodedWord(_ bytes: [UInt8]) -> String { "=?UTF-8?B?" + Data(bytes).base64EncodedString() + "?=" }

    /// `Mon, 30 Nov 2026 12:00:00 +0000`.
    public static func rfc5322Date(_ time: UnixTime) -> String {
        let days = time.seconds >= 0 ? time.seconds / 86_400 : (time.seconds - 86_399) / 86_400
        let second = time.seconds - days * 86_400
        let (y, m, d) = CivilDate.fromDays(days)
        let weekdays = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]  // 1970-01-01 was a Thursday
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let weekday = weekdays[Int(((days % 7) + 7) % 7)]
        return "\(weekday), \(two(d)) \(months[Int(m) - 1]) \(y) \(two(second / 3600)):\(two(second % 3600 / 60)):\(two(second % 60)) +0000"
    }
}

/// `s` with every control character (CR and LF included) turned into a space: safe inside one
/// header line, SMTP command or log line, whatever a client id or run id held.
public func singleLine(_ s: String) -> String {
    guard s.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { return s }
    return String(String.UnicodeScalarView(s.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? " " : $0 }))
}
