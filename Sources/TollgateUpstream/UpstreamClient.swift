import CCurl
import Foundation
import Logging
import NIOCore
import Synchronization

/// libcurl's multi interface on one dedicated thread, driven by its socket interface
/// (`curl_multi_socket_action` + epoll): each wakeup touches only the transfers whose sockets
/// are ready, so the cost per event stays flat with thousands of open streams (polling every
/// transfer on every wakeup cost ~100 µs per request at 32 connections). Transfers are handed
/// over through a locked queue plus an eventfd; their output comes back as `UpstreamParts`,
/// chunk by chunk as the provider sends it, through a bounded buffer that pauses the transfer
/// while its reader is behind. Connections are kept alive and reused across
/// requests by the multi handle's connection cache. No event loop ever blocks on curl.
public final class UpstreamClient: Sendable {
    public struct Settings: Sendable {
        public var connectTimeoutMilliseconds = 5_000
        public var timeoutSeconds = 600
        public var maxConnections = 256
        /// Per transfer: curl is paused when this many body bytes wait for the reader...
        public var bufferHighWatermarkBytes = 256 << 10
        /// ...and resumed when the reader has drained them to this many.
        public var bufferLowWatermarkBytes = 64 << 10
        /// Header bytes of one answer (all header blocks); more fails the transfer.
        public var maxHeaderBytes = 64 << 10
        /// Body bytes of an answer gathered whole (`UpstreamRequest.collectBody`); more fails the transfer.
        public var maxCollectedBytes = 32 << 20
        public init() {}
    }

    enum Command {
        case start(TransferContext)
        case cancel(TransferContext)
        /// Cancel only if not a byte of the request has gone out yet (`UpstreamTransfer.cancelUnlessSent`).
        case cancelUnlessSent(TransferContext)
        /// The reader drained its buffer: take data again.
        case resume(TransferContext)
    }

    /// Why the client could not start: a refused multi option or a failed syscall.
    public struct SetupError: Error, CustomStringConvertible {
        public let description: String
    }

    let settings: Settings
    let logger: Logger?
    let bufferStats = BufferStats()
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
    /// Transfers whose socket curl asked us to watch and epoll refused (curl thread only): they
    /// are failed after the current `curl_multi_socket_action`, outside curl's callbacks.
    nonisolated(unsafe) var unwatchable: [(context: TransferContext, error: Int32)] = []
    /// Streamed transfers holding body bytes curl handed over in this turn of the loop (curl
    /// thread only): each gets them as one part when the turn ends, however many callbacks
    /// brought them, so its reader wakes and writes once per turn, not once per callback.
    nonisolated(unsafe) var pendingBodies: [TransferContext] = []
    /// Easy handles of ended transfers, reset and kept for the next ones (curl thread only):
    /// setting a request's options and resetting them costs ~0.8 µs, against ~1.2 µs with
    /// `curl_easy_init` and `curl_easy_cleanup` (README, issue 13), and the handle's own
    /// allocations are kept. A streamed answer's handle and a collected one's are
    /// kept apart: a reset may keep the receive buffer curl allocated for the handle's last
    /// transfer, and a stream's is cut to 1 KiB to save memory per open stream (TransferContext).
    /// At most `idleHandleLimit` of each are kept.
    nonisolated(unsafe) var idleHandles: (collecting: [UnsafeMutableRawPointer], streaming: [UnsafeMutableRawPointer]) = ([], [])
    static let idleHandleLimit = 64
    /// Where a request's header lines are made for curl, which copies each (curl thread only).
    nonisolated(unsafe) var headerLine: [UInt8] = []
    /// Easy handles made by `curl_easy_init` since this client started (the rest were reused).
    private let handlesMade = Atomic<Int>(0)
    var easyHandlesMade: Int { handlesMade.load(ordering: .relaxed) }

    /// - Parameter logger: where limit hits are logged (nil: not logged, still counted).
    public init(settings: Settings = Settings(), logger: Logger? = nil) throws(SetupError) {
        try CurlGlobal.initialize()
        guard settings.bufferLowWatermarkBytes >= 0, settings.bufferLowWatermarkBytes < settings.bufferHighWatermarkBytes else {
            throw SetupError(description: "the buffer's low watermark must be below its high watermark")
        }
        self.settings = settings
        self.logger = logger
        guard let multi = curl_multi_init() else { throw SetupError(description: "curl_multi_init failed") }
        self.multi = multi
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        let me = Unmanaged.passUnretained(self).toOpaque() // the thread keeps self alive until shutdown
        var failure: String?
        func check(_ code: CURLMcode, _ option: String) {
            if code != CURLM_OK, failure == nil { failure = "libcurl refused \(option): \(String(cString: curl_multi_strerror(code)))" }
        }
        check(tg_multi_setopt_long(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, settings.maxConnections), "CURLMOPT_MAX_TOTAL_CONNECTIONS")
        check(tg_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, settings.maxConnections), "CURLMOPT_MAXCONNECTS")
        check(tg_multi_setopt_pointer(multi, CURLMOPT_SOCKETDATA, me), "CURLMOPT_SOCKETDATA")
        check(tg_multi_setopt_pointer(multi, CURLMOPT_TIMERDATA, me), "CURLMOPT_TIMERDATA")
        check(tg_multi_setopt_socket_callback(multi) { easy, socket, what, userp, _ in
            let client = Unmanaged<UpstreamClient>.fromOpaque(userp!).takeUnretainedValue()
            client.watch(socket, what: what, for: easy)
            return 0
        }, "CURLMOPT_SOCKETFUNCTION")
        check(tg_multi_setopt_timer_callback(multi) { _, milliseconds, userp in
            let client = Unmanaged<UpstreamClient>.fromOpaque(userp!).takeUnretainedValue()
            client.timerDeadline = milliseconds < 0 ? nil : .now + .milliseconds(milliseconds)
            return 0
        }, "CURLMOPT_TIMERFUNCTION")
        if epoll < 0 || wakeFD < 0 {
            failure = failure ?? "epoll_create1/eventfd failed: \(String(cString: strerror(tg_errno())))"
        } else if tg_epoll_watch(epoll, EPOLL_CTL_ADD, wakeFD, EPOLLIN.rawValue) != 0 {
            failure = failure ?? "epoll_ctl(eventfd) failed: \(String(cString: strerror(tg_errno())))"
        }
        if let failure {
            curl_multi_cleanup(multi)
            throw SetupError(description: failure) // deinit closes epoll and the eventfd
        }
        // Named from inside: on Linux a name given before `start` never reaches the OS thread,
        // which then shows its creator's name in top -H and /proc (bench/lib/thread_cpu.py).
        Thread { [self] in
            Thread.current.name = "tollgate-curl"
            runLoop()
        }.start()
    }

    /// curl's socket callback: watch `socket` for what curl wants (curl thread only).
    private func watch(_ socket: curl_socket_t, what: Int32, for easy: UnsafeMutableRawPointer?) {
        if what == CURL_POLL_REMOVE {
            // curl may already have closed the socket (epoll then forgot it): nothing to undo.
            _ = tg_epoll_watch(epoll, EPOLL_CTL_DEL, socket, 0)
            return
        }
        let events = tg_epoll_events_for_curl(what)
        if tg_epoll_watch(epoll, EPOLL_CTL_MOD, socket, events) == 0 { return }
        if tg_epoll_watch(epoll, EPOLL_CTL_ADD, socket, events) == 0 { return }
        // An unwatched socket would leave its transfer waiting for its timeout: fail it now.
        let error = tg_errno()
        var userdata: UnsafeMutableRawPointer?
        guard let easy, tg_easy_getinfo_pointer(easy, CURLINFO_PRIVATE, &userdata) == CURLE_OK, let userdata else { return }
        unwatchable.append((Unmanaged<TransferContext>.fromOpaque(userdata).takeUnretainedValue(), error))
    }

    /// Starts a transfer. Consume `parts` until `.end` or `.failed`; cancel to abort at once.
    public func start(_ request: UpstreamRequest) -> UpstreamTransfer {
        let buffer = TransferBuffer(
            watermarks: .init(low: settings.bufferLowWatermarkBytes, high: settings.bufferHighWatermarkBytes), stats: bufferStats)
        let context = TransferContext(request: request, buffer: buffer, wholeAnswer: nil, maxHeaderBytes: settings.maxHeaderBytes,
                                      maxCollectedBytes: settings.maxCollectedBytes, client: self)
        let made = UpstreamParts.Producer.makeSequence(
            backPressureStrategy: ByteWatermarks(buffer: buffer), finishOnDeinit: true,
            delegate: TransferDemand(client: self, context: context))
        context.source = made.source
        let transfer = UpstreamTransfer(parts: UpstreamParts(made.sequence, buffer: buffer), control: TransferControl(client: self, context: context))
        enqueue(.start(context))
        return transfer
    }

    /// Starts a transfer whose answer is gathered whole (held to `maxCollectedBytes`) and handed
    /// over once, when it ends: `await answer()`. No parts, no buffer between the threads.
    public func collect(_ request: UpstreamRequest) -> UpstreamCall {
        var request = request
        request.collectBody = true
        let slot = AnswerSlot()
        let context = TransferContext(request: request, buffer: nil, wholeAnswer: slot, maxHeaderBytes: settings.maxHeaderBytes,
                                      maxCollectedBytes: settings.maxCollectedBytes, client: self)
        enqueue(.start(context))
        return UpstreamCall(control: TransferControl(client: self, context: context), slot: slot)
    }

    /// Body bytes received and not yet read, across this client's transfers.
    public var bufferedBytes: Int { bufferStats.total }
    /// Streamed body bytes this client has taken from providers since it started.
    public var receivedBodyBytes: Int { bufferStats.received }
    /// The most body bytes one transfer has had waiting for its reader, since this client started:
    /// at most the high watermark plus one chunk from curl (16 KiB).
    public var peakBufferedBytesPerTransfer: Int { bufferStats.peakPerTransfer }

    func enqueue(_ command: Command) {
        // The wakeup is written after the lock is let go: every event loop enqueues here, and a
        // syscall inside the lock made them queue up on it (futex waits, ~4 % of the CPU at
        // c=32). The eventfd stays open until deinit, and `self` is alive here, so the write
        // never meets a closed (or reused) descriptor.
        let (accepted, wake) = commands.withLock { state -> (Bool, Bool) in
            guard state.running else { return (false, false) }
            state.queue.append(command)
            defer { state.sleeping = false }
            return (true, state.sleeping)
        }
        if wake { signalWake() }
        if !accepted, case .start(let context) = command {
            context.finish(.failed(UpstreamError(kind: .connect, message: "upstream client is shut down")))
        }
    }

    deinit {
        if epoll >= 0 { close(epoll) }
        if wakeFD >= 0 { close(wakeFD) }
    }

    public func shutdown() {
        let wasRunning = commands.withLock { state in
            defer { state.running = false; state.sleeping = false }
            if state.running { signalWake() }
            return state.running
        }
        guard wasRunning else { return }
        stopped.wait()
    }

    /// Fails only if the eventfd itself is broken, which a running client cannot survive: the
    /// curl thread would never see its commands.
    private func signalWake() {
        if tg_eventfd_signal(wakeFD) != 0 {
            fatalError("tollgate-curl: eventfd write failed: \(String(cString: strerror(tg_errno())))")
        }
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
                case .cancelUnlessSent(let context):
                    guard active[ObjectIdentifier(context)] != nil, !context.requestSent else { continue }
                    active.removeValue(forKey: ObjectIdentifier(context))
                    context.end(multi: multi, with: .failed(UpstreamError(kind: .cancelled, message: "cancelled",
                                                                          mayHaveReachedProvider: false)))
                case .cancel(let context):
                    guard active.removeValue(forKey: ObjectIdentifier(context)) != nil else { continue }
                    context.end(multi: multi, with: .failed(UpstreamError(kind: .cancelled, message: "cancelled",
                                                                          mayHaveReachedProvider: context.requestSent)))
                case .resume(let context):
                    guard active[ObjectIdentifier(context)] != nil else { continue }
                    let resumed = context.resume()
                    if resumed != CURLE_OK {
                        active.removeValue(forKey: ObjectIdentifier(context))
                        let reason = String(cString: curl_easy_strerror(resumed))
                        context.end(multi: multi, with: .failed(UpstreamError(kind: .transfer, message: "curl could not resume the transfer: \(reason)")))
                    }
                }
            }
            deliverPendingBodies() // a resumed transfer may have been handed its kept chunk
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
            if count < 0 {
                // Only EBADF/EFAULT/EINVAL remain (EINTR is a wakeup): the loop cannot work on.
                fatalError("tollgate-curl: epoll_wait failed: \(String(cString: strerror(tg_errno())))")
            }
            commands.withLock { $0.sleeping = false }
            for i in 0..<Int(count) {
                if readyFDs[i] == wakeFD {
                    if tg_eventfd_drain(wakeFD) != 0 {
                        fatalError("tollgate-curl: eventfd read failed: \(String(cString: strerror(tg_errno())))")
                    }
                } else {
                    curl_multi_socket_action(multi, readyFDs[i], readyFlags[i], &stillRunning)
                }
            }
            if let deadline = timerDeadline, deadline <= .now {
                timerDeadline = nil
                tg_multi_socket_timeout(multi, &stillRunning)
            }
            for (context, error) in unwatchable where active.removeValue(forKey: ObjectIdentifier(context)) != nil {
                let reason = String(cString: strerror(error))
                context.end(multi: multi, with: .failed(UpstreamError(kind: .transfer, message: "epoll refused the transfer's socket: \(reason)")))
            }
            unwatchable.removeAll()
            deliverPendingBodies()
            var left: Int32 = 0
            while let message = curl_multi_info_read(multi, &left) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
                var userdata: UnsafeMutableRawPointer?
                tg_easy_getinfo_pointer(easy, CURLINFO_PRIVATE, &userdata)
                guard let userdata else { continue }
                let context = Unmanaged<TransferContext>.fromOpaque(userdata).takeUnretainedValue()
                active.removeValue(forKey: ObjectIdentifier(context))
                context.complete(multi: multi, result: tg_msg_result(message), settings: settings, logger: logger)
            }
        }
        for context in active.values {
            context.end(multi: multi, with: .failed(UpstreamError(kind: .cancelled, message: "shutting down")))
        }
        (idleHandles.collecting + idleHandles.streaming).forEach { curl_easy_cleanup($0) }
        idleHandles = ([], [])
        curl_multi_cleanup(multi)
        stopped.signal()
    }
}

extension UpstreamClient {
    /// Curl thread only: an easy handle with every option at its default, reused when one of the
    /// same kind is idle.
    func takeHandle(collecting: Bool) -> UnsafeMutableRawPointer? {
        if let handle = collecting ? idleHandles.collecting.popLast() : idleHandles.streaming.popLast() { return handle }
        guard let handle = curl_easy_init() else { return nil }
        handlesMade.add(1, ordering: .relaxed)
        return handle
    }

    /// Curl thread only: a handle out of the multi handle, reset for the next transfer of its kind,
    /// or freed.
    func recycle(_ handle: UnsafeMutableRawPointer, collecting: Bool) {
        guard (collecting ? idleHandles.collecting.count : idleHandles.streaming.count) < Self.idleHandleLimit else {
            return curl_easy_cleanup(handle)
        }
        curl_easy_reset(handle)
        if collecting { idleHandles.collecting.append(handle) } else { idleHandles.streaming.append(handle) }
    }

    /// Curl thread only: the turn's body bytes of each streamed transfer, as one part each.
    func deliverPendingBodies() {
        guard !pendingBodies.isEmpty else { return }
        for context in pendingBodies {
            context.pendingListed = false
            context.deliverPending()
        }
        pendingBodies.removeAll(keepingCapacity: true)
    }
}

/// A running transfer: read `parts`, or `cancel()` (e.g. the client disconnected).
public struct UpstreamTransfer: UpstreamCancellable {
    public let parts: UpstreamParts
    public let control: TransferControl
}

/// `curl_global_init` is not thread-safe and must run once per process before any other curl
/// call: the curl thread of every `UpstreamClient` and the SMTP sender's pool threads all start
/// here. A Swift `static let` is initialised exactly once, under a lock.
enum CurlGlobal {
    private static let result: CURLcode = curl_global_init(Int(CURL_GLOBAL_DEFAULT))

    static func initialize() throws(UpstreamClient.SetupError) {
        guard result == CURLE_OK else {
            throw UpstreamClient.SetupError(description: "curl_global_init failed: \(String(cString: curl_easy_strerror(result)))")
        }
    }
}
