import NIOCore
import Synchronization

/// A provider's answer gathered whole (`UpstreamClient.collect`), handed over once when its
/// transfer ends: a non-streamed completion, a model list.
public struct UpstreamAnswer: Sendable {
    /// Nil when the transfer failed before the answer's head was complete.
    public var head: UpstreamResponseHead?
    /// The body as far as it came (empty when a limit stopped it).
    public var body: [UInt8]
    /// Nil when the answer came whole.
    public var failure: UpstreamError?
}

/// A running transfer whose answer is handed over whole: `await answer()`, or cancel it.
public struct UpstreamCall: UpstreamCancellable {
    public let control: TransferControl
    let slot: AnswerSlot

    /// The answer, once its transfer has ended (however it ended).
    public func answer() async -> UpstreamAnswer { await slot.wait() }

    /// Calls `body` with the answer on `loop` once the transfer has ended, for a caller driven by
    /// its event loop's callbacks (no task waits). Either this or `answer()`, once.
    public func whenAnswered(on loop: any EventLoop, _ body: @escaping @Sendable (UpstreamAnswer) -> Void) {
        slot.whenFilled { answer in
            if loop.inEventLoop { body(answer) } else { loop.execute { body(answer) } }
        }
    }
}

/// One running transfer, as the curl thread knows it: what both kinds of handle cancel.
public struct TransferControl: Sendable {
    let client: UpstreamClient
    let context: TransferContext
}

/// A handle on a running transfer (`UpstreamTransfer`, `UpstreamCall`).
public protocol UpstreamCancellable: Sendable {
    var control: TransferControl { get }
}

extension UpstreamCancellable {
    public func cancel() { control.client.enqueue(.cancel(control.context)) }

    /// Cancels the transfer if curl has not sent a byte of its request yet (still connecting, or
    /// waiting for a connection), so the provider cannot bill it; a request already sent runs on.
    public func cancelUnlessSent() { control.client.enqueue(.cancelUnlessSent(control.context)) }

    /// Cancels the transfer once `delay` has passed, if it has not ended by then: what a client
    /// that hung up leaves behind is read on for a while, to be charged what the provider reports.
    public func cancel(after delay: TimeAmount, on loop: any EventLoop) {
        let control = control
        loop.scheduleTask(in: delay) { control.client.enqueue(.cancel(control.context)) }
    }
}

/// Where the curl thread leaves a whole answer for the one task that waits for it (or the one
/// callback that takes it: `UpstreamCall.whenAnswered`). One lock and at most one continuation
/// per request: the waiting task is resumed once, on its own executor (the connection's loop),
/// instead of reading head, body and end through an async sequence with its buffer, watermarks
/// and delegate (issue 13).
final class AnswerSlot: Sendable {
    private enum State {
        case empty
        case waiting(UnsafeContinuation<UpstreamAnswer, Never>)
        case callback(@Sendable (UpstreamAnswer) -> Void)
        case filled(UpstreamAnswer)
        case taken
    }

    private let state = Mutex<State>(.empty)

    /// Curl thread, once per transfer (`TransferContext.finish`).
    func fill(_ answer: UpstreamAnswer) {
        let waiter: State? = state.withLock { state in
            switch state {
            case .empty:
                state = .filled(answer)
                return nil
            case .waiting, .callback:
                defer { state = .taken }
                return state
            case .filled, .taken:
                return nil
            }
        }
        switch waiter {
        case .waiting(let continuation)?: continuation.resume(returning: answer)
        case .callback(let body)?: body(answer)
        default: break
        }
    }

    /// Called once, by the one the answer is for, instead of `wait`: `body` runs on the thread
    /// that fills the slot (curl's), or here when it is filled already.
    func whenFilled(_ body: @escaping @Sendable (UpstreamAnswer) -> Void) {
        if let ready = takeOrLeave(.callback(body)) { body(ready) }
    }

    /// Called once, by the task the answer is for.
    func wait() async -> UpstreamAnswer {
        await withUnsafeContinuation { continuation in
            if let ready = takeOrLeave(.waiting(continuation)) { continuation.resume(returning: ready) }
        }
    }

    /// The answer if it is here; otherwise `waiter` is left for `fill` to call.
    private func takeOrLeave(_ waiter: State) -> UpstreamAnswer? {
        state.withLock { state in
            switch state {
            case .filled(let answer):
                state = .taken
                return answer
            case .empty:
                state = waiter
                return nil
            case .waiting, .callback, .taken:
                preconditionFailure("an upstream answer is awaited once")
            }
        }
    }
}
