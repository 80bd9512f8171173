/// A request to a provider, ready to send.
public struct UpstreamRequest: Sendable {
    public var url: String
    public var method: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Deliver head, body and end together when the transfer completes (a non-streamed answer):
    /// one hand-over to the requesting task instead of one per chunk.
    public var collectBody: Bool
    /// Whole-transfer limit for this request instead of the client's `timeoutSeconds` (an alert
    /// webhook must not hold a sender for the ten minutes a model stream may take).
    public var timeoutMilliseconds: Int?

    public init(url: String, method: String, headers: [(name: String, value: String)], body: [UInt8], collectBody: Bool = false,
                timeoutMilliseconds: Int? = nil) {
        self.url = url
        self.method = method
        self.headers = headers
        self.body = body
        self.collectBody = collectBody
        self.timeoutMilliseconds = timeoutMilliseconds
    }
}

/// Status line and headers of the provider's final response (1xx and redirects skipped).
public struct UpstreamResponseHead: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]

    public init(status: Int, headers: [(name: String, value: String)]) {
        self.status = status
        self.headers = headers
    }

    public func header(_ name: String) -> String? {
        headers.last(where: { $0.name.lowercased() == name.lowercased() })?.value
    }
}

/// What a transfer produces, in order: one head, body chunks as they arrive, then the end.
public enum UpstreamPart: Sendable {
    case head(UpstreamResponseHead)
    case body([UInt8])
    case end
    case failed(UpstreamError)
}

public struct UpstreamError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Nothing reached the provider (DNS, refused, connect timeout): nothing can have been billed.
        case connect
        /// The provider was reached but the transfer broke or timed out mid-way.
        case transfer
        case cancelled
    }
    public var kind: Kind
    public var message: String
    /// Set when Tollgate itself stopped the answer at one of its bounds.
    public var limit: UpstreamLimit?
    /// False only when no byte of the request went out (a transfer cancelled before curl sent
    /// its head): then nothing can have been billed, whatever the kind.
    public var mayHaveReachedProvider: Bool
    public init(kind: Kind, message: String, limit: UpstreamLimit? = nil, mayHaveReachedProvider: Bool = true) {
        self.kind = kind
        self.message = message
        self.limit = limit
        self.mayHaveReachedProvider = kind != .connect && mayHaveReachedProvider
    }
    public var description: String { message }
}

/// The bounds Tollgate puts on one provider answer, so that no answer can hold unbounded memory
/// or time (docs/operations.md, "Limits and back-pressure"). The raw values are the `limit`
/// label of `tollgate_upstream_limit_exceeded_total`.
public enum UpstreamLimit: String, Sendable, CaseIterable {
    /// One server-sent event larger than `upstream.max_sse_event_bytes` (an event that never ends).
    case sseEvent = "sse_event"
    /// Response headers larger than `upstream.max_header_bytes`.
    case header
    /// The transfer took longer than `upstream.timeout_seconds`.
    case duration
    /// An answer held whole (not relayed as a stream) larger than `upstream.max_response_bytes`.
    case responseBody = "response_body"

    /// The config key that sets this bound.
    public var configKey: String {
        switch self {
        case .sseEvent: "upstream.max_sse_event_bytes"
        case .header: "upstream.max_header_bytes"
        case .duration: "upstream.timeout_seconds"
        case .responseBody: "upstream.max_response_bytes"
        }
    }
}
