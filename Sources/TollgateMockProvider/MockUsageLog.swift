import Foundation
import Synchronization

/// What the mock "bills": one JSON line per reply, written once the reply was sent (or cut), so a
/// chaos run can compare Tollgate's counters with the provider's side of the story. The line
/// carries the request's `X-Mock-Tag` (Tollgate strips its client-id header before forwarding).
public final class MockUsageLog: Sendable {
    /// The log of the server handling the current request (set by `RecordingMiddleware`).
    @TaskLocal static var current: MockUsageLog?

    private let file: Mutex<FileHandle>

    public init(path: String) throws {
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path])
            }
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
        file = Mutex(handle)
    }

    /// `outputTokens` is what was generated: all of it for a finished reply, at most one token per
    /// event sent for a stream that broke off (providers bill what they generated before the cut).
    func record(tag: String?, model: String, completion: MockCompletion, outputTokens: Int, complete: Bool) {
        var line: [String: Any] = [
            "model": model, "input_tokens": completion.promptTokens, "cached_tokens": completion.cachedTokens,
            "cache_write_tokens": completion.cacheWriteTokens + completion.cacheWrite1hTokens,
            "output_tokens": outputTokens, "complete": complete,
        ]
        if let tag { line["tag"] = tag }
        guard var data = try? JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]) else { return }
        data.append(0x0A)
        file.withLock { try? $0.write(contentsOf: data) }
    }
}
