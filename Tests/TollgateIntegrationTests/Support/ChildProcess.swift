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
