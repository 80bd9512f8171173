import Synchronization

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

/// One in-flight reservation; unique across replicas: a random 64-bit prefix drawn once per
/// process and a counter, in hex (one random draw per process instead of a `getrandom` call per
/// request). Not a secret: it names a request in Redis and the access log.
public struct ReservationID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    private static let processPrefix: String = {
        var generator = SystemRandomNumberGenerator()
        return hex16(generator.next())
    }()
    private static let counter = Atomic<UInt64>(0)

    public static func unique() -> ReservationID {
        let n: UInt64 = counter.add(1, ordering: .relaxed).newValue
        return ReservationID(rawValue: processPrefix + String(n, radix: 16))
    }

    private static func hex16(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        let padding = String(repeating: "0", count: 16 - digits.utf8.count)
        return padding + digits
    }
    public var description: String { rawValue }
}
