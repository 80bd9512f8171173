import Metrics
import NIOCore
import Synchronization

/// The bounded bridge between the curl thread and the task reading a transfer.
///
/// A slow client reading a fast stream must not make Tollgate hold the stream: the chunks waiting
/// for the reader are counted in bytes, and when they pass the high watermark the curl thread
/// stops taking data (`CURL_WRITEFUNC_PAUSE`: curl keeps that chunk, stops reading the socket,
/// and TCP pushes back on the provider). When the reader has drained them to the low watermark,
/// the transfer is resumed with `curl_easy_pause(CURLPAUSE_CONT)` on the curl thread.
/// NIOAsyncSequenceProducer does the yield/demand bookkeeping; `ByteWatermarks` makes its
/// watermarks count bytes instead of elements, since a chunk may be 10 bytes or 16 KiB.
public struct UpstreamParts: AsyncSequence, Sendable {
    public typealias Element = UpstreamPart
    public typealias Failure = Never
    typealias Producer = NIOAsyncSequenceProducer<UpstreamPart, ByteWatermarks, TransferDemand>

    /// One iterator shared by every `makeAsyncIterator()`: the pipeline reads the head, then hands
    /// the same transfer to the stream relay. When the last holder lets go, the producer sees its
    /// reader gone (`didTerminate`) and the transfer is cancelled.
    let reader: Reader

    init(_ sequence: Producer, buffer: TransferBuffer) {
        reader = Reader(sequence.makeAsyncIterator(), buffer: buffer)
    }

    public func makeAsyncIterator() -> Iterator { Iterator(reader: reader) }

    public struct Iterator: AsyncIteratorProtocol {
        public typealias Element = UpstreamPart
        public typealias Failure = Never
        let reader: Reader

        public mutating func next() async -> UpstreamPart? { await reader.next() }
    }

    /// Read by one task at a time (the pipeline, then the relay it hands over to).
    final class Reader: @unchecked Sendable {
        private var iterator: Producer.AsyncIterator
        private let buffer: TransferBuffer

        init(_ iterator: Producer.AsyncIterator, buffer: TransferBuffer) {
            self.iterator = iterator
            self.buffer = buffer
        }

        func next() async -> UpstreamPart? {
            let part = await iterator.next()
            if case .body(let chunk)? = part { buffer.consumed(chunk.count) }
            return part
        }

        deinit { buffer.close() }
    }
}

/// The bytes of one transfer that curl has handed over and its reader has not yet taken.
final class TransferBuffer: Sendable {
    struct Watermarks: Sendable {
        var low: Int
        var high: Int
    }

    let watermarks: Watermarks
    private let stats: BufferStats
    private let state = Mutex<(bytes: Int, closed: Bool)>((0, false))

    init(watermarks: Watermarks, stats: BufferStats) {
        self.watermarks = watermarks
        self.stats = stats
    }

    var bytes: Int { state.withLock { $0.bytes } }

    /// Counted before the yield, so the strategy sees the chunk it is deciding about.
    func willYield(_ count: Int) {
        let now: Int? = state.withLock { s in
            guard !s.closed else { return nil }
            s.bytes += count
            return s.bytes
        }
        guard let now else { return }
        stats.add(count, transferNow: now)
    }

    /// The reader was gone: the chunk was not buffered after all.
    func dropped(_ count: Int) { consumed(count) }

    func consumed(_ count: Int) {
        let counted = state.withLock { s in
            guard !s.closed else { return false }
            s.bytes -= count
            return true
        }
        if counted { stats.add(-count, transferNow: 0) }
    }

    /// The reader is gone: whatever it left unread is freed with it.
    func close() {
        let left = state.withLock { s in
            defer { s = (0, true) }
            return s.closed ? 0 : s.bytes
        }
        if left != 0 { stats.add(-left, transferNow: 0) }
    }
}

/// NIOAsyncSequenceProducer's watermarks in bytes (its own `HighLowWatermark` counts elements).
struct ByteWatermarks: NIOAsyncSequenceProducerBackPressureStrategy {
    let buffer: TransferBuffer

    func didYield(bufferDepth: Int) -> Bool { buffer.bytes < buffer.watermarks.high }

    /// The reader subtracts a chunk just after this runs, so the count may include the chunk being
    /// taken: resuming is then at most one chunk late. An empty buffer always asks for more, so
    /// that lag can never stall a transfer.
    func didConsume(bufferDepth: Int) -> Bool { bufferDepth == 0 || buffer.bytes <= buffer.watermarks.low }
}

/// The producer side's delegate: demand resumes the curl transfer; a reader that left cancels it.
struct TransferDemand: NIOAsyncSequenceProducerDelegate {
    let client: UpstreamClient
    let context: TransferContext

    func produceMore() { client.enqueue(.resume(context)) }

    func didTerminate() {
        // Also called after the reader took the last part of a finished transfer: no wakeup then.
        guard !context.isDelivered else { return }
        client.enqueue(.cancel(context))
    }
}

/// Buffered bytes across one client's transfers, for `/metrics` and for tests that prove the bound.
/// Atomics, not a lock: every chunk of every transfer passes here.
final class BufferStats: Sendable {
    static let gauge = Meter(label: UpstreamMetrics.bufferedBytes)
    private let totalBytes = Atomic<Int>(0)
    private let peakBytes = Atomic<Int>(0)
    private let receivedBytes = Atomic<Int>(0)

    func add(_ delta: Int, transferNow: Int) {
        totalBytes.wrappingAdd(delta, ordering: .relaxed)
        if delta > 0 { receivedBytes.wrappingAdd(delta, ordering: .relaxed) }
        var peak = peakBytes.load(ordering: .relaxed)
        while transferNow > peak {
            let (exchanged, seen) = peakBytes.compareExchange(expected: peak, desired: transferNow, ordering: .relaxed)
            if exchanged { break }
            peak = seen
        }
        if delta > 0 { Self.gauge.increment(by: Double(delta)) } else { Self.gauge.decrement(by: Double(-delta)) }
    }

    var total: Int { totalBytes.load(ordering: .relaxed) }
    /// Body bytes taken from providers' sockets, ever (a paused transfer takes none).
    var received: Int { receivedBytes.load(ordering: .relaxed) }
    /// The most one transfer has had buffered at once since the client started.
    var peakPerTransfer: Int { peakBytes.load(ordering: .relaxed) }
}
