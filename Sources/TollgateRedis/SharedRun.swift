import Synchronization

/// One run of a job at a time (a topology refresh, a Sentinel query): a caller that needs it
/// while it runs waits for that run instead of starting another, so a failover that makes every
/// caller ask at once costs one round of questions.
final class SharedRun: Sendable {
    /// Non-nil while a run is under way: the callers waiting for it.
    private let waiters = Mutex<[CheckedContinuation<Void, Never>]?>(nil)

    /// True: the caller runs the job and then calls `finish()`. False: a run was under way and
    /// has finished by the time this returns.
    func join() async -> Bool {
        let runs = waiters.withLock { w -> Bool in
            if w != nil { return false }
            w = []
            return true
        }
        if runs { return true }
        await withCheckedContinuation { waiter in
            let queued = waiters.withLock { w -> Bool in
                guard w != nil else { return false }
                w!.append(waiter)
                return true
            }
            if !queued { waiter.resume() }
        }
        return false
    }

    func finish() {
        let waiting = waiters.withLock { w in
            defer { w = nil }
            return w ?? []
        }
        for waiter in waiting { waiter.resume() }
    }
}
