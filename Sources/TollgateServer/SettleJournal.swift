import Foundation
import Glibc
import Logging
import Metrics
import NIOPosix
import Synchronization
import TollgateCore

/// This replica's durable record of settles that could not reach Redis (`redis.journal.dir`):
/// one append-only file, `settles.journal`, in `SettleJournalFormat`, replayed by `SettleRetrier`
/// once Redis answers again and at the next start after a crash.
///
/// Group commit: appenders queue their record and wait; one thread writes every queued record in
/// one `write` and one `fdatasync`, then wakes them all. Records that arrive during a sync ride
/// in the next batch, so an outage under load costs one sync per batch, not one per request. All
/// file I/O runs on the journal's own thread, never on an event loop.
///
/// Bounded by `maxBytes`: an append that would pass it is refused at once (`.full`), and the
/// settle falls back to retrying in memory.
public final class SettleJournal: Sendable {
    public static let fileName = "settles.journal"

    public enum AppendResult: Sendable, Equatable {
        /// Written and synced to disk.
        case durable
        /// Refused: the journal holds `maxBytes` already.
        case full
        /// The write or the sync failed (disk full, I/O error); the journal is as it was before.
        case failed(String)
    }

    public let path: String
    public let maxBytes: Int
    private let logger: Logger
    private let thread = NIOThreadPool(numberOfThreads: 1)
    private let state: Mutex<State>
    private static var bytesGauge: Gauge { Gauge(label: "tollgate_journal_bytes") }

    private struct State {
        var fd: Int32
        /// Bytes on disk, synced.
        var committed: Int
        /// Bytes queued or being written.
        var pending = 0
        var queue: [(bytes: [UInt8], done: CheckedContinuation<AppendResult, Never>)] = []
        var flushing = false
        var closed = false
    }

    /// Creates the directory if needed and takes the journal file for this process alone (an
    /// exclusive lock: two replicas must not share one journal).
    public init(directory: String, maxBytes: Int, logger: Logger) throws(JournalError) {
        path = directory + "/" + Self.fileName
        self.maxBytes = maxBytes
        self.logger = logger
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw JournalError(path: directory, "cannot create the directory: \(error)")
        }
        let fd = try Self.open(path)
        var info = stat()
        guard fstat(fd, &info) == 0 else { Glibc.close(fd); throw JournalError(path: path, "cannot stat: \(errnoText())") }
        state = Mutex(State(fd: fd, committed: Int(info.st_size)))
        Self.bytesGauge.record(Int(info.st_size))
        thread.start()
    }

    private static func open(_ path: String) throws(JournalError) -> Int32 {
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw JournalError(path: path, "cannot open: \(errnoText())") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            Glibc.close(fd)
            throw JournalError(path: path, "is in use by another process: give each replica its own redis.journal.dir")
        }
        return fd
    }

    /// Bytes in the journal now (synced), for `tollgate_journal_bytes` and tests.
    public var bytes: Int { state.withLock { $0.committed } }

    /// Returns once the record is on disk (`.durable`), or at once when it does not fit.
    public func append(_ settle: JournaledSettle) async -> AppendResult {
        let record = SettleJournalFormat.encode(settle)
        return await withCheckedContinuation { done in
            let startFlush: Bool? = state.withLock { s in
                guard !s.closed else { return nil }
                guard s.committed + s.pending + record.count <= maxBytes else { return nil }
                s.queue.append((record, done))
                s.pending += record.count
                defer { s.flushing = true }
                return !s.flushing
            }
            switch startFlush {
            case nil: done.resume(returning: state.withLock { $0.closed } ? .failed("the journal is closed") : .full)
            case true?: thread.submit { [self] _ in flushUntilEmpty() }
            case false?: break
            }
        }
    }

    /// The group commit loop, on the journal thread: one write and one sync per batch.
    private func flushUntilEmpty() {
        while true {
            let next: (fd: Int32, good: Int, batch: [(bytes: [UInt8], done: CheckedContinuation<AppendResult, Never>)])? = state.withLock { s in
                guard !s.queue.isEmpty else { s.flushing = false; return nil }
                defer { s.queue = [] }
                return (s.fd, s.committed, s.queue)
            }
            guard let next else { return }
            let (fd, good, batch) = next
            var bytes: [UInt8] = []
            for item in batch { bytes += item.bytes }
            let result: AppendResult
            if let failure = Self.writeAll(fd, bytes) ?? (fdatasync(fd) == 0 ? nil : "fdatasync: \(errnoText())") {
                // Cut back to the last good record, so the next batch does not follow half a line.
                _ = ftruncate(fd, off_t(good))
                result = .failed(failure)
                logger.error("settle journal write failed", metadata: ["path": "\(path)", "error": "\(failure)"])
            } else {
                result = .durable
            }
            let total = state.withLock { s in
                s.pending -= bytes.count
                if result == .durable { s.committed += bytes.count }
                return s.committed
            }
            Self.bytesGauge.record(total)
            for item in batch { item.done.resume(returning: result) }
        }
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> String? {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                return "write: \(errnoText())"
            }
            offset += n
        }
        return nil
    }

    /// Everything in the journal now, read on the journal thread (after any batch being written).
    public func read() async throws -> SettleJournalFormat.Scan {
        try await onThread { [path] _ in SettleJournalFormat.scan(try Self.contents(path)) }
    }

    /// Removes the records of these lease members (replayed into Redis), keeping any written
    /// since they were read. The rest is rewritten to a new file that replaces the old one in
    /// one rename, so a crash leaves either the old journal or the new one, never half of each.
    public func remove(leases replayed: Set<String>) async throws {
        try await onThread { [self] fd in
            let scan = SettleJournalFormat.scan(try Self.contents(path))
            let keep = scan.settles.filter { !replayed.contains($0.lease.member) }.flatMap(SettleJournalFormat.encode)
            if keep.isEmpty {
                guard ftruncate(fd, 0) == 0, fsync(fd) == 0 else { throw JournalError(path: path, "cannot truncate: \(errnoText())") }
                state.withLock { $0.committed = 0 }
            } else {
                let next = try replace(with: keep)
                state.withLock { s in
                    Glibc.close(s.fd)
                    s.fd = next
                    s.committed = keep.count
                }
            }
            Self.bytesGauge.record(keep.count)
        }
    }

    private func replace(with bytes: [UInt8]) throws(JournalError) -> Int32 {
        let temporary = path + ".compacting"
        let fd = Glibc.open(temporary, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw JournalError(path: temporary, "cannot open: \(errnoText())") }
        if let failure = Self.writeAll(fd, bytes) ?? (fsync(fd) == 0 ? nil : "fsync: \(errnoText())") {
            Glibc.close(fd)
            throw JournalError(path: temporary, failure)
        }
        guard rename(temporary, path) == 0 else { Glibc.close(fd); throw JournalError(path: path, "cannot replace: \(errnoText())") }
        let directory = Glibc.open((path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 { _ = fsync(directory); Glibc.close(directory) }
        _ = flock(fd, LOCK_EX | LOCK_NB)
        return fd
    }

    private static func contents(_ path: String) throws(JournalError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else { throw JournalError(path: path, "cannot read") }
        return Array(data)
    }

    /// Runs `body` on the journal thread with the current file descriptor.
    private func onThread<T: Sendable>(_ body: @escaping @Sendable (Int32) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<T, any Error>) in
            thread.submit { [self] work in
                guard case .active = work else { return done.resume(throwing: JournalError(path: path, "the journal is closed")) }
                done.resume(with: Result { try body(state.withLock { $0.fd }) })
            }
        }
    }

    /// Stops the journal thread after the writes queued so far; later appends fail. Idempotent.
    public func close() {
        guard !state.withLock({ s in defer { s.closed = true }; return s.closed }) else { return }
        thread.submit { [self] _ in state.withLock { s in _ = Glibc.close(s.fd); s.fd = -1 } }
        thread.shutdownGracefully { _ in }
    }
}

public struct JournalError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    init(path: String, _ reason: String) {
        self.path = path
        self.reason = reason
    }
    public var description: String { "settle journal \(path): \(reason)" }
}

private func errnoText() -> String { String(cString: strerror(errno)) }
