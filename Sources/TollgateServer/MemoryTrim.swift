#if canImport(Glibc)
import Glibc
#endif

/// glibc keeps freed memory in its arenas for reuse: after a 30 MB body (and its copies) the
/// process stayed hundreds of MB above its baseline for as long as it ran. `malloc_trim(0)`
/// returns the free pages of every arena to the kernel. It runs only after a large body
/// (`LargeBodyGate`), so ordinary requests never pay for it.
enum MemoryTrim {
    #if canImport(Glibc)
    /// Swift's Glibc module does not export <malloc.h>; look the function up once (RTLD_DEFAULT).
    private static let trim: (@convention(c) (Int) -> Int32)? = dlsym(nil, "malloc_trim").map {
        unsafeBitCast($0, to: (@convention(c) (Int) -> Int32).self)
    }
    #endif

    static func afterLargeBody() {
        #if canImport(Glibc)
        _ = trim?(0)
        #endif
    }
}
