import NIOCore
import NIOSSL
import TollgateCore

/// Why a link is down: what its callers are told, and how soon it tries again.
enum RedisOutage: Equatable {
    /// The socket failed, closed or went silent: reconnect with backoff.
    case lost(String)
    /// Redis is loading its dataset after a restart (`-LOADING`) and will serve in moments: retry
    /// soon, without backing off, or every replica keeps refusing long after Redis is back.
    case loading(String)
    /// Redis or its TLS refused the login or setup: a setting must change (the message names it).
    /// Still retried, slowly: a fixed ACL or a rotated password heals without a restart.
    case refused(String)

    var why: String {
        switch self {
        case .lost(let why), .loading(let why), .refused(let why): return why
        }
    }

    /// What a caller whose command was not sent is told.
    var unsent: RedisError {
        if case .refused(let why) = self { return .misconfigured(why) }
        return .unavailable(why)
    }

    /// An error reply to a setup command (AUTH, SELECT, SCRIPT LOAD) or to the startup check,
    /// explained by the setting that fixes it. Redis does not echo AUTH's arguments, and the
    /// password is scrubbed from its words all the same.
    static func reply(to step: String, _ message: String, endpoint: RedisEndpoint) -> RedisOutage {
        let said = endpoint.password?.scrub(message) ?? message
        let user = "the Redis user '\(endpoint.username ?? "default")'"
        if said.hasPrefix("LOADING") { return .loading("Redis is loading its dataset (\(step): \(said))") }
        // Redis 7 also cuts an unauthenticated client off at its first large argument (a script).
        if said.hasPrefix("NOAUTH") || said.contains("unauthenticated") {
            return .refused("Redis requires a password (\(step): \(said)); set redis.password_env or redis.password_file")
        }
        if said.hasPrefix("NOPERM") {
            return .refused("\(user) may not run \(step) (\(said)); grant it the commands and keys Tollgate needs "
                            + "(docs/operations.md, \"Redis: AUTH and TLS\")")
        }
        switch step {
        case "AUTH" where said.contains("without any password configured"):
            return .refused("Redis has no password set but Tollgate sent one (\(said)); remove \(endpoint.password?.source ?? "the password"), or set a password on Redis")
        case "AUTH":
            let fix = endpoint.username != nil ? "redis.username and \(endpoint.password?.source ?? "the password")" : endpoint.password?.source ?? "the password"
            return .refused("Redis rejected the login of \(user) (AUTH: \(said)); check \(fix)")
        case "SELECT":
            return .refused("Redis refused database \(endpoint.database) (SELECT: \(said)); fix the /DB part of redis.url")
        default:
            return .refused("\(step) failed: \(said)")
        }
    }

    /// A socket or TLS error. A failed handshake is a setting to fix; anything else a lost connection.
    static func error(_ error: any Error, endpoint: RedisEndpoint) -> RedisOutage {
        let place = "\(endpoint.host):\(endpoint.port)"
        switch error {
        case NIOSSLError.handshakeFailed(let cause):
            return .refused("the TLS handshake with \(place) failed (\(cause)); check redis.tls.ca_file (the CA that signed Redis's "
                            + "certificate), redis.tls.server_name, and redis.tls.cert_file/key_file if Redis requires client certificates")
        case let extra as NIOSSLExtraError where extra == .failedToValidateHostname:
            return .refused("Redis's TLS certificate at \(place) does not match (\(extra)); set redis.tls.server_name to a name the certificate carries")
        // TLS 1.3 ends the handshake before Redis checks the client's certificate: Redis's
        // refusal (no certificate, or one its CA did not sign) arrives as an alert on the first read.
        case let boring as BoringSSLError where "\(boring)".contains("CERTIFICATE"):
            return .refused("Redis's TLS at \(place) refused Tollgate's client certificate (\(boring)); set redis.tls.cert_file and "
                            + "redis.tls.key_file to a certificate signed by the CA Redis trusts (its tls-ca-cert-file)")
        case let extra as NIOSSLExtraError:
            return .refused("TLS to \(place): \(extra); check redis.tls.server_name")
        default:
            return .lost(endpoint.password?.scrub("\(error)") ?? "\(error)")
        }
    }
}
