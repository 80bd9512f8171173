import Foundation
import Testing
@testable import TollgateCore

@Suite("AlertEmail: the RFC 5322 message of an e-mail alert")
struct AlertEmailTests {
    static let alert = BudgetAlert(client: ClientID("team:a@b.c")!, period: .daily, window: "2026-11-30", thresholdPercent: 80,
                                   limit: NanoUSD(10 * NanoUSD.perUSD), spent: NanoUSD(8 * NanoUSD.perUSD), cause: .spent,
                                   firedAt: UnixTime(seconds: 1_796_040_000))

    @Test("headers, a blank line, then the details and the JSON, every line ending in CRLF")
    func message() throws {
        // 2026-11-30T12:00:00Z, a Monday.
        let text = AlertEmail(from: "tollgate@example.com", to: ["ops@example.com", "cfo@example.com"])
            .message(for: Self.alert, date: UnixTime(seconds: 1_796_040_000))
        let parts = text.components(separatedBy: "\r\n\r\n")
        let headers = parts[0].components(separatedBy: "\r\n")
        #expect(headers.contains("Date: Mon, 30 Nov 2026 12:00:00 +0000"))
        #expect(headers.contains("From: tollgate@example.com"))
        #expect(headers.contains("To: ops@example.com, cfo@example.com"))
        #expect(headers.contains("Subject: " + Self.alert.summary))
        #expect(headers.contains("Message-ID: <alert.team=3Aa=40b=2Ec|daily|2026-11-30|80@tollgate>"))
        #expect(headers.contains("X-Tollgate-Alert-Id: team:a@b.c|daily|2026-11-30|80"))
        #expect(headers.contains("Content-Type: text/plain; charset=utf-8"))
        let body = parts.dropFirst().joined(separator: "\r\n\r\n")
        #expect(body.contains("Threshold: 80%"))
        #expect(body.contains("\r\n" + Self.alert.json + "\r\n"))
        #expect(!text.replacingOccurrences(of: "\r\n", with: "").contains("\n"))
        #expect(text.hasSuffix("\r\n"))
    }

    @Test("dates: the epoch was a Thursday; single digits are padded")
    func dates() {
        #expect(AlertEmail.rfc5322Date(UnixTime(seconds: 0)) == "Thu, 01 Jan 1970 00:00:00 +0000")
        #expect(AlertEmail.rfc5322Date(UnixTime(seconds: 951_782_405)) == "Tue, 29 Feb 2000 00:00:05 +0000")
    }

    @Test("a header value cannot be ended early: line breaks become spaces; non-ASCII is RFC 2047 encoded")
    func headerText() throws {
        #expect(AlertEmail.headerText("a\r\nBcc: x@y.z") == "a  Bcc: x@y.z")
        let encoded = AlertEmail.headerText("Budget für Jürgen " + String(repeating: "é", count: 40))
        let words = encoded.components(separatedBy: "\r\n ")
        #expect(words.count > 1)
        var decoded = Data()
        for word in words {
            #expect(word.hasPrefix("=?UTF-8?B?") && word.hasSuffix("?="))
            #expect(word.count <= 75)
            decoded += try #require(Data(base64Encoded: String(word.dropFirst(10).dropLast(2))))
        }
        #expect(String(decoding: decoded, as: UTF8.self) == "Budget für Jürgen " + String(repeating: "é", count: 40))
    }
}
