import Hummingbird
import Logging
import NIOCore
import TollgateCore
import TollgateRedis
import TollgateUpstream

/// Passes an SSE stream to the client as it arrives (never buffering the whole response),
/// follows the usage it reports, and settles once when it ends: with the provider's usage when it
/// arrived, otherwise with a provable bound (`ChargeRule`).
struct StreamRelay: Sendable {
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

    func run(_ writer: inout any ResponseBodyWriter) async throws {
        Observability.streamsInFlight.increment()
        defer {
            Observability.streamsInFlight.decrement()
            watch?.unwatch()
        }
        var parser = SSEParser(maxEventBytes: maxEventBytes)
        var tracker = StreamUsageTracker(route: route, hideInjectedUsage: hideInjectedUsage)

        var completed = false
        var clientGone = false
        var cancelled = false
        // The event that tells the client the stream is complete waits until the settle is done:
        // a client that saw the end of its stream has been charged, even if this replica dies next.
        var terminal: [UInt8] = []
        streaming: for await part in transfer.parts {
            switch part {
            case .head: continue
            case .body(let chunk):
                // Every event that arrived in this chunk goes out in one write: one flush (one
                // syscall) per chunk from the provider, not one per event, and no added delay.
                var batch = ByteBuffer()
                for event in parser.feed(chunk) {
                    guard let out = tracker.observe(event) else { continue }
                    if StreamUsageTracker.isTerminal(event, route: route) {
                        terminal += out
                        continue
                    }
                    batch.writeBytes(out)
                }
                if batch.readableBytes > 0 {
                    do {
                        try await writer.write(batch)
                    } catch {
                        clientGone = true
                        transfer.cancel()
                        break streaming
                    }
                }
                if parser.eventTooLarge {
                    // Cut like a broken stream: settled below by the cut-stream rule.
                    UpstreamMetrics.exceeded(.sseEvent)
                    settlement.logger.warning("upstream stream cut at a limit", metadata: [
                        "limit": "\(UpstreamLimit.sseEvent.rawValue)", "max_bytes": "\(maxEventBytes)"])
                    transfer.cancel()
                    break streaming
                }
            case .end:
                completed = true
            case .failed(let e):
                cancelled = e.kind == .cancelled // the client's connection closed (see ConnectionWatch)
                break streaming
            }
        }
        let ending: UpstreamEnding
        if let usage = tracker.finalUsage {
            ending = .answered(status: 200, usage: usage)  // even if the connection broke right after
        } else if completed {
            ending = .answered(status: 200, usage: nil)    // a stream that never reported its usage
        } else {
            ending = .cut(bound: tracker.cutStreamBound(for: estimate))
        }
        let charge = bill.charge(ending)
        var finished = record
        finished.upstreamFinished = .now
        if case .answered(_, let usage?) = ending { finished.usage = usage }
        finished.cost = charge.cost
        finished.charged = charge.basis
        finished.outcome = completed ? .forwarded : clientGone || cancelled || Task.isCancelled ? .clientGone : .upstreamError
        let settleStarted = ContinuousClock.now
        await settlement.settle(charge.cost)
        finished.settleDuration = ContinuousClock.now - settleStarted
        observability.finish(finished)
        if clientGone { throw CancellationError() }
        if !terminal.isEmpty || !parser.buffered.isEmpty { try await writer.write(ByteBuffer(bytes: terminal + parser.buffered)) }
        try await writer.finish(nil)
    }
}
