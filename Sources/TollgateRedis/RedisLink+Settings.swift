import Logging
import NIOCore
import TollgateCore

/// What a link is told once, when the connection is created.
extension RedisLink {
    struct Settings {
        let endpoint: RedisEndpoint
        let transport: Transport
        let timeout: TimeAmount
        /// Loaded on every (re)connect, so a restarted Redis (empty script cache) does not send
        /// every caller into NOSCRIPT at once.
        let scripts: [RedisScript]
        let logger: Logger
        /// Appends a command in RESP; false when it cannot be encoded. A seam for tests.
        var encode: @Sendable (_ args: [String], _ buffer: inout ByteBuffer) -> Bool = RedisWire.write

        /// Sent first on every (re)connect, before the scripts are loaded: the login, then the database.
        var handshake: [(step: String, args: [String])] {
            var steps: [(step: String, args: [String])] = []
            if let password = endpoint.password { steps.append(("AUTH", ["AUTH"] + (endpoint.username.map { [$0] } ?? []) + [password.value])) }
            if endpoint.database != 0 { steps.append(("SELECT", ["SELECT", String(endpoint.database)])) }
            return steps
        }
    }

    enum Transport: Sendable {
        case plain
        case tls(RedisTLSContext)
        /// The TLS files could not be loaded: every connect fails with this, naming the setting.
        case unusable(String)
    }
}
