import Foundation
import Metrics
import ServiceLifecycle
import Synchronization

/// The access log's writer. Request handlers append whole lines to a bounded buffer and return;
/// one thread of its own writes the buffer to a file descriptor (stdout) every 100 ms, like
/// nginx's `access_log buffer= flush=`: one write per many requests, and no handler ever waits
/// on a slow stdout, so no event loop does either. Past `maxBufferedBytes` (a stdout that stopped
/// draining) lines are dropped and counted in `tollgate_access_log_dropped_lines_total` instead
/// of growing memory.
///
/// A swift-service-lifecycle `Service`: `serve` lists it before the HTTP servers, so at shutdown
/// the servers drain first (their last requests still log), then this writes what is left and
/// its thread ends.
public final class AccessLogWriter: Service, Sendable {
    public static let defaultMaxBufferedBytes = 8 << 20
    static let flushInterval: useconds_t = 100_000
    static let droppedLines = Counter(label: "tollgate_access_log_dropped_lines_total")

    private let fd: Int32
    private let maxBufferedBytes: Int
    private let pending = Mutex<[UInt8]>([])
    private let stopping = Atomic<Bool>(false)

    /// - Parameter fd: where lines go (1, stdout, in production); the writer does not close it.
    public init(fd: Int32 = 1, maxBufferedBytes: Int = AccessLogWriter.defaultMaxBufferedBytes) {
        self.fd = fd
        self.maxBufferedBytes = maxBufferedBytes
    }

    /// Appends one line (a newline is added). Never blocks on I/O.
    public func writeLine(_ line: String) {
        let kept = pending.withLock { buffer -> Bool in
            guard buffer.count + line.utf8.count + 1 <= maxBufferedBytes else { return false }
            buffer.append(contentsOf: line.utf8)
            buffer.append(0x0A)
            return true
        }
        if !kept { Self.droppedLines.increment() }
    }

    public func run() async throws {
        async let flushedAll: Void = withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let thread = Thread { [self] in
                Thread.current.name = "tollgate-log" // from inside: see UpstreamClient
                while !stopping.load(ordering: .acquiring) {
                    usleep(Self.flushInterval)
                    flush()
                }
                flush()  // what the last requests logged while the servers drained
                done.resume()
            }
            thread.start()
        }
        // Returns when graceful shutdown reaches this service (or the group is cancelled).
        try? await gracefulShutdown()
        stopping.store(true, ordering: .releasing)
        await flushedAll
    }

    /// Only the writer thread calls this, so lines keep their order.
    private func flush() {
        let bytes = pending.withLock { buffer in
            defer { buffer.removeAll(keepingCapacity: buffer.capacity <= 1 << 20) }
            return buffer
        }
        bytes.withUnsafeBufferPointer { all in
            var offset = 0
            while offset < all.count {
                let n = Glibc.write(fd, all.baseAddress! + offset, all.count - offset)
                if n < 0, errno == EINTR { continue }
                guard n > 0 else { return }  // stdout is gone: nothing useful left to do with the lines
                offset += n
            }
        }
    }
}
