import TollgateCore

/// Target `sse-stream`: the first byte picks the route (and whether Tollgate injected
/// `include_usage`), the rest is an upstream SSE stream. Invariants: the same bytes split at any
/// points (one chunk, chunks the input picks, a cut after every line break) give the same events and the
/// same leftover; the usage tracker over them never crashes, never grows an event, and what it
/// reports prices to a non-negative cost.
enum SSEStreamCheck {
    static func check(_ bytes: [UInt8]) throws(InvariantViolation) {
        guard let selector = bytes.first else { return }
        let route = ProxyRoute.allCases[Int(selector) % ProxyRoute.allCases.count]
        let hideInjectedUsage = selector & 0x80 != 0
        let stream = Array(bytes.dropFirst())

        let whole = parse(stream, chunkSizes: [stream.count])
        var random = SplitMix64(seed: fnv1a(bytes))
        var sizes: [Int] = []
        var left = stream.count
        while left > 0 {
            let n = min(left, 1 + Int(random.next() % 64))
            sizes.append(n)
            left -= n
        }
        // A cut after every CR and LF puts each terminator ("\n\n", "\r\n\r\n") across chunk
        // boundaries, the case the parser's rescan exists for. (One byte at a time would too,
        // but costs a feed per byte: too slow to fuzz.)
        var lineCuts: [Int] = []
        var start = 0
        for (i, byte) in stream.enumerated() where byte == 0x0A || byte == 0x0D {
            lineCuts.append(i + 1 - start)
            start = i + 1
        }
        if start < stream.count { lineCuts.append(stream.count - start) }
        let splittings = [("random chunks", parse(stream, chunkSizes: sizes)),
                          ("cuts after each CR and LF", parse(stream, chunkSizes: lineCuts))]
        for (name, split) in splittings {
            try expect(split.events.count == whole.events.count, "\(name): \(split.events.count) events, whole: \(whole.events.count)")
            for (a, b) in zip(split.events, whole.events) {
                try expect(a.raw == b.raw && a.name == b.name && a.data == b.data, "\(name): event \(a) differs from \(b)")
            }
            try expect(split.leftover == whole.leftover, "\(name): leftover \(split.leftover) differs from \(whole.leftover)")
        }
        try expect(whole.events.reduce(0) { $0 + $1.raw.count } + whole.leftover.count == stream.count,
                   "events and leftover do not add up to the stream's \(stream.count) bytes")
        try track(whole.events, route: route, hideInjectedUsage: hideInjectedUsage)
    }

    static func parse(_ stream: [UInt8], chunkSizes: [Int]) -> (events: [SSEEvent], leftover: [UInt8]) {
        var parser = SSEParser()
        var events: [SSEEvent] = []
        var offset = 0
        for size in chunkSizes {
            events += parser.feed(stream[offset..<(offset + size)])
            offset += size
        }
        return (events, parser.buffered)
    }

    static func track(_ events: [SSEEvent], route: ProxyRoute, hideInjectedUsage: Bool) throws(InvariantViolation) {
        var tracker = StreamUsageTracker(route: route, hideInjectedUsage: hideInjectedUsage)
        for event in events {
            _ = StreamUsageTracker.isTerminal(event, route: route)
            if let passed = tracker.observe(event) {
                try expect(passed.count <= event.raw.count, "\(route): the tracker grew an event to \(passed.count) bytes")
            }
        }
        try expect(tracker.streamedOutputBytes >= 0 && tracker.streamedOutputEvents >= 0, "\(route): negative streamed counts")
        // What settlement does with it: price the reported usage, or bound a cut stream's.
        let price = RequestEstimateCheck.table.models[RequestEstimateCheck.models[events.count % RequestEstimateCheck.models.count]]!
        let estimate = CostEstimate(inputTokenBound: 1_000, fixedCost: NanoUSD(1), perOutputToken: NanoUSD(1),
                                    requestedOutputTokens: 100, minimumOutputTokens: 1)
        for usage in [tracker.usage, tracker.finalUsage, tracker.cutStreamBound(for: estimate)].compactMap({ $0 }) {
            let cost = price.cost(of: usage)
            try expect(cost.value >= 0, "\(route): \(usage) prices to a negative \(cost.value)")
        }
    }
}

/// SplitMix64: a seeded generator, so the chunking an input picks is the same on every replay
/// (TollgateCoreTests' seeded chunkings use it too).
public struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
