import Foundation

/// Runs a child process to its end and returns its exit status and output (stdout + stderr).
///
/// The wait happens on a thread of its own, never on Swift concurrency's pool: that pool has as
/// many threads as cores (2 here), and a child such as an SDK script or a headless browser talks
/// to servers running in this very process, whose handlers need those threads. Two tests
/// blocking in `readDataToEndOfFile` at once would deadlock the whole test run.
enum ChildProcess {
    static func run(_ process: Process) async throws -> (status: Int32, output: String) {
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        return await withCheckedContinuation { done in
            Thread {
                // Read to the end before waiting: waitUntilExit alone can hang.
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                done.resume(returning: (process.terminationStatus, String(decoding: data, as: UTF8.self)))
            }.start()
        }
    }
}

extension ChildProcess {
    /// Runs `executable` (looked up in PATH) with `arguments` to its end, like `run(_:)`, started
    /// directly with posix_spawn rather than through Foundation's `Process`: for short commands
    /// polled every 100 ms (redis-cli in the Redis Cluster tests).
    static func spawn(_ executable: String, _ arguments: [String]) async throws -> (status: Int32, output: String) {
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        let (readEnd, writeEnd) = (pipeEnds[0], pipeEnds[1])
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 1)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 2)
        posix_spawn_file_actions_addclose(&actions, readEnd)
        posix_spawn_file_actions_addclose(&actions, writeEnd)
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawnp(&pid, executable, &actions, nil, argv, environ)
        close(writeEnd)
        guard spawned == 0 else {
            close(readEnd)
            throw POSIXError(POSIXErrorCode(rawValue: spawned) ?? .EIO)
        }
        let child = pid
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
                var status: Int32 = 0
                while waitpid(child, &status, 0) < 0, errno == EINTR {}
                let exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
                done.resume(returning: (exitStatus, String(decoding: output, as: UTF8.self)))
            }.start()
        }
    }
}
