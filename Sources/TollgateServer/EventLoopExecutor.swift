import NIOCore
import NIOPosix

/// Runs a request's task on the event loop that owns its connection. Without this, a task
/// resumed by the curl thread lands on whichever loop the global executor picks, and every
/// write to the client and every Redis command then hops between loops.
final class EventLoopExecutor: TaskExecutor {
    let eventLoop: any EventLoop
    init(_ eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    func enqueue(_ job: consuming ExecutorJob) { eventLoop.enqueue(job) }

    /// One executor per loop of the group, made once.
    static let all: [ObjectIdentifier: EventLoopExecutor] = {
        var byLoop: [ObjectIdentifier: EventLoopExecutor] = [:]
        for loop in MultiThreadedEventLoopGroup.singleton.makeIterator() { byLoop[ObjectIdentifier(loop)] = EventLoopExecutor(loop) }
        return byLoop
    }()

    static func of(_ loop: any EventLoop) -> EventLoopExecutor {
        all[ObjectIdentifier(loop)] ?? EventLoopExecutor(loop)
    }
}
