#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// glibc keeps freed memory in its arenas for reuse: after a 30 MB body (and its copies), or
/// after thousands of idle connections closed, the process stayed hundreds of MB above its
/// baseline for as long as it ran. Two measures:
/// - `enable()` fixes glibc's mmap threshold at 1 MiB. By default it rises to the size of the
///   largest block freed (up to 32 MiB), so after one large body every later one lands in an
///   arena that never shrinks; an mmapped block goes back to the kernel on free.
/// - `afterLargeBody()` and `afterConnectionClosed()` ask for `malloc_trim(0)`, which returns the
///   free pages of every arena: after each large body, and after every 1024 closed connections
///   (each held ~10 KB of small blocks). Ordinary requests never pay for it, and the trim runs on
///   a thread of its own, one at a time, never on an event loop (it walks every arena).
///
/// Both are process-wide, so only `tollgate serve` turns them on, not a library user such as the
/// test process: with blocks unmapped on free, Foundation's `Process.run` crashed reading freed memory.
public enum MemoryTrim {
    private static let enabled = Atomic<Bool>(false)
    private static let trimming = Atomic<Bool>(false)
    /// Connections closed since the start, and when the last trim began.
    private static let closed = Atomic<Int>(0)
    private static let closedAtLastTrim = Atomic<Int>(0)
    private static let lateFreeSeconds = Atomic<Int>(0)
    /// Connections closed between two trims.
    static let connectionsPerTrim = 1_024

    #if canImport(Glibc)
    // Swift's Glibc module does not export <malloc.h>; look the functions up (RTLD_DEFAULT).
    private static let trim: (@convention(c) (Int) -> Int32)? = dlsym(nil, "malloc_trim").map {
        unsafeBitCast($0, to: (@convention(c) (Int) -> Int32).self)
    }
    private static let mallopt: (@convention(c) (Int32, Int32) -> Int32)? = dlsym(nil, "mallopt").map {
        unsafeBitCast($0, to: (@convention(c) (Int32, Int32) -> Int32).self)
    }
    /// <malloc.h>'s M_MMAP_THRESHOLD.
    private static let mmapThreshold: Int32 = -3
    #endif

    /// Fixes the mmap threshold and lets the trims run. Idempotent.
    /// - Parameter idleTimeoutSeconds: `server.idle_timeout_seconds`; a second trim follows the
    ///   first by this much (plus one second).
    public static func enable(idleTimeoutSeconds: Int) {
        #if canImport(Glibc)
        lateFreeSeconds.store(idleTimeoutSeconds > 0 ? idleTimeoutSeconds + 1 : 0, ordering: .relaxed)
        _ = mallopt?(mmapThreshold, 1 << 20)
        enabled.store(true, ordering: .releasing)
        #endif
    }

    static func afterLargeBody() { trimSoon() }

    static func afterConnectionClosed() {
        guard enabled.load(ordering: .relaxed) else { return }
        if closed.add(1, ordering: .relaxed).newValue - closedAtLastTrim.load(ordering: .relaxed) >= connectionsPerTrim { trimSoon() }
    }

    /// One trim at a time, on a thread of its own, once connections have stopped closing for a
    /// second (at most 10 s later): a connection's memory is freed a while after its socket
    /// closes, and a trim in the middle of a burst would leave most of it behind. A request
    /// meanwhile is covered by the trim to come.
    private static func trimSoon() {
        #if canImport(Glibc)
        guard enabled.load(ordering: .acquiring), let trim,
              trimming.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else { return }
        Thread {
            var seen = closed.load(ordering: .relaxed)
            for _ in 0..<10 {
                Thread.sleep(forTimeInterval: 1)
                let now = closed.load(ordering: .relaxed)
                if now == seen { break }
                seen = now
            }
            closedAtLastTrim.store(seen, ordering: .relaxed)
            _ = trim(0)
            // Measured: part of a closed connection's memory is freed only when its idle timer
            // would have fired (up to `server.idle_timeout_seconds` later). Trim again then.
            let late = lateFreeSeconds.load(ordering: .relaxed)
            if late > 0 {
                Thread.sleep(forTimeInterval: Double(late))
                _ = trim(0)
            }
            trimming.store(false, ordering: .releasing)
        }.start()
        #endif
    }
}
