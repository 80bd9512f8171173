import CCurl
import Foundation
import Synchronization

/// libcurl's multi interface on one dedicated thread. Transfers are handed over through a
/// locked queue plus `curl_multi_wakeup`; their output comes back as an `AsyncStream`, chunk by
/// chunk as the provider sends it. Connections are kept alive and reused across requests by
/// the multi handle's connection cache. No event loop ever blocks on curl.
public final class UpstreamClient: Sendable {
    public struct Settings: Sendable {
        public var connectTimeoutMilliseconds = 5_000
        public var timeoutSeconds = 600
        public var maxConnections = 256
        public init() {}
    }

    enum Command {
        case start(TransferContext)
        case cancel(TransferContext)
    }

    let settings: Settings
    // Used by the curl thread; other threads only call curl_multi_wakeup, which is thread-safe.
    nonisolated(unsafe) let multi: UnsafeMutableRawPointer
    /// `sleeping`: the curl thread is (about to be) in curl_multi_poll and needs a wakeup to see
    /// new commands. While it is busy, commands just queue: one wakeup serves many requests.
    private let commands = Mutex<(queue: [Command], running: Bool, sleeping: Bool)>(([], true, false))
    private let stopped = DispatchSemaphore(value: 0)

    public init(settings: Settings = Settings()) {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
        self.settings = settings
        multi = curl_multi_init()!
        tg_multi_setopt_long(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, settings.maxConnections)
        tg_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, settings.maxConnections)
        let thread = Thread { [self] in runLoop() }
        thread.name = "tollgate-curl"
        thread.start()
    }

    /// Starts a transfer. Consume `parts` until `.end` or `.failed`; cancel to abort at once.
    public func start(_ request: UpstreamRequest) -> UpstreamTransfer {
        let (stream, continuation) = AsyncStream<UpstreamPart>.makeStream()
        let context = TransferContext(request: request, continuation: continuation)
        let transfer = UpstreamTransfer(parts: stream, client: self, context: context)
        continuation.onTermination = { [weak self] reason in
            if case .cancelled = reason { self?.enqueue(.cancel(context)) }
        }
        enqueue(.start(context))
        return transfer
    }

    func enqueue(_ command: Command) {
        let (accepted, wake) = commands.withLock { state in
            guard state.running else { return (false, false) }
            state.queue.append(command)
            defer { state.sleeping = false }
            return (true, state.sleeping)
        }
        if wake {
            curl_multi_wakeup(multi)
        } else if !accepted, case .start(let context) = command {
            context.finish(.failed(UpstreamError(kind: .connect, message: "upstream client is shut down")))
        }
    }

    public func shutdown() {
        let wasRunning = commands.withLock { state in
            defer { state.running = false; state.sleeping = false }
            return state.running
        }
        guard wasRunning else { return }
        curl_multi_wakeup(multi)
        stopped.wait()
    }

    private func runLoop() {
        var active: [ObjectIdentifier: TransferContext] = [:]
        while true {
            let (batch, running) = commands.withLock { state in
                defer { state.queue.removeAll(keepingCapacity: true) }
                return (state.queue, state.running)
            }
            for command in batch {
                switch command {
                case .start(let context):
                    if context.begin(multi: multi, settings: settings) { active[ObjectIdentifier(context)] = context }
                case .cancel(let context):
                    guard active.removeValue(forKey: ObjectIdentifier(context)) != nil else { continue }
                    context.end(multi: multi, with: .failed(UpstreamError(kind: .cancelled, message: "cancelled")))
                }
            }
            if !running { break }
            var stillRunning: Int32 = 0
            curl_multi_perform(multi, &stillRunning)
            var left: Int32 = 0
            while let message = curl_multi_info_read(multi, &left) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
                var userdata: UnsafeMutableRawPointer?
                tg_easy_getinfo_pointer(easy, CURLINFO_PRIVATE, &userdata)
                guard let userdata else { continue }
                let context = Unmanaged<TransferContext>.fromOpaque(userdata).takeUnretainedValue()
                active.removeValue(forKey: ObjectIdentifier(context))
                context.complete(multi: multi, result: tg_msg_result(message))
            }
            // Sleep only if nothing arrived meanwhile; a command queued after this point wakes us.
            let idle = commands.withLock { state in
                state.sleeping = state.queue.isEmpty && state.running
                return state.sleeping
            }
            var fds: Int32 = 0
            curl_multi_poll(multi, nil, 0, idle ? 1000 : 0, &fds)
            commands.withLock { $0.sleeping = false }
        }
        for context in active.values {
            context.end(multi: multi, with: .failed(UpstreamError(kind: .cancelled, message: "shutting down")))
        }
        curl_multi_cleanup(multi)
        stopped.signal()
    }
}

/// A running transfer: read `parts`, or `cancel()` (e.g. the client disconnected).
public struct UpstreamTransfer: Sendable {
    public let parts: AsyncStream<UpstreamPart>
    let client: UpstreamClient
    let context: TransferContext

    public func cancel() { client.enqueue(.cancel(context)) }
}
