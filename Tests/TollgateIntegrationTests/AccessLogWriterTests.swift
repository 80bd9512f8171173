import Foundation
import Logging
import ServiceLifecycle
import Testing
import TollgateServer

/// The access-log writer as `serve` runs it: a Service in a ServiceGroup, writing to a real pipe.
@Suite("Access-log writer", .timeLimit(.minutes(1)))
struct AccessLogWriterTests {
    /// A pipe whose read end is drained on a thread of its own (a full pipe would block the
    /// writer) until the write end closes. `collected` is guarded by `lock`.
    final class PipeSink: @unchecked Sendable {
        let pipe = Pipe()
        private var collected = Data()
        private let lock = NSLock()

        init() {
            let handle = pipe.fileHandleForReading
            Thread { [self] in
                while case let data = handle.availableData, !data.isEmpty { lock.withLock { collected.append(data) } }
            }.start()
        }

        var fd: Int32 { pipe.fileHandleForWriting.fileDescriptor }
        var text: String { lock.withLock { String(decoding: collected, as: UTF8.self) } }
    }

    @Test("lines written while it runs and just before shutdown all arrive, in order, once")
    func writesEverythingInOrder() async throws {
        let sink = PipeSink()
        let writer = AccessLogWriter(fd: sink.fd)
        let group = ServiceGroup(services: [writer], logger: Logger(label: "test"))
        let running = Task { try await group.run() }
        for i in 0..<500 { writer.writeLine("line \(i)") }
        try await Task.sleep(for: .milliseconds(250))  // a periodic flush happens meanwhile
        for i in 500..<1000 { writer.writeLine("line \(i)") }
        await group.triggerGracefulShutdown()  // the rest must still be written
        try await running.value
        try sink.pipe.fileHandleForWriting.close()
        var text = ""
        for _ in 0..<100 where !text.hasSuffix("line 999\n") {
            try await Task.sleep(for: .milliseconds(20))
            text = sink.text
        }
        #expect(text == (0..<1000).map { "line \($0)\n" }.joined())
    }

    @Test("a stdout that does not drain costs at most the bound: further lines are dropped, not buffered")
    func dropsPastTheBound() async throws {
        let sink = PipeSink()
        // Lines are appended before the service runs, so nothing is flushed in between.
        let writer = AccessLogWriter(fd: sink.fd, maxBufferedBytes: 100)
        for i in 0..<9 { writer.writeLine("0123456789-\(i)") }   // 13 bytes a line with its newline
        let group = ServiceGroup(services: [writer], logger: Logger(label: "test"))
        let running = Task { try await group.run() }
        await group.triggerGracefulShutdown()
        try await running.value
        try sink.pipe.fileHandleForWriting.close()
        try await Task.sleep(for: .milliseconds(100))
        let lines = sink.text.split(separator: "\n")
        #expect(lines.count == 7)  // 7 × 13 = 91 bytes fit in 100; an 8th would make 104
        #expect(lines.first == "0123456789-0")
        #expect(lines.last == "0123456789-6")
    }
}
