// The pure functions every proxied request runs, measured one by one with their allocations.
// Inputs are the same fixture files the end-to-end bench serves (bench/fixtures/), so a number
// here can be set against the CPU µs per request that `make bench` reports.
import Benchmark
import Foundation
import TollgateCore

let benchmarks: @Sendable () -> Void = {
    // One iteration per sample: the malloc count is per call (harness overhead: see "baseline").
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        warmupIterations: 100,
        scalingFactor: .one,
        maxDuration: .seconds(2),
        maxIterations: 1_000_000)

    let fixtures = Fixtures.load()
    let prices = try! PriceTable.bundled()
    let miniPrice = prices.price(for: "gpt-4o-mini")!
    let haikuPrice = prices.price(for: "claude-haiku-4-5")!
    let estimator = CostEstimator(mode: .strict)

    // What the harness itself costs per sample; subtract it from the other rows.
    Benchmark("baseline (empty body)", configuration: .init(scalingFactor: .kilo)) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(benchmark) }
    }

    // MARK: request → estimate (every paid request, before the reserve round trip)

    Benchmark("ScannedRequest(body:route:) chat 0.9 KB") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try ScannedRequest(body: fixtures.chatRequest, route: .chatCompletions))
        }
    }
    Benchmark("ScannedRequest(body:route:) messages 0.9 KB") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try ScannedRequest(body: fixtures.messagesRequest, route: .messages))
        }
    }
    // The loop breaker's fingerprint, sent with every reserve (canonical JSON into SHA-256).
    let scannedChat = try! ScannedRequest(body: fixtures.chatRequest, route: .chatCompletions)
    let scannedMessages = try! ScannedRequest(body: fixtures.messagesRequest, route: .messages)
    Benchmark("RequestFingerprint chat 0.9 KB") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(RequestFingerprint(route: .chatCompletions, request: scannedChat)) }
    }
    Benchmark("RequestFingerprint messages 0.9 KB") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(RequestFingerprint(route: .messages, request: scannedMessages)) }
    }
    // A 30 MB body of a million messages (issue 12): scanned in place, its mallocs must not
    // grow with the element count (a JSONValue tree made millions of them).
    let hugeChat = Array((#"{"model":"gpt-4o-mini","max_tokens":5,"messages":["#
        + Array(repeating: #"{"role":"user","content":"hi"}"#, count: 1_000_000).joined(separator: ",") + "]}").utf8)
    Benchmark("ScannedRequest + fingerprint, 1M-message 32 MB body", configuration: .init(maxDuration: .seconds(5), maxIterations: 5)) { benchmark in
        for _ in benchmark.scaledIterations {
            let request = try ScannedRequest(body: hugeChat, route: .chatCompletions)
            blackHole(RequestFingerprint(route: .chatCompletions, request: request))
        }
    }
    let scanned = try! ScannedRequest(body: fixtures.chatRequest, route: .chatCompletions)
    // Sub-microsecond calls run 1,000 times per sample, so the clock reads do not dominate.
    let tiny = Benchmark.Configuration(scalingFactor: .kilo)
    Benchmark("CostEstimator.estimate chat", configuration: tiny) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try estimator.estimate(scanned, route: .chatCompletions, price: miniPrice))
        }
    }
    Benchmark("scan + price(for:) + estimate + rewrite chat (request path)") { benchmark in
        for _ in benchmark.scaledIterations {
            let request = try ScannedRequest(body: fixtures.chatRequestStream, route: .chatCompletions)
            let price = prices.price(for: request.model)!
            let estimate = try estimator.estimate(request, route: .chatCompletions, price: price)
            var rewrite = BodyRewrite()
            rewrite.setOutputLimit(estimate.requestedOutputTokens, request: request, route: .chatCompletions)
            rewrite.requestStreamUsage(request)
            blackHole(rewrite.apply(to: request))
        }
    }

    // MARK: response → usage → cost (every settle)

    Benchmark("JSONValue.parse + usage(inResponse:) chat response 0.8 KB") { benchmark in
        for _ in benchmark.scaledIterations {
            let json = try JSONValue.parse(fixtures.chatResponse)
            blackHole(ProxyRoute.chatCompletions.usage(inResponse: json))
        }
    }
    Benchmark("SSEParser.feed chat stream 14 KB in 1 KB chunks (per stream)") { benchmark in
        for _ in benchmark.scaledIterations {
            var parser = SSEParser()
            for chunk in fixtures.chatStreamChunks { blackHole(parser.feed(chunk)) }
        }
    }
    let chatEvents = { var p = SSEParser(); return p.feed(fixtures.chatStream) }()
    Benchmark("StreamUsageTracker.observe chat stream, \(chatEvents.count) events (per stream)") { benchmark in
        for _ in benchmark.scaledIterations {
            var tracker = StreamUsageTracker(route: .chatCompletions, hideInjectedUsage: true)
            for event in chatEvents { blackHole(tracker.observe(event)) }
            blackHole(tracker.usage)
        }
    }
    let messageEvents = { var p = SSEParser(); return p.feed(fixtures.messagesStream) }()
    Benchmark("SSEParser.feed + observe messages stream, \(messageEvents.count) events (per stream)") { benchmark in
        for _ in benchmark.scaledIterations {
            var parser = SSEParser()
            var tracker = StreamUsageTracker(route: .messages, hideInjectedUsage: false)
            for event in parser.feed(fixtures.messagesStream) { blackHole(tracker.observe(event)) }
            blackHole(tracker.usage)
        }
    }

    // MARK: pricing

    let usage = TokenUsage(input: 189, cachedInput: 128, output: 47)
    Benchmark("ModelPrice.cost(of:) ×2 (OpenAI + Anthropic price)", configuration: tiny) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(miniPrice.cost(of: usage))
            blackHole(haikuPrice.cost(of: usage))
        }
    }
    for model in ["gpt-4o-mini", "gpt-4o-mini-2024-07-18", "claude-haiku-4-5-20251001", "not-a-model"] {
        Benchmark("PriceTable.price(for: \(model))", configuration: tiny) { benchmark in
            for _ in benchmark.scaledIterations { blackHole(prices.price(for: model)) }
        }
    }
}

/// The files in bench/fixtures/, found from this source file's place in the repository.
struct Fixtures: Sendable {
    var chatRequest: [UInt8]
    var chatRequestStream: [UInt8]
    var messagesRequest: [UInt8]
    var chatResponse: [UInt8]
    var chatStream: [UInt8]
    var chatStreamChunks: [[UInt8]]
    var messagesStream: [UInt8]

    static func load() -> Fixtures {
        let dir = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("fixtures")
        func bytes(_ name: String) -> [UInt8] {
            guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent(name).path) else {
                fatalError("missing fixture \(name) in \(dir.path)")
            }
            return Array(data)
        }
        let stream = bytes("chat-stream.sse")
        // Curl hands over what one read returned; 1 KB pieces cut events at arbitrary places.
        let chunks = stride(from: 0, to: stream.count, by: 1024).map { Array(stream[$0..<min($0 + 1024, stream.count)]) }
        return Fixtures(
            chatRequest: bytes("chat-request.json"), chatRequestStream: bytes("chat-request-stream.json"),
            messagesRequest: bytes("messages-request.json"), chatResponse: bytes("chat-response.json"),
            chatStream: stream, chatStreamChunks: chunks, messagesStream: bytes("messages-stream.sse"))
    }
}
