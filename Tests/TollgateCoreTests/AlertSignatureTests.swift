import Testing
@testable import TollgateCore

private typealias T = AlertSignatureTests

@Suite("AlertSignature: HMAC-SHA256 over timestamp and body")
struct AlertSignatureTests {
    static let secret = "whsec_test_0123456789abcdef"
    static let body = #"{"type":"budget.threshold","id":"alice|daily|2026-11-30|80","client":"alice","threshold_percent":80}"#
    static let timestamp = UnixTime(seconds: 1_764_504_000)
    /// Computed outside Tollgate:
    /// printf '%s' "1764504000.$BODY" | openssl dgst -sha256 -hmac whsec_test_0123456789abcdef
    /// (and the same with Python's hmac.new(secret, b"1764504000." + body, hashlib.sha256)).
    static let expected = "sha256=1fe3379d54da98ed2feea9a4f044314a8781fdc7d8863fad16518914eaee194a"

    @Test("the signature is sha256= and the lowercase hex HMAC of \"<timestamp>.<body>\", as openssl computes it")
    func knownVector() {
        #expect(AlertSignature.sign(body: Self.body, timestamp: Self.timestamp, secret: Self.secret) == Self.expected)
        #expect(AlertSignature.sign(body: Array(Self.body.utf8), timestamp: Self.timestamp, secret: Self.secret) == Self.expected)
    }

    @Test("verify accepts the signature within the tolerance on either side, in any hex case")
    func verifyAccepts() {
        let body = Array(Self.body.utf8)
        for now in [Self.timestamp.seconds, Self.timestamp.seconds + 300, Self.timestamp.seconds - 300] {
            #expect(AlertSignature.verify(body: body, timestamp: Self.timestamp, signature: Self.expected, secret: Self.secret,
                                          now: UnixTime(seconds: now)))
        }
        #expect(AlertSignature.verify(body: body, timestamp: Self.timestamp, signature: Self.expected.uppercased().replacingOccurrences(of: "SHA256=", with: "sha256="),
                                      secret: Self.secret, now: Self.timestamp))
    }

    /// One request as a receiver sees it, with one thing changed from the signed original.
    struct Received: Sendable, CustomTestStringConvertible {
        var what: String
        var body = T.body
        var timestamp = T.timestamp.seconds
        var signature = T.expected
        var secret = T.secret
        var now = T.timestamp.seconds
        var testDescription: String { what }
    }

    @Test("verify refuses a changed body, timestamp, secret or signature, and an old or future timestamp", arguments: [
        Received(what: "body with a trailing space", body: T.body + " "),
        Received(what: "timestamp one second later", timestamp: T.timestamp.seconds + 1),
        Received(what: "another secret", secret: T.secret + "x"),
        Received(what: "last digit changed", signature: String(T.expected.dropLast()) + "b"),
        Received(what: "truncated", signature: String(T.expected.dropLast(2))),
        Received(what: "another scheme", signature: "sha1=" + T.expected.dropFirst(7)),
        Received(what: "not hex", signature: "sha256=zz" + T.expected.dropFirst(9)),
        Received(what: "301 s old", now: T.timestamp.seconds + 301),
        Received(what: "301 s in the future", now: T.timestamp.seconds - 301),
    ])
    func verifyRefuses(_ r: Received) {
        #expect(!AlertSignature.verify(body: Array(r.body.utf8), timestamp: UnixTime(seconds: r.timestamp), signature: r.signature,
                                       secret: r.secret, now: UnixTime(seconds: r.now)))
    }

    @Test("a narrower tolerance is honoured")
    func tolerance() {
        let body = Array(Self.body.utf8)
        #expect(!AlertSignature.verify(body: body, timestamp: Self.timestamp, signature: Self.expected, secret: Self.secret,
                                       now: UnixTime(seconds: Self.timestamp.seconds + 61), tolerance: 60))
    }
}
