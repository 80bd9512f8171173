import Crypto

/// How a webhook receiver knows an alert came from this Tollgate and was not replayed:
/// `X-Tollgate-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>` with
/// `X-Tollgate-Timestamp: <unix seconds>`. Signing the timestamp with the body lets a receiver
/// refuse an old request replayed with its original signature (README, "Alerts").
public enum AlertSignature {
    public static let signatureHeader = "X-Tollgate-Signature"
    public static let timestampHeader = "X-Tollgate-Timestamp"
    public static let alertIDHeader = "X-Tollgate-Alert-Id"
    /// Five minutes: room for clock skew and a slow delivery, short for a replay.
    public static let defaultToleranceSeconds: Int64 = 300

    /// The `X-Tollgate-Signature` value: `sha256=` and 64 lowercase hex digits.
    public static func sign(body: [UInt8], timestamp: UnixTime, secret: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: signedBytes(body, timestamp), using: key(secret))
        return prefix + hex(Array(mac))
    }

    public static func sign(body: String, timestamp: UnixTime, secret: String) -> String {
        sign(body: Array(body.utf8), timestamp: timestamp, secret: secret)
    }

    /// True when `signature` is this body's and timestamp's, and the timestamp is within
    /// `tolerance` seconds of `now` (either side). The comparison takes the same time wherever
    /// the first wrong digit is (swift-crypto's constant-time check), so it leaks nothing.
    public static func verify(body: [UInt8], timestamp: UnixTime, signature: String, secret: String, now: UnixTime,
                              tolerance: Int64 = defaultToleranceSeconds) -> Bool {
        guard abs(now.seconds - timestamp.seconds) <= tolerance, signature.hasPrefix(prefix),
              let mac = unhex(signature.dropFirst(prefix.count)), mac.count == SHA256.byteCount else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: signedBytes(body, timestamp), using: key(secret))
    }

    static let prefix = "sha256="

    static func key(_ secret: String) -> SymmetricKey { SymmetricKey(data: Array(secret.utf8)) }

    static func signedBytes(_ body: [UInt8], _ timestamp: UnixTime) -> [UInt8] {
        Array("\(timestamp.seconds).".utf8) + body
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { out += [digits[Int(b >> 4)], digits[Int(b & 0x0F)]] }
        return String(decoding: out, as: UTF8.self)
    }

    /// Lowercase or uppercase hex; nil for anything else (odd length, other characters).
    static func unhex(_ text: Substring) -> [UInt8]? {
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 2)
        for i in stride(from: 0, to: chars.count, by: 2) {
            guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
        }
        return out
    }
}
