import Foundation
import NIOPosix
import TollgateCore

/// Sends the alert as a plain-text e-mail (`AlertEmail`) through an SMTP server, with curl.
/// curl's SMTP transfer is blocking, so it runs on a thread pool, never on an event loop.
public struct EmailSink: AlertSink {
    public let name = "email"
    let settings: TollgateConfig.Alerts.Email
    let threadPool: NIOThreadPool

    /// SMTP submissions block their thread for up to `timeout_seconds`. They get a thread of
    /// their own: on NIO's shared blocking pool (as many threads as cores) a hanging mail server
    /// would hold up everything else queued there, Redis reconnects included.
    public static let submissionPool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        return pool
    }()

    public init(_ settings: TollgateConfig.Alerts.Email, threadPool: NIOThreadPool = EmailSink.submissionPool) {
        self.settings = settings
        self.threadPool = threadPool
    }

    public func deliver(_ alert: BudgetAlert) async throws {
        let now = UnixTime(seconds: Int64(Date().timeIntervalSince1970))
        let message = AlertEmail(from: settings.from, to: settings.to).message(for: alert, date: now)
        let submission = SMTPSubmission(settings: settings, message: Array(message.utf8))
        let failure: AlertDeliveryError?
        do {
            failure = try await threadPool.runIfActive { submission.perform() }
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            // The pool is shut down (the process is stopping): another replica or a restart retries.
            throw AlertDeliveryError(sink: name, isRetriable: true, message: "not sent, the thread pool is stopped: \(error)", hiding: [])
        }
        if let failure { throw failure }
    }
}
