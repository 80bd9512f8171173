import Crypto

/// A virtual key (`tg-…`) that identifies a client instead of the `X-Client-ID` header. Only its
/// SHA-256 is stored, so a Redis dump reveals no usable key.
public enum VirtualKey {
    public static let prefix = "tg-"

    /// 192 random bits, hex: no brute force can find one, so a plain hash is enough.
    public static func generate() -> (id: String, secret: String) {
        (id: "key_" + randomHex(bytes: 8), secret: prefix + randomHex(bytes: 24))
    }

    public static func hash(_ secret: String) -> String {
        SHA256.hash(data: Array(secret.utf8)).map { $0 < 16 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }

    public static func looksLikeKey(_ text: String) -> Bool {
        text.hasPrefix(prefix) && text.utf8.count == prefix.utf8.count + 48
    }

    static func randomHex(bytes: Int) -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in
            let b = UInt8.random(in: 0...255, using: &g)
            return b < 16 ? "0" + String(b, radix: 16) : String(b, radix: 16)
        }.joined()
    }

    /// The key a request presents: `Authorization: Bearer tg-…` or Anthropic's `x-api-key: tg-…`.
    public static func presented(authorization: String?, apiKey: String?) -> String? {
        if let a = authorization, a.lowercased().hasPrefix("bearer ") { return String(a.dropFirst(7)).trimmingWhitespace() }
        return apiKey?.trimmingWhitespace()
    }
}
