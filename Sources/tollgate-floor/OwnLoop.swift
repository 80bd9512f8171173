import CCurl
import CHiredis
import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1

/// The floor of issue 13's item 3: one run-to-completion loop per core that owns the client
/// sockets, curl's sockets and a Redis socket in one epoll, so a request never changes thread.
/// NIO cannot host this (it has no public way to watch a descriptor it does not own), so the loop
/// is ours: accept, read and write on our sockets; NIO's HTTP/1 codec parses and encodes (driven
/// through an `EmbeddedChannel`, no parser of our own); curl's socket and timer callbacks register
/// with the same epoll; Redis bytes are encoded and decoded by hiredis's I/O-free layer, as
/// Tollgate's `RedisLink` does.
///
/// A prototype for measuring, not a server: no TLS, no limits, no graceful anything.
final class OwnLoop: @unchecked Sendable { // each runs on its own thread, and only there
    private enum Watched {
        case listener
        case client(OwnLoopConnection)
        case redis
    }

    let epoll: Int32
    private let listener: Int32
    let multi: UnsafeMutableRawPointer
    private var watched: [Int32: Watched] = [:]
    private var curlDeadline: ContinuousClock.Instant?
    let base: String
    private var redis: OwnLoopRedis?
    private var idleHandles: [UnsafeMutableRawPointer] = []

    init(port: Int, base: String, redisPort: Int?) throws {
        self.base = base
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        listener = try Self.listen(port: port)
        multi = curl_multi_init()
        watched[listener] = .listener
        guard tg_epoll_watch(epoll, EPOLL_CTL_ADD, listener, EPOLLIN.rawValue) == 0 else { throw FloorError("epoll_ctl: \(FloorError.errno)") }
        let me = Unmanaged.passUnretained(self).toOpaque()
        _ = tg_multi_setopt_pointer(multi, CURLMOPT_SOCKETDATA, me)
        _ = tg_multi_setopt_pointer(multi, CURLMOPT_TIMERDATA, me)
        _ = tg_multi_setopt_socket_callback(multi) { _, socket, what, userp, _ in
            let loop = Unmanaged<OwnLoop>.fromOpaque(userp!).takeUnretainedValue()
            if what == CURL_POLL_REMOVE {
                _ = tg_epoll_watch(loop.epoll, EPOLL_CTL_DEL, socket, 0)
            } else if tg_epoll_watch(loop.epoll, EPOLL_CTL_MOD, socket, tg_epoll_events_for_curl(what)) != 0 {
                _ = tg_epoll_watch(loop.epoll, EPOLL_CTL_ADD, socket, tg_epoll_events_for_curl(what))
            }
            return 0
        }
        _ = tg_multi_setopt_timer_callback(multi) { _, milliseconds, userp in
            let loop = Unmanaged<OwnLoop>.fromOpaque(userp!).takeUnretainedValue()
            loop.curlDeadline = milliseconds < 0 ? nil : .now + .milliseconds(milliseconds)
            return 0
        }
        if let redisPort {
            let redis = try OwnLoopRedis(port: redisPort, epoll: epoll)
            self.redis = redis
            watched[redis.fd] = .redis
            _ = tg_epoll_watch(epoll, EPOLL_CTL_ADD, redis.fd, EPOLLIN.rawValue)
        }
    }

    private static func listen(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, Glibc.listen(fd, 1024) == 0 else { throw FloorError("cannot listen on 127.0.0.1:\(port): \(FloorError.errno)") }
        return fd
    }

    func run() -> Never {
        var fds = [Int32](repeating: 0, count: 256), flags = [Int32](repeating: 0, count: 256)
        var running: Int32 = 0
        while true {
            redis?.flush()
            var timeout: Int32 = 1000
            if let deadline = curlDeadline {
                let left = deadline - .now
                timeout = left <= .zero ? 0 : min(timeout, Int32(left.components.attoseconds / 1_000_000_000_000_000 + left.components.seconds * 1000 + 1))
            }
            let count = tg_epoll_wait(epoll, &fds, &flags, 256, timeout)
            if count < 0 { fatalError("epoll_wait: \(FloorError.errno)") }
            for i in 0..<Int(count) {
                let fd = fds[i]
                switch watched[fd] {
                case .listener?: accept()
                case .client(let connection)?:
                    if flags[i] & CURL_CSELECT_OUT != 0 { connection.flush() }
                    if flags[i] & (CURL_CSELECT_IN | CURL_CSELECT_ERR) != 0 { connection.readable() }
                case .redis?:
                    if flags[i] & CURL_CSELECT_OUT != 0 { redis?.flush() }
                    if flags[i] & (CURL_CSELECT_IN | CURL_CSELECT_ERR) != 0 { redis?.readable() }
                case nil: curl_multi_socket_action(multi, fd, flags[i], &running)
                }
            }
            if let deadline = curlDeadline, deadline <= .now {
                curlDeadline = nil
                _ = tg_multi_socket_timeout(multi, &running)
            }
            finishTransfers()
        }
    }

    private func accept() {
        while true {
            let fd = Glibc.accept(listener, nil, nil)
            guard fd >= 0 else { return }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            watched[fd] = .client(OwnLoopConnection(fd: fd, loop: self))
            _ = tg_epoll_watch(epoll, EPOLL_CTL_ADD, fd, EPOLLIN.rawValue)
        }
    }

    func closed(_ connection: OwnLoopConnection) {
        _ = tg_epoll_watch(epoll, EPOLL_CTL_DEL, connection.fd, 0)
        watched[connection.fd] = nil
        close(connection.fd)
    }

    func wantsWrite(_ connection: OwnLoopConnection, _ on: Bool) {
        _ = tg_epoll_watch(epoll, EPOLL_CTL_MOD, connection.fd, EPOLLIN.rawValue | (on ? EPOLLOUT.rawValue : 0))
    }

    /// A request whose head and body are in: one Redis round trip first when there is a Redis.
    func requested(_ head: HTTPRequestHead, body: [UInt8], by connection: OwnLoopConnection) {
        guard let redis else { return forward(head, body: body, for: connection) }
        redis.ping { [self] in forward(head, body: body, for: connection) }
    }

    private func forward(_ head: HTTPRequestHead, body: [UInt8], for connection: OwnLoopConnection) {
        let easy = idleHandles.popLast() ?? curl_easy_init()!
        let transfer = OwnLoopTransfer(connection: connection)
        _ = tg_easy_setopt_string(easy, CURLOPT_URL, base + head.uri)
        _ = tg_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        _ = tg_easy_setopt_long(easy, CURLOPT_POST, 1)
        _ = tg_easy_setopt_off_t(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
        _ = body.withUnsafeBufferPointer { tg_easy_setopt_pointer(easy, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: $0.baseAddress!)) }
        for (name, value) in head.headers where !FloorHandler.notForwarded.contains(name.lowercased()) {
            transfer.headerList = curl_slist_append(transfer.headerList, "\(name): \(value)")
        }
        transfer.headerList = curl_slist_append(transfer.headerList, "Expect:")
        _ = tg_easy_setopt_slist(easy, CURLOPT_HTTPHEADER, transfer.headerList)
        let me = Unmanaged.passRetained(transfer).toOpaque()
        _ = tg_easy_setopt_pointer(easy, CURLOPT_PRIVATE, me)
        _ = tg_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, me)
        _ = tg_easy_setopt_pointer(easy, CURLOPT_HEADERDATA, me)
        _ = tg_easy_setopt_data_callback(easy, CURLOPT_WRITEFUNCTION) { data, size, count, userdata in
            let transfer = Unmanaged<OwnLoopTransfer>.fromOpaque(userdata!).takeUnretainedValue()
            transfer.body.append(contentsOf: UnsafeRawBufferPointer(start: data, count: size * count))
            return size * count
        }
        _ = tg_easy_setopt_data_callback(easy, CURLOPT_HEADERFUNCTION) { data, size, count, userdata in
            let transfer = Unmanaged<OwnLoopTransfer>.fromOpaque(userdata!).takeUnretainedValue()
            let line = String(decoding: UnsafeRawBufferPointer(start: data, count: size * count), as: UTF8.self)
            if let colon = line.firstIndex(of: ":") {
                let name = String(line[..<colon])
                if !FloorHandler.notForwarded.contains(name.lowercased()) {
                    transfer.headers.append((name, line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)))
                }
            } else if line.hasPrefix("HTTP/") {
                transfer.headers.removeAll()
            }
            return size * count
        }
        curl_multi_add_handle(multi, easy)
    }

    private func finishTransfers() {
        var left: Int32 = 0
        while let message = curl_multi_info_read(multi, &left) {
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
            var userdata: UnsafeMutableRawPointer?
            _ = tg_easy_getinfo_pointer(easy, CURLINFO_PRIVATE, &userdata)
            let transfer = Unmanaged<OwnLoopTransfer>.fromOpaque(userdata!).takeRetainedValue()
            var status = 0
            _ = tg_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
            let ok = tg_msg_result(message) == CURLE_OK
            curl_multi_remove_handle(multi, easy)
            curl_easy_reset(easy)
            idleHandles.append(easy)
            curl_slist_free_all(transfer.headerList)
            transfer.connection.answer(status: ok ? status : 502, headers: ok ? transfer.headers : [], body: ok ? transfer.body : Array("upstream failed\n".utf8))
        }
    }
}

/// Why a loop could not start, in words.
struct FloorError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
    static var errno: String { String(cString: strerror(Glibc.errno)) }
}

final class OwnLoopTransfer {
    let connection: OwnLoopConnection
    var headerList: UnsafeMutablePointer<curl_slist>?
    var headers: [(String, String)] = []
    var body: [UInt8] = []

    init(connection: OwnLoopConnection) { self.connection = connection }
}

/// A client connection: bytes from the socket go through NIO's HTTP/1 decoder; the answer goes
/// through NIO's encoder and out in one write.
final class OwnLoopConnection {
    let fd: Int32
    unowned let loop: OwnLoop
    private let codec = EmbeddedChannel()
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var unwritten: [UInt8] = []
    private var closed = false

    init(fd: Int32, loop: OwnLoop) {
        self.fd = fd
        self.loop = loop
        try! codec.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false)
    }

    func readable() {
        var buffer = codec.allocator.buffer(capacity: 16 << 10)
        while true {
            var n = 0
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 16 << 10) {
                n = read(fd, $0.baseAddress, $0.count)
                return max(n, 0)
            }
            if n > 0 { continue }
            if n == 0 || errno != EAGAIN { return close() }
            break
        }
        do {
            try codec.writeInbound(buffer)
            while let part = try codec.readInbound(as: HTTPServerRequestPart.self) {
                switch part {
                case .head(let h):
                    head = h
                    body.removeAll(keepingCapacity: true)
                case .body(let chunk): body.append(contentsOf: chunk.readableBytesView)
                case .end:
                    if let head { loop.requested(head, body: body, by: self) }
                    head = nil
                }
            }
        } catch {
            close()
        }
    }

    func answer(status: Int, headers: [(String, String)], body: [UInt8]) {
        guard !closed else { return }
        var fields = HTTPHeaders(headers)
        fields.replaceOrAdd(name: "content-length", value: String(body.count))
        var buffer = codec.allocator.buffer(capacity: body.count)
        buffer.writeBytes(body)
        // An embedded channel's writes fail only once it is closed; then nothing is sent anyway.
        _ = try? codec.writeOutbound(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: fields)))
        _ = try? codec.writeOutbound(HTTPServerResponsePart.body(.byteBuffer(buffer)))
        _ = try? codec.writeOutbound(HTTPServerResponsePart.end(nil))
        while let out = try? codec.readOutbound(as: IOData.self) {
            if case .byteBuffer(let bytes) = out { unwritten.append(contentsOf: bytes.readableBytesView) }
        }
        flush()
    }

    func flush() {
        guard !closed, !unwritten.isEmpty else { return }
        let n = unwritten.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno != EAGAIN { close() } else { loop.wantsWrite(self, true) }
            return
        }
        unwritten.removeFirst(n)
        loop.wantsWrite(self, !unwritten.isEmpty)
    }

    private func close() {
        guard !closed else { return }
        closed = true
        loop.closed(self)
    }
}

/// One Redis connection of the loop: commands encoded and replies decoded by hiredis's I/O-free
/// layer, the socket read and written by the loop.
final class OwnLoopRedis {
    let fd: Int32
    private let epoll: Int32
    private var wantsWrite = false
    private let reader: UnsafeMutablePointer<redisReader>
    private var unwritten: [UInt8] = []
    private var waiting: [() -> Void] = []
    private var first = 0
    private static let ping = Array("*1\r\n$4\r\nPING\r\n".utf8)

    init(port: Int, epoll: Int32) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        self.fd = fd
        self.epoll = epoll
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var connected: Int32 = -1
        for _ in 0..<100 { // Redis may still be starting: up to 5 s
            connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            if connected == 0 { break }
            usleep(50_000)
        }
        reader = redisReaderCreate()
        guard connected == 0 else { throw FloorError("cannot reach Redis on 127.0.0.1:\(port) (tried for 5 s): \(FloorError.errno)") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    /// Written with the loop's other commands of this turn (`flush`, before the loop waits).
    func ping(_ then: @escaping () -> Void) {
        unwritten.append(contentsOf: Self.ping)
        waiting.append(then)
    }

    /// What the socket does not take now goes when it is writable again.
    func flush() {
        guard !unwritten.isEmpty else { return }
        let n = unwritten.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n > 0 { unwritten.removeFirst(n) }
        if wantsWrite != !unwritten.isEmpty {
            wantsWrite.toggle()
            _ = tg_epoll_watch(epoll, EPOLL_CTL_MOD, fd, EPOLLIN.rawValue | (wantsWrite ? EPOLLOUT.rawValue : 0))
        }
    }

    func readable() {
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { break }
            _ = chunk.withUnsafeBytes { redisReaderFeed(reader, $0.baseAddress!.assumingMemoryBound(to: CChar.self), n) }
        }
        var reply: UnsafeMutableRawPointer?
        while redisReaderGetReply(reader, &reply) == REDIS_OK, let done = reply {
            freeReplyObject(done)
            reply = nil
            let next = waiting[first]
            first += 1
            if first == waiting.count { waiting.removeAll(keepingCapacity: true); first = 0 }
            next()
        }
    }
}
