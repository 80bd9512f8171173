/// A client's identity. It becomes part of Redis key names, so it is validated strictly:
/// 1–128 characters of `[A-Za-z0-9._:@-]` (no braces: they would break the cluster hash tag).
public struct ClientID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init?(_ raw: String) {
        guard (1...128).contains(raw.utf8.count), raw.utf8.allSatisfy(Self.isAllowed) else { return nil }
        rawValue = raw
    }

    public var description: String { rawValue }

    static func isAllowed(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"),
             UInt8(ascii: ":"), UInt8(ascii: "@"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }

    public static let rule = "1-128 characters of A-Z a-z 0-9 . _ : @ -"
}

/// One in-flight reservation; unique across replicas (random 128 bits, hex).
public struct ReservationID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public static func random() -> ReservationID {
        var g = SystemRandomNumberGenerator()
        let hi = g.next() as UInt64, lo = g.next() as UInt64
        return ReservationID(rawValue: String(hi, radix: 16) + String(lo, radix: 16))
    }
    public var description: String { rawValue }
}
