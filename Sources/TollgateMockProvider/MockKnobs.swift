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
    /// Hold the reply until the test calls `recorder.release(name)` with this header's value (at
    /// most 60 s): a window that no machine load can close, to read Redis while a request is in flight.
    public static let hold = "X-Mock-Hold"
    /// Sleep before responding.
    public static let latencyMs = "X-Mock-Latency-Ms"
    /// Sleep between streamed events.
    public static let chunkDelayMs = "X-Mock-Chunk-Delay-Ms"
    /// Streams: send this many events, then tear the connection down without finishing.
    public static let dropAfterChunks = "X-Mock-Drop-After-Chunks"
    /// Non-streamed replies: send the head and this many body bytes, then tear the connection down.
    public static let dropAfterBytes = "X-Mock-Drop-After-Bytes"
    /// Answer 200 with `"usage": null` (a provider that bills later, or a broken one).
    public static let omitUsage = "X-Mock-Omit-Usage"
    /// The tier the reply says it was served at (OpenAI `service_tier`, Anthropic `usage.service_tier`).
    public static let serviceTier = "X-Mock-Service-Tier"
    /// Anthropic: prompt tokens reported as 5-minute / 1-hour cache writes.
    public static let cacheWriteTokens = "X-Mock-Cache-Write-Tokens"
    public static let cacheWrite1hTokens = "X-Mock-Cache-Write-1h-Tokens"
    /// Provider-run tool calls the reply reports (Anthropic `server_tool_use.web_search_requests`,
    /// OpenAI Responses `web_search_call` output items).
    public static let webSearchCalls = "X-Mock-Web-Search-Calls"
    /// Copied into the usage log (`--usage-log`), e.g. the client a chaos run sent the request for.
    public static let tag = "X-Mock-Tag"
    /// Chat streams: content events until this many bytes have been written, generated as they
    /// are sent (a 50 MB stream costs the mock no memory), then the usual end. For back-pressure tests.
    public static let streamBytes = "X-Mock-Stream-Bytes"
    /// With `X-Mock-Stream-Bytes`: the size of each content event (default 4096); larger than the
    /// stream, it is one event that never ends.
    public static let eventBytes = "X-Mock-Event-Bytes"
    /// Add response headers of about this many bytes in all (1000-byte `x-mock-padding-N` headers).
    public static let headerBytes = "X-Mock-Header-Bytes"
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
    var dropAfterBytes: Int?
    var omitUsage = false
    var serviceTier: String?
    var cacheWriteTokens = 0
    var cacheWrite1hTokens = 0
    var webSearchCalls = 0
    var tag: String?
    var streamBytes: Int?
    var eventBytes = 4_096
    var headerBytes = 0

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
        dropAfterBytes = number(MockHeader.dropAfterBytes)
        omitUsage = (number(MockHeader.omitUsage) ?? 0) > 0
        serviceTier = HTTPField.Name(MockHeader.serviceTier).flatMap { headers[$0] }
        cacheWriteTokens = number(MockHeader.cacheWriteTokens) ?? 0
        cacheWrite1hTokens = number(MockHeader.cacheWrite1hTokens) ?? 0
        webSearchCalls = number(MockHeader.webSearchCalls) ?? 0
        tag = HTTPField.Name(MockHeader.tag).flatMap { headers[$0] }
        streamBytes = number(MockHeader.streamBytes)
        eventBytes = max(64, number(MockHeader.eventBytes) ?? eventBytes)
        headerBytes = number(MockHeader.headerBytes) ?? 0
    }
}
