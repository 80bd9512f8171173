import CCurl
import Foundation
import Synchronization

/// libcurl's multi interface on one dedicated thread, driven by its socket interface
/// (`curl_multi_socket_action` + epoll): each wakeup touches only the transfers whose sockets
/// are ready, so the cost per event stays flat with thousands of open streams (polling every
/// transfer on every wakeup cost ~100 µs per request at 32 connections). Transfers are handed
/// over through a locked queue plus an eventfd; their output comes back as an `AsyncStream`,
/// chunk by chunk as the provider sends it. Connections are kept alive and reused across
/// requests by the multi handle's connection cache. No event loop ever blocks on curl.
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
    // Used by the curl thread only.
    nonisolated(unsafe) let multi: UnsafeMutableRawPointer
    /// The curl thread's epoll instance and the eventfd other threads signal to wake it.
    let epoll: Int32
    let wakeFD: Int32
    /// When curl wants `CURL_SOCKET_TIMEOUT` handled (curl thread only; set by the timer callback).
    nonisolated(unsafe) var timerDeadline: ContinuousClock.Instant?
    /// `sleeping`: the curl thread is (about to be) in epoll_wait and needs a wakeup to see
    /// new commands. While it is busy, commands just queue: one wakeup serves many requests.
    private let commands = Mutex<(queue: [Command], running: Bool, sleeping: Bool)>(([], true, false))
    private let stopped = DispatchSemaphore(value: 0)

    public init(settings: Settings = Settings()) {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
        self.settings = settings
        multi = curl_multi_init()!
        tg_multi_setopt_long(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, settings.maxConnections)
        tg_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, settings.maxConnections)
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        _ = tg_epoll_watch(epoll, EPOLL_CTL_ADD, wakeFD, EPOLLIN.rawValue)
        let me = Unmanaged.passUnretained(self).toOpaque() // the thread keeps self alive until shutdown
        tg_multi_setopt_pointer(multi, CURLMOPT_SOCKETDATA, me)
        tg_multi_setopt_pointer(multi, CURLMOPT_TIMERDATA, me)
        tg_multi_setopt_socket_callback(multi) { _, socket, what, userp, _ in
            let client = Unmanaged<UpstreamClient>.fromOpaque(userp!).takeUnretainedValue()
            if what == CURL_POLL_REMOVE {
                _ = tg_epoll_watch(client.epoll, EPOLL_CTL_DEL, socket, 0)
            } else if tg_epoll_watch(client.epoll, EPOLL_CTL_MOD, socket, tg_epoll_events_for_curl(what)) != 0 {
                _ = tg_epoll_watch(client.epoll, EPOLL_CTL_ADD, socket, tg_epoll_events_for_curl(what))
            }
            return 0
        }
        tg_multi_setopt_timer_callback(multi) { _, milliseconds, userp in
            let client = Unmanaged<UpstreamClient>.fromOpaque(userp!).takeUnretainedValue()
            client.timerDeadline = milliseconds < 0 ? nil : .now + .milliseconds(milliseconds)
            return 0
        }
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
            tg_eventfd_signal(wakeFD)
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
        tg_eventfd_signal(wakeFD)
        stopped.wait()
    }

    private func runLoop() {
        var active: [ObjectIdentifier: TransferContext] = [:]
        var readyFDs = [Int32](repeating: 0, count: 256), readyFlags = [Int32](repeating: 0, count: 256)
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
            // Sleep only if nothing arrived meanwhile; a command queued after this point wakes us.
            let idle = commands.withLock { state in
                state.sleeping = state.queue.isEmpty && state.running
                return state.sleeping
            }
            var timeout: Int32 = idle ? 1000 : 0
            if let deadline = timerDeadline {
                let left = deadline - .now
                timeout = min(timeout, left <= .zero ? 0 : Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1))
            }
            let count = tg_epoll_wait(epoll, &readyFDs, &readyFlags, Int32(readyFDs.count), timeout)
            commands.withLock { $0.sleeping = false }
            for i in 0..<Int(max(count, 0)) {
                if readyFDs[i] == wakeFD {
                    tg_eventfd_drain(wakeFD)
                } else {
                    curl_multi_socket_action(multi, readyFDs[i], readyFlags[i], &stillRunning)
                }
            }
            if let deadline = timerDeadline, deadline <= .now {
                timerDeadline = nil
                tg_multi_socket_timeout(multi, &stillRunning)
            }
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
        }
        for context in active.values {
            context.end(multi: multi, with: .failed(UpstreamError(kind: .cancelled, message: "shutting down")))
        }
        curl_multi_cleanup(multi)
        close(epoll)
        close(wakeFD)
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
