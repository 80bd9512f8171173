import Hummingbird
import Logging
import NIOCore
import NIOPosix
import Synchronization
import TollgateCore
import TollgateRedis
import TollgateUpstream

/// Passes an SSE stream to the client as it arrives (never buffering the whole response),
/// follows the usage it reports, and settles once when it ends: with the provider's usage when it
/// arrived, otherwise with a provable bound (`ChargeRule`).
///
/// A class: the response body's closure holds it for the stream's life, and `run`'s frame (which
/// lives as long) then holds a reference, not a 700-byte copy.
final class StreamRelay: Sendable {
    let route: ProxyRoute
    let bill: Bill
    let estimate: CostEstimate
    let settlement: Settlement
    let transfer: UpstreamTransfer
    let hideInjectedUsage: Bool
    let observability: Observability
    let record: RequestRecord
    let watch: ConnectionWatch?
    /// `upstream.max_sse_event_bytes`: a longer event cuts the stream (`UpstreamLimit.sseEvent`).
    let maxEventBytes: Int
    /// How long a stream whose client left is still read before it is cut
    /// (`upstream.drain_after_hangup_ms`). What the provider had sent by then (buffered for a
    /// slow client, in the sockets, or arriving) is counted, and a stream that ends meanwhile is
    /// charged its reported usage; cutting at once would leave that backlog uncounted, and the
    /// cut-stream bound below what the provider bills.
    let drain: TimeAmount
    /// Set once the client has left: the stream is then read, not relayed, for `drain`.
    private let clientHasLeft = Atomic<Bool>(false)

    init(route: ProxyRoute, bill: Bill, estimate: CostEstimate, settlement: Settlement, transfer: UpstreamTransfer,
         hideInjectedUsage: Bool, observability: Observability, record: RequestRecord, watch: ConnectionWatch?, maxEventBytes: Int,
         drain: TimeAmount) {
        self.route = route
        self.bill = bill
        self.estimate = estimate
        self.settlement = settlement
        self.transfer = transfer
        self.hideInjectedUsage = hideInjectedUsage
        self.observability = observability
        self.record = record
        self.watch = watch
        self.maxEventBytes = maxEventBytes
        self.drain = drain
    }

    func run(_ writer: inout any ResponseBodyWriter) async throws {
        started()
        defer { ended() }
        // This frame lives as long as the stream, in the connection task's allocator, which keeps
        // its high-water mark until the connection closes: so it holds only what crosses an await,
        // the parsing state sits in one heap object, and each part is taken by a synchronous step
        // that is never inlined (issue 13: memory per open stream).
        let events = EventFilter(route: route, hideInjectedUsage: hideInjectedUsage, maxEventBytes: maxEventBytes)
        var ending = Ending.cut
        var parts = transfer.parts.makeAsyncIterator()
        streaming: while let part = await parts.next() {
            switch take(part, events) {
            case .next: break
            case .write(let batch):
                // Every event that arrived in this chunk goes out in one write: one flush (one
                // syscall) per chunk from the provider, not one per event, and no added delay.
                guard !clientGone else { break }
                do {
                    try await writer.write(batch)
                } catch {
                    clientLeft()
                }
            case .end(let end):
                ending = end
                if end != .completed { break streaming }
            }
            // The events before an oversized one have gone out; the stream is cut here.
            if events.parser.eventTooLarge {
                cutAtEventLimit()
                break streaming
            }
        }
        try await finish(ending, events, &writer)
    }

    private var clientGone: Bool { clientHasLeft.load(ordering: .relaxed) }

    /// The client's connection closed (`ConnectionWatch`) or a write to it failed: the stream is
    /// read on for `drain`, then cut, unless it ends first.
    func clientLeft() {
        guard !clientHasLeft.exchange(true, ordering: .relaxed) else { return }
        guard let loop = MultiThreadedEventLoopGroup.currentEventLoop else { return transfer.cancel() }
        transfer.cancel(after: drain, on: loop)
    }

    private enum Step {
        case next
        case write(ByteBuffer)
        case end(Ending)
    }

    /// What one part of the upstream answer means for the client.
    @inline(never)
    private func take(_ part: UpstreamPart, _ events: EventFilter) -> Step {
        switch part {
        case .head: return .next
        case .body(let chunk): return events.feed(chunk).map(Step.write) ?? .next
        case .end: return .end(.completed)
        // The client's connection closed (see ConnectionWatch), or the transfer failed.
        case .failed(let e): return .end(e.kind == .cancelled ? .cancelled : .cut)
        }
    }

    @inline(never)
    private func started() { Observability.streamsInFlight.increment() }

    @inline(never)
    private func ended() {
        Observability.streamsInFlight.decrement()
        watch?.unwatch()
    }

    /// An event over `upstream.max_sse_event_bytes`: cut like a broken stream, and settled by the
    /// cut-stream rule. Not inlined, so its logging temporaries take no room in `run`'s frame.
    @inline(never)
    private func cutAtEventLimit() {
        UpstreamMetrics.exceeded(.sseEvent)
        settlement.logger.warning("upstream stream cut at a limit", metadata: [
            "limit": "\(UpstreamLimit.sseEvent.rawValue)", "max_bytes": "\(maxEventBytes)"])
        transfer.cancel()
    }

    /// How the upstream stream ended (whether the client was still there is `clientGone`).
    private enum Ending { case completed, cut, cancelled }

    /// Settles, logs, and only then sends the event that tells the client its stream is complete:
    /// a client that saw the end of its stream has been charged, even if this replica dies next.
    /// Never inlined: an async function's frame has room for everything its inlined callees keep
    /// across an await, and `run`'s frame lives as long as the stream.
    @inline(never)
    private func finish(_ end: Ending, _ events: EventFilter, _ writer: inout any ResponseBodyWriter) async throws {
        let (cost, finished) = charge(end, events)
        let settleStarted = ContinuousClock.now
        await settlement.settle(cost)
        log(finished, settleDuration: ContinuousClock.now - settleStarted)
        if clientGone { throw CancellationError() }
        let rest = events.terminal + events.parser.buffered
        if !rest.isEmpty { try await writer.write(ByteBuffer(bytes: rest)) }
        try await writer.finish(nil)
    }

    /// What the stream costs and its access-log record. A synchronous step, so the record's
    /// temporaries are not slots of `finish`'s frame (a frame that comes from the connection
    /// task's allocator, which keeps its high-water mark while the connection lives).
    @inline(never)
    private func charge(_ end: Ending, _ events: EventFilter) -> (NanoUSD, RequestRecord) {
        let completed = end == .completed
        let ending: UpstreamEnding
        if let usage = events.tracker.finalUsage {
            ending = .answered(status: 200, usage: usage)  // even if the connection broke right after
        } else if completed {
            ending = .answered(status: 200, usage: nil)    // a stream that never reported its usage
        } else {
            ending = .cut(bound: events.tracker.cutStreamBound(for: estimate))
        }
        let charge = bill.charge(ending)
        var finished = record
        finished.upstreamFinished = .now
        if case .answered(_, let usage?) = ending { finished.usage = usage }
        finished.cost = charge.cost
        finished.charged = charge.basis
        finished.outcome = clientGone ? .clientGone : completed ? .forwarded : end == .cancelled || Task.isCancelled ? .clientGone : .upstreamError
        return (charge.cost, finished)
    }

    @inline(never)
    private func log(_ finished: RequestRecord, settleDuration: Duration) {
        var finished = finished
        finished.settleDuration = settleDuration
        observability.finish(finished)
    }
}

/// The events of one stream: parsed, followed for usage, and filtered for the client. The event
/// that says the stream is complete is held back in `terminal` until the settle is done.
private final class EventFilter {
    let route: ProxyRoute
    var parser: SSEParser
    var tracker: StreamUsageTracker
    private(set) var terminal: [UInt8] = []

    init(route: ProxyRoute, hideInjectedUsage: Bool, maxEventBytes: Int) {
        self.route = route
        parser = SSEParser(maxEventBytes: maxEventBytes)
        tracker = StreamUsageTracker(route: route, hideInjectedUsage: hideInjectedUsage)
    }

    /// What this chunk's complete events send on now, nil when nothing. Not inlined into the
    /// relay's loop, whose frame lives as long as the stream.
    @inline(never)
    func feed(_ chunk: [UInt8]) -> ByteBuffer? {
        var batch = ByteBuffer()
        for event in parser.feed(chunk) {
            guard let out = tracker.observe(event) else { continue }
            if StreamUsageTracker.isTerminal(event, route: route) {
                terminal += out
                continue
            }
            batch.writeBytes(out)
        }
        return batch.readableBytes > 0 ? batch : nil
    }
}
