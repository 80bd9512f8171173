import Foundation
import HTTPTypes
import Hummingbird

/// Request headers that shape the mock's reply. They travel in the request because the proxy
/// forwards headers unchanged, so a test can steer the upstream through the proxy under test.
public enum MockHeader {
    /// Reply length in tokens before any cap (default 12).
    public static let completionTokens = "X-Mock-Completion-Tokens"
    /// Report this many prompt tokens as cache hits (at most the prompt).
    public static let cachedTokens = "X-Mock-Cached-Tokens"
    /// OpenAI reasoning tokens; counted inside completion/output tokens, as OpenAI does.
    public static let reasoningTokens = "X-Mock-Reasoning-Tokens"
    /// Answer with this HTTP status and the provider family's error JSON.
    public static let status = "X-Mock-Status"
    /// Sleep before responding.
    public static let latencyMs = "X-Mock-Latency-Ms"
    /// Sleep between streamed events.
    public static let chunkDelayMs = "X-Mock-Chunk-Delay-Ms"
    /// Streams: send this many events, then tear the connection down without finishing.
    public static let dropAfterChunks = "X-Mock-Drop-After-Chunks"
}

/// The knobs of one request, read from its headers.
struct MockKnobs: Sendable {
    static let defaultReplyTokens = 12

    var replyTokens = Self.defaultReplyTokens
    var cachedTokens = 0
    var reasoningTokens = 0
    var failureStatus: HTTPResponse.Status?
    var latency: Duration?
    var chunkDelay: Duration?
    var dropAfterEvents: Int?

    init(headers: HTTPFields) {
        func number(_ name: String) -> Int? {
            guard let field = HTTPField.Name(name), let text = headers[field] else { return nil }
            return Int(text.trimmingCharacters(in: .whitespaces)).map { max(0, $0) }
        }
        if let n = number(MockHeader.completionTokens) { replyTokens = n }
        cachedTokens = number(MockHeader.cachedTokens) ?? 0
        reasoningTokens = number(MockHeader.reasoningTokens) ?? 0
        // Only real error codes count as a fault; "200" means the ordinary reply.
        if let code = number(MockHeader.status), (400...599).contains(code) {
            failureStatus = HTTPResponse.Status(code: code)
        }
        latency = number(MockHeader.latencyMs).map { .milliseconds($0) }
        chunkDelay = number(MockHeader.chunkDelayMs).map { .milliseconds($0) }
        dropAfterEvents = number(MockHeader.dropAfterChunks)
    }
}
