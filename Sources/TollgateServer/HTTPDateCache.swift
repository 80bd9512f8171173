import Foundation
import NIOConcurrencyHelpers

/// The `Date` header's text (RFC 9110, IMF-fixdate), made once per second. Hummingbird keeps one
/// for the routes it answers; the proxy listener's handler (`ProxyAnswer`) needs its own.
final class HTTPDateCache: Sendable {
    private let cached = NIOLockedValueBox<(second: time_t, text: String)>((-1, ""))

    func now() -> String {
        let second = time(nil)
        return cached.withLockedValue { cached in
            if cached.second != second { cached = (second, Self.format(second)) }
            return cached.text
        }
    }

    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    static func format(_ second: time_t) -> String {
        var second = second
        var t = tm()
        gmtime_r(&second, &t)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(days[Int(t.tm_wday)]), \(two(t.tm_mday)) \(months[Int(t.tm_mon)]) \(t.tm_year + 1900) "
            + "\(two(t.tm_hour)):\(two(t.tm_min)):\(two(t.tm_sec)) GMT"
    }
}
