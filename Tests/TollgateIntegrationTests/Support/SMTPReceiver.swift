import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// A tiny SMTP server on a free loopback port that records what it is sent: enough of RFC 5321
/// for curl (EHLO with `AUTH PLAIN LOGIN`, AUTH, MAIL, RCPT, DATA, QUIT). No STARTTLS: it is not
/// advertised, so a client that requires it must refuse to send.
///
/// Knobs, so tests can provoke answers: a recipient starting `reject@` gets 550 (permanent), one
/// starting `busy@` gets 451 (try later); the password `wrong` gets 535.
final class SMTPReceiver: Sendable {
    struct Mail: Sendable {
        /// (username, password) when the client authenticated.
        var credentials: (String, String)?
        var from = ""
        var recipients: [String] = []
        /// The message as sent after DATA, dot-stuffing undone, CRLF line ends.
        var message = ""
    }

    final class Mailbox: Sendable {
        let mails = Mutex<[Mail]>([])
    }

    let port: Int
    private let channel: any Channel
    private let mailbox: Mailbox

    var received: [Mail] { mailbox.mails.withLock { $0 } }
    var url: String { "smtp://127.0.0.1:\(port)" }

    private init(channel: any Channel, mailbox: Mailbox) {
        self.channel = channel
        self.mailbox = mailbox
        port = channel.localAddress?.port ?? 0
    }

    static func start() async throws -> SMTPReceiver {
        let mailbox = Mailbox()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(SMTPSession { mail in mailbox.mails.withLock { $0.append(mail) } })
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return SMTPReceiver(channel: channel, mailbox: mailbox)
    }

    func stop() async {
        try? await channel.close()
    }
}

/// One SMTP connection: a line-at-a-time state machine.
private final class SMTPSession: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum State { case command, authPlain, authLoginUser, authLoginPassword(String), data }

    let delivered: @Sendable (SMTPReceiver.Mail) -> Void
    var state = State.command
    var pending: [UInt8] = []
    var mail = SMTPReceiver.Mail()
    var credentials: (String, String)?
    var dataLines: [String] = []

    init(delivered: @escaping @Sendable (SMTPReceiver.Mail) -> Void) { self.delivered = delivered }

    func channelActive(context: ChannelHandlerContext) {
        reply(context, "220 tollgate-test ESMTP")
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        pending += buffer.readBytes(length: buffer.readableBytes) ?? []
        while let end = pending.firstIndex(of: UInt8(ascii: "\n")) {
            var line = pending[..<end]
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            pending.removeSubrange(...end)
            handle(String(decoding: line, as: UTF8.self), context)
        }
    }

    func handle(_ line: String, _ context: ChannelHandlerContext) {
        let upper = line.uppercased()
        switch state {
        case .data:
            if line == "." {
                mail.message = dataLines.map { $0 + "\r\n" }.joined()
                mail.credentials = credentials
                delivered(mail)
                mail = SMTPReceiver.Mail()
                dataLines = []
                state = .command
                reply(context, "250 OK queued")
            } else {
                dataLines.append(line.hasPrefix("..") ? String(line.dropFirst()) : line)
            }
        case .authPlain:
            state = .command
            authenticatePlain(line, context)
        case .authLoginUser:
            state = .authLoginPassword(Self.unbase64(line))
            reply(context, "334 UGFzc3dvcmQ6")
        case .authLoginPassword(let user):
            state = .command
            authenticate(user, Self.unbase64(line), context)
        case .command:
            if upper.hasPrefix("EHLO") {
                reply(context, "250-tollgate-test\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME")
            } else if upper.hasPrefix("HELO") {
                reply(context, "250 tollgate-test")
            } else if upper.hasPrefix("AUTH PLAIN ") {
                authenticatePlain(String(line.dropFirst("AUTH PLAIN ".count)), context)
            } else if upper == "AUTH PLAIN" {
                state = .authPlain
                reply(context, "334 ")
            } else if upper.hasPrefix("AUTH LOGIN") {
                state = .authLoginUser
                reply(context, "334 VXNlcm5hbWU6")
            } else if upper.hasPrefix("MAIL FROM:") {
                mail.from = Self.address(line)
                reply(context, "250 OK")
            } else if upper.hasPrefix("RCPT TO:") {
                let to = Self.address(line)
                if to.hasPrefix("reject@") {
                    reply(context, "550 no such mailbox")
                } else if to.hasPrefix("busy@") {
                    reply(context, "451 try again later")
                } else {
                    mail.recipients.append(to)
                    reply(context, "250 OK")
                }
            } else if upper == "DATA" {
                state = .data
                reply(context, "354 end with <CRLF>.<CRLF>")
            } else if upper == "QUIT" {
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "221 bye\r\n"))).whenComplete { _ in context.close(promise: nil) }
            } else if upper == "RSET" || upper == "NOOP" {
                reply(context, "250 OK")
            } else {
                reply(context, "502 not implemented")
            }
        }
    }

    /// `\0user\0password`, base64.
    func authenticatePlain(_ encoded: String, _ context: ChannelHandlerContext) {
        let parts = Self.unbase64(encoded).split(separator: "\0", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3 else { return reply(context, "501 malformed AUTH PLAIN") }
        authenticate(parts[1], parts[2], context)
    }

    func authenticate(_ user: String, _ password: String, _ context: ChannelHandlerContext) {
        guard password != "wrong" else { return reply(context, "535 authentication failed") }
        credentials = (user, password)
        reply(context, "235 authenticated")
    }

    func reply(_ context: ChannelHandlerContext, _ text: String) {
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: text + "\r\n")), promise: nil)
    }

    static func address(_ line: String) -> String {
        guard let open = line.firstIndex(of: "<"), let close = line[open...].firstIndex(of: ">") else { return "" }
        return String(line[line.index(after: open)..<close])
    }

    static func unbase64(_ s: String) -> String {
        Data(base64Encoded: s.trimmingCharacters(in: .whitespaces)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }
}
