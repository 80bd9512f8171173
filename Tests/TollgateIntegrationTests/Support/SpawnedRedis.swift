import Foundation
import Synchronization

/// A private redis-server for tests that stop, freeze or restart Redis, or that need a password,
/// ACL users or TLS (the shared one must stay up, and open, for the tests running beside them).
final class SpawnedRedis: @unchecked Sendable {
    let port: Int
    /// Its working directory (the RDB file), removed with it.
    let dir: String
    /// Extra `redis-server` arguments, e.g. `["--requirepass", "…"]`; later ones win.
    let arguments: [String]
    /// Serves TLS only (`--tls-port`), with `TestCertificates`' server certificate.
    let tls: Bool
    private var process: ChildProcess?
    /// With TLS the host is `localhost`, the name the test server certificate carries.
    var url: String { tls ? "rediss://localhost:\(port)/0" : "redis://127.0.0.1:\(port)/0" }

    init(_ arguments: [String] = [], tls: Bool = false) throws {
        port = try SpawnedRedis.freePort()
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-redis-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        self.arguments = arguments
        self.tls = tls
        try start()
    }

    /// Starts the server and returns once it accepts connections (it may still be loading its RDB).
    func start(_ more: [String] = []) throws {
        var listen = ["--port", String(port)]
        if tls {
            let c = try TestCertificates.shared()
            listen = ["--port", "0", "--tls-port", String(port), "--tls-cert-file", c.serverCert, "--tls-key-file", c.serverKey,
                      "--tls-ca-cert-file", c.ca, "--tls-auth-clients", "no"]
        }
        process = try Self.launch(["redis-server"] + listen + ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir]
                                  + arguments + more, port: port)
    }

    /// Runs a redis-server (or sentinel) command line and returns once `port` accepts connections.
    static func launch(_ arguments: [String], port: Int) throws -> ChildProcess {
        let p = try ChildProcess(arguments[0], Array(arguments.dropFirst()))
        for _ in 0..<100 where !accepts(port) { usleep(20_000) }
        return p
    }

    /// Kills the server and waits until its port is closed.
    func stop() {
        guard let p = process else { return }
        p.kill()
        for _ in 0..<200 where SpawnedRedis.accepts(port) { usleep(10_000) }
        process = nil
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: dir)
    }

    static func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    /// A loopback port nothing listens on, for a server a test spawns. It is chosen below the
    /// kernel's ephemeral range: a port in that range can be taken as the source port of one of the
    /// suite's own outgoing connections before the spawned server binds it ("Address already in
    /// use"). Ports handed out once are not handed out again in this run.
    static func freePort() throws -> Int {
        let range = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))?
            .split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } ?? 32768
        for _ in 0..<1000 {
            let port = Int.random(in: 10000..<range)
            guard handedOut.withLock({ $0.insert(port).inserted }), canBind(port) else { continue }
            return port
        }
        throw POSIXError(.EADDRINUSE)
    }

    private static let handedOut = Mutex<Set<Int>>([])

    private static func canBind(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}

/// A throw-away CA, a server certificate for `localhost` (and no IP address, so that a connection
/// to 127.0.0.1 must name it in `server_name`), a client certificate, and a second CA that signed
/// neither, made once per test run with the openssl CLI.
struct TestCertificates: Sendable {
    let dir: String
    var ca: String { dir + "/ca.pem" }
    var otherCA: String { dir + "/other-ca.pem" }
    var serverCert: String { dir + "/server.pem" }
    var serverKey: String { dir + "/server.key" }
    var clientCert: String { dir + "/client.pem" }
    var clientKey: String { dir + "/client.key" }

    private static let made: Result<TestCertificates, CertificateFailure> = make()
    static func shared() throws -> TestCertificates { try made.get() }

    private static func make() -> Result<TestCertificates, CertificateFailure> {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-certs-\(UUID().uuidString.prefix(8))").path
        let script = """
            set -e
            cd '\(dir)'
            openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=tollgate-test-ca
            openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.pem -days 2 -subj /CN=some-other-ca
            openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost
            printf 'subjectAltName=DNS:localhost\\n' > server.ext
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext
            openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=tollgate
            openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2
            """
        guard let p = try? ChildProcess("/bin/sh", ["-c", "mkdir -p '\(dir)'\n" + script]) else { return .failure(CertificateFailure(dir: dir)) }
        for _ in 0..<3_000 where p.isRunning { usleep(10_000) }
        guard p.status == 0 else { return .failure(CertificateFailure(dir: dir)) }
        return .success(TestCertificates(dir: dir))
    }

    struct CertificateFailure: Error, CustomStringConvertible {
        let dir: String
        var description: String { "openssl could not make the test certificates in \(dir)" }
    }
}
