/// The fuzz targets: each a plain function over arbitrary bytes that returns normally, throws
/// `InvariantViolation` when an invariant breaks, and crashes only when the code under test does.
/// fuzz/ (a package of its own, built with `-sanitize=fuzzer`) calls `run` from libFuzzer's
/// entry point; TollgateCoreTests calls `check` over the seed corpus in fuzz/corpus/<name>/.
public enum FuzzTarget: String, CaseIterable, Sendable {
    case requestEstimate = "request-estimate"
    case sseStream = "sse-stream"
    case redisReply = "redis-reply"
    case config = "config"

    public func check(_ bytes: [UInt8]) throws(InvariantViolation) {
        switch self {
        case .requestEstimate: try RequestEstimateCheck.check(bytes)
        case .sseStream: try SSEStreamCheck.check(bytes)
        case .redisReply: try RedisReplyCheck.check(bytes)
        case .config: try ConfigCheck.check(bytes)
        }
    }

    /// What a libFuzzer entry point calls: a broken invariant becomes a crash, which is how
    /// libFuzzer learns that this input is a finding (it then saves it as crash-<sha1>).
    public func run(_ data: UnsafePointer<UInt8>?, _ size: Int) {
        let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
        do { try check(bytes) } catch { fatalError("\(rawValue): \(error)") }
    }
}

/// An invariant a fuzz target found broken (the code did not crash, but answered wrongly).
public struct InvariantViolation: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Fails with `message` unless `condition` holds.
func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws(InvariantViolation) {
    if !condition { throw InvariantViolation(message()) }
}

/// A cheap deterministic hash of the input, for choices the fuzzer should explore through the
/// bytes themselves (which model to price at, where to split a stream) so a finding replays.
func fnv1a(_ bytes: [UInt8]) -> UInt64 {
    bytes.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
}
