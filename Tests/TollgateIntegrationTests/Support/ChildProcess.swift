import Foundation
import Synchronization

/// A child process started with posix_spawn.
///
/// Not Foundation's `Process`: its `run()` crashed the test process now and then (a memmove from
/// freed memory inside `Process.run`, seen in CI while other tests allocated large strings), and
/// its `waitUntilExit` can hang inside an async test (it spins a run loop nobody drives).
final class ChildProcess: Sendable {
    let pid: pid_t
    private let exitStatus = Mutex<Int32?>(nil)
    /// Held while spawning, and while `run` makes its pipe close-on-exec.
    private static let spawning = Mutex<Void>(())
    /// glibc 2.34's `posix_spawn_file_actions_addclosefrom_np`, which Swift's Glibc module does not export.
    private static let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? =
        dlsym(nil, "posix_spawn_file_actions_addclosefrom_np").map {
            unsafeBitCast($0, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
        }

    enum Output { case discard, pipe(Int32) }

    /// Starts `executable` (a path, or a name looked up in PATH) with `arguments`. `environment`
    /// replaces the test process's own when given; stdout and stderr go to /dev/null unless `output`
    /// names a pipe's write end.
    init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, output: Output = .discard) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        switch output {
        case .discard:
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        case .pipe(let writeEnd):
            posix_spawn_file_actions_adddup2(&actions, writeEnd, 1)
            posix_spawn_file_actions_adddup2(&actions, writeEnd, 2)
            posix_spawn_file_actions_addclose(&actions, writeEnd)
        }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        // Nothing else of this process may leak into the child: a socket it inherits (a test
        // client's, say) stays open after the test closes it, and the peer never sees the hang-up.
        guard let closeFrom = Self.addCloseFrom, closeFrom(&actions, 3) == 0 else { throw POSIXError(.ENOSYS) }
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?]? = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer { argv.forEach { free($0) }; envp?.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = Self.spawning.withLock { _ in
            envp.map { posix_spawnp(&pid, executable, &actions, nil, argv, $0) } ?? posix_spawnp(&pid, executable, &actions, nil, argv, environ)
        }
        guard spawned == 0 else { throw POSIXError(POSIXErrorCode(rawValue: spawned) ?? .EIO) }
        self.pid = pid
    }

    /// The test process's environment with `changes` applied.
    static func environment(_ changes: [String: String]) -> [String: String] {
        ProcessInfo.processInfo.environment.merging(changes) { $1 }
    }

    /// Whether the child still runs; reaps it (once) when it has ended.
    var isRunning: Bool { reap(blocking: false) == nil }

    /// Its exit status (128 + signal when a signal ended it), once it has ended.
    var status: Int32? { reap(blocking: false) }

    func signal(_ signal: Int32) {
        if isRunning { Glibc.kill(pid, signal) }
    }

    /// Sends SIGKILL and reaps the child.
    func kill() {
        signal(SIGKILL)
        _ = reap(blocking: true)
    }

    /// Waits for the end on a thread of its own (never on Swift concurrency's pool).
    func exit() async -> Int32 {
        await withCheckedContinuation { done in
            Thread { done.resume(returning: self.reap(blocking: true) ?? -1) }.start()
        }
    }

    private func reap(blocking: Bool) -> Int32? {
        exitStatus.withLock { known in
            if let known { return known }
            var raw: Int32 = 0
            var reaped: pid_t
            repeat { reaped = waitpid(pid, &raw, blocking ? 0 : WNOHANG) } while reaped < 0 && errno == EINTR
            guard reaped == pid else { return nil }
            known = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
            return known
        }
    }
}

extension ChildProcess {

    /// Runs `executable` with `arguments` to its end and returns its exit status and everything it
    /// printed (stdout and stderr together).
    ///
    /// The reading and the wait happen on a thread of its own, never on Swift concurrency's pool:
    /// that pool has as many threads as cores (2 here), and a child such as an SDK script or a
    /// headless browser talks to servers running in this very process, whose handlers need those
    /// threads.
    static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                    killAfter limit: Duration? = nil) async throws -> (status: Int32, output: String) {
        // Close-on-exec, set under the lock every spawn takes: a child spawned meanwhile by another
        // test must not inherit the write end, or the read below would wait for that child's end.
        let (readEnd, writeEnd) = try spawning.withLock { _ in
            var pipeEnds: [Int32] = [0, 0]
            guard pipe(&pipeEnds) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            _ = fcntl(pipeEnds[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(pipeEnds[1], F_SETFD, FD_CLOEXEC)
            return (pipeEnds[0], pipeEnds[1])
        }
        let child: ChildProcess
        do {
            child = try ChildProcess(executable, arguments, environment: environment, output: .pipe(writeEnd))
        } catch {
            close(readEnd); close(writeEnd)
            throw error
        }
        close(writeEnd)
        let watchdog = limit.map { limit in
            Task {
                try await Task.sleep(for: limit)
                child.signal(SIGKILL)
            }
        }
        defer { watchdog?.cancel() }
        return await withCheckedContinuation { done in
            Thread {
                var output: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 4096)
                while true {
                    let n = read(readEnd, &chunk, chunk.count)
                    if n < 0, errno == EINTR { continue }
                    guard n > 0 else { break }
                    output += chunk[0..<n]
                }
                close(readEnd)
                let status = child.reap(blocking: true) ?? -1
                done.resume(returning: (status, String(decoding: output, as: UTF8.self)))
            }.start()
        }
    }
}
