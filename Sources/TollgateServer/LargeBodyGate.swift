import NIOConcurrencyHelpers
import NIOCore

/// Bounds how many large request bodies are in memory at once (`server.large_body_concurrency`).
/// A request whose body is (or grows) past `server.large_body_bytes` takes a permit before
/// reading further, and returns it when its answer has started (a stream) or ended. One waiting
/// for a permit reads nothing: the rest of its body waits in the kernel's socket buffers, so
/// waiting costs no memory. It waits at most `maxWait`, then gets a 503 with Retry-After.
final class LargeBodyGate: Sendable {
    static let maxWait = TimeAmount.seconds(10)

    private struct Waiter {
        let id: UInt64
        let resume: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var free: Int
        var waiters: [Waiter] = []
        var nextID: UInt64 = 0
    }

    private let state: NIOLockedValueBox<State>
    let permits: Int

    init(permits: Int) {
        self.permits = permits
        state = NIOLockedValueBox(State(free: permits))
    }

    /// A permit, or nil when none came free within `maxWait` (first come, first served).
    /// The timer runs on `loop`, the request's own event loop.
    func enter(on loop: any EventLoop) async -> Permit? {
        let granted: Bool = await withCheckedContinuation { resume in
            let id: UInt64? = state.withLockedValue { s in
                if s.free > 0 { s.free -= 1; return nil }
                s.nextID += 1
                s.waiters.append(Waiter(id: s.nextID, resume: resume))
                return s.nextID
            }
            guard let id else { return resume.resume(returning: true) }
            loop.scheduleTask(in: Self.maxWait) { [self] in
                let timedOut = state.withLockedValue { s in
                    s.waiters.firstIndex { $0.id == id }.map { s.waiters.remove(at: $0) }
                }
                timedOut?.resume.resume(returning: false)
            }
        }
        return granted ? Permit(gate: self) : nil
    }

    /// Hands the permit to the longest waiter, or frees it.
    fileprivate func leave() {
        let next = state.withLockedValue { s -> Waiter? in
            if s.waiters.isEmpty { s.free += 1; return nil }
            return s.waiters.removeFirst()
        }
        next?.resume.resume(returning: true)
    }

    /// Returned exactly once, by `release()`.
    final class Permit: Sendable {
        private let gate: LargeBodyGate
        private let released = NIOLockedValueBox(false)

        fileprivate init(gate: LargeBodyGate) { self.gate = gate }

        func release() {
            let first = released.withLockedValue { done in defer { done = true }; return !done }
            if first { gate.leave() }
        }
    }
}
