import Foundation
import Glibc

/// An HTTP/1.1 client that reads its answer at a fixed slow rate through a small receive buffer,
/// like a client on a bad mobile link. It runs on a thread of its own (blocking socket calls must
/// never occupy Swift concurrency's 2-thread pool, which the servers under test need).
enum SlowReader {
    struct Outcome: Sendable {
        var bytesRead = 0
        var firstBytes = ""
        var error: String?
    }

    /// Sends `request` to 127.0.0.1:`port`, reads at most `bytesPerSecond` each second for
    /// `seconds` seconds, then closes the connection (a client that gave up).
    static func run(port: Int, request: String, bytesPerSecond: Int, seconds: Int) async -> Outcome {
        await withCheckedContinuation { done in
            Thread { done.resume(returning: read(port: port, request: request, bytesPerSecond: bytesPerSecond, seconds: seconds)) }.start()
        }
    }

    private static func read(port: Int, request: String, bytesPerSecond: Int, seconds: Int) -> Outcome {
        var outcome = Outcome()
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return Outcome(error: "socket: \(errno)") }
        defer { close(fd) }
        // Small before connect, so the advertised window stays small: the server's writes back up.
        var size: Int32 = 4_096
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        // A server that sends nothing must not hang the test: a read gives up after a second.
        var patience = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &patience, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return Outcome(error: "connect: \(errno)") }
        let bytes = Array(request.utf8)
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return Outcome(error: "send: \(errno)") }
            written += n
        }
        var buffer = [UInt8](repeating: 0, count: bytesPerSecond)
        for _ in 0..<seconds {
            var thisSecond = 0
            let started = Date()
            while thisSecond < bytesPerSecond, Date().timeIntervalSince(started) < 1 {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, bytesPerSecond - thisSecond, 0) }
                if n < 0, errno == EAGAIN || errno == EINTR { break }
                guard n > 0 else { return outcome }
                if outcome.firstBytes.count < 512 { outcome.firstBytes += String(decoding: buffer[0..<n], as: UTF8.self) }
                thisSecond += n
                outcome.bytesRead += n
            }
            let left = 1 - Date().timeIntervalSince(started)
            if left > 0 { Thread.sleep(forTimeInterval: left) }
        }
        return outcome
    }
}
