#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// glibc keeps freed memory in its arenas for reuse: after a 30 MB body (and its copies) the
/// process stayed hundreds of MB above its baseline for as long as it ran. Two measures:
/// - `useMmapForLargeBlocks()` fixes glibc's mmap threshold at 1 MiB. By default it rises to
///   the size of the largest block freed (up to 32 MiB), so after one large body every later
///   one lands in an arena that never shrinks; an mmapped block goes back to the kernel on free.
/// - `afterLargeBody()` runs `malloc_trim(0)`, which returns the free pages of every arena
///   (what a large request's smaller allocations left). Only after a large body, so ordinary
///   requests never pay for it.
///
/// Both are process-wide, so only `tollgate serve` turns them on (`enable()`), not a library
/// user such as the test process: with blocks unmapped on free, Foundation's `Process.run`
/// (which the tests call) crashed reading freed memory.
public enum MemoryTrim {
    private static let enabled = Atomic<Bool>(false)

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

    /// Fixes the mmap threshold and lets `afterLargeBody` trim. Idempotent.
    public static func enable() {
        #if canImport(Glibc)
        _ = mallopt?(mmapThreshold, 1 << 20)
        enabled.store(true, ordering: .releasing)
        #endif
    }

    static func afterLargeBody() {
        #if canImport(Glibc)
        if enabled.load(ordering: .acquiring) { _ = trim?(0) }
        #endif
    }
}
