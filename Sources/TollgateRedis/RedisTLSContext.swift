import Foundation
import NIOCore
import NIOSSL
import TollgateCore

/// TLS to Redis (`rediss://`). TLS sits below the Redis handler in each link's pipeline: hiredis
/// only frames bytes, so it never knows. The files are read once, when the connection is
/// created, into one `NIOSSLContext` that every link's handshake shares.
struct RedisTLSContext: Sendable {
    let context: NIOSSLContext
    /// Sent as SNI and matched against the certificate's names. Nil for an IP address, which SNI
    /// cannot carry: NIOSSL then matches the certificate's IP entries against the peer address.
    let serverHostname: String?

    init(_ tls: RedisTLS, host: String) throws(RedisError) {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let path = tls.caFile {
            let roots = try Self.load("redis.tls.ca_file", path) { try NIOSSLCertificate.fromPEMFile($0) }
            guard !roots.isEmpty else { throw .misconfigured("redis.tls.ca_file: \(path) holds no PEM certificate") }
            configuration.trustRoots = .certificates(roots)
        }
        if let certFile = tls.certFile, let keyFile = tls.keyFile {
            let chain = try Self.load("redis.tls.cert_file", certFile) { try NIOSSLCertificate.fromPEMFile($0) }
            configuration.certificateChain = chain.map { .certificate($0) }
            configuration.privateKey = .privateKey(try Self.load("redis.tls.key_file", keyFile) { try NIOSSLPrivateKey(file: $0, format: .pem) })
        }
        if tls.insecureSkipVerify { configuration.certificateVerification = .none }
        do { context = try NIOSSLContext(configuration: configuration) } catch {
            throw .misconfigured("the TLS settings (redis.tls.*) were refused: \(error)")
        }
        let name = tls.serverName ?? host
        serverHostname = (try? SocketAddress(ipAddress: name, port: 0)) == nil ? name : nil
    }

    func handler() throws -> NIOSSLClientHandler {
        try NIOSSLClientHandler(context: context, serverHostname: serverHostname)
    }

    /// NIOSSL's own errors name neither the file nor the setting.
    private static func load<T>(_ setting: String, _ path: String, _ read: (String) throws -> T) throws(RedisError) -> T {
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw .misconfigured("\(setting): cannot read \(path); point it at a readable PEM file")
        }
        do { return try read(path) } catch {
            throw .misconfigured("\(setting): \(path) is not a usable PEM file (\(error))")
        }
    }
}
