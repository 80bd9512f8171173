import HTTPTypes
import Hummingbird
import Synchronization
import TollgateCore

/// One request as the mock received it, for tests to assert what the proxy forwarded.
public struct RecordedRequest: Sendable {
    public let method: String
    /// Path without the query string, e.g. `/v1/chat/completions`.
    public let path: String
    public let query: String?
    /// Header names lowercased, in arrival order, repeats kept.
    public let headers: [(name: String, value: String)]
    public let body: [UInt8]

    /// First value of a header (name matched case-insensitively).
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name == wanted }?.value
    }

    public func headerValues(_ name: String) -> [String] {
        let wanted = name.lowercased()
        return headers.filter { $0.name == wanted }.map(\.value)
    }

    public var bodyText: String { String(decoding: body, as: UTF8.self) }
    /// The body parsed as JSON, nil when it is not JSON.
    public var json: JSONValue? { try? JSONValue.parse(body) }
}

/// Every request the mock has received, in arrival order. Shared between the server's handlers
/// and the test that reads it, hence the lock.
public final class MockRecorder: Sendable {
    private let recorded = Mutex<[RecordedRequest]>([])
    /// Names of `X-Mock-Hold` gates a test has opened.
    private let released = Mutex<Set<String>>([])

    public init() {}

    public func requests() -> [RecordedRequest] { recorded.withLock { $0 } }
    public var count: Int { recorded.withLock { $0.count } }
    public var last: RecordedRequest? { recorded.withLock { $0.last } }
    public func reset() { recorded.withLock { $0.removeAll() } }

    func record(_ request: RecordedRequest) { recorded.withLock { $0.append(request) } }

    /// Lets every request held with `X-Mock-Hold: name` answer, now and from now on.
    public func release(_ name: String) { _ = released.withLock { $0.insert(name) } }

    /// Waits until `name` is released, or `limit` passed (a failed test must not hang the mock's
    /// shutdown). Polling is plenty for a test double.
    func hold(_ name: String, limit: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + limit
        while !released.withLock({ $0.contains(name) }), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}

/// Records every request, matched route or not, before any handler (or fault knob) answers it.
struct RecordingMiddleware<Context: RequestContext>: RouterMiddleware {
    let recorder: MockRecorder
    let usageLog: MockUsageLog?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var request = request
        // Collecting replaces the streamed body with the buffer, so handlers can still read it.
        let body = try await request.collectBody(upTo: MockProvider.maxBodyBytes)
        recorder.record(RecordedRequest(
            method: request.method.rawValue,
            path: request.uri.path,
            query: request.uri.query,
            headers: request.headers.map { ($0.name.canonicalName, $0.value) },
            body: Array(body.readableBytesView)))
        if let gate = HTTPField.Name(MockHeader.hold).flatMap({ request.headers[$0] }) { try await recorder.hold(gate) }
        return try await MockUsageLog.$current.withValue(usageLog) { try await next(request, context) }
    }
}
