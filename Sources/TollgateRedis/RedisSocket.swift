import Glibc

/// The Redis socket, opened here rather than by NIO so the link knows its descriptor: when a
/// reply is overdue, `unreadBytes` tells a silent Redis from an event loop too busy to read
/// (NIO runs every queued task before it polls sockets again). Connecting blocks, so it runs on
/// NIO's thread pool, never on an event loop; it happens only at start and after failures.
enum RedisSocket {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func connect(host: String, port: Int, timeoutMilliseconds: Int) throws -> CInt {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = CInt(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &found)
        guard status == 0, let first = found else {
            throw Failure(description: "cannot resolve \(host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(first) }
        var lastError = "no address for \(host)"
        var candidate: UnsafeMutablePointer<addrinfo>? = first
        while let info = candidate {
            candidate = info.pointee.ai_next
            let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
            guard fd >= 0 else { continue }
            if let why = connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen, timeoutMilliseconds: timeoutMilliseconds) {
                lastError = why
                close(fd)
                continue
            }
            var one: CInt = 1
            _ = setsockopt(fd, CInt(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<CInt>.size))
            return fd
        }
        throw Failure(description: "cannot connect to \(host):\(port): \(lastError)")
    }

    /// A non-blocking connect bounded by the timeout; nil on success, else why it failed.
    private static func connect(_ fd: CInt, _ address: UnsafeMutablePointer<sockaddr>, _ length: socklen_t, timeoutMilliseconds: Int) -> String? {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        if Glibc.connect(fd, address, length) == 0 { return nil }
        guard errno == EINPROGRESS else { return String(cString: strerror(errno)) }
        var waiting = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&waiting, 1, CInt(timeoutMilliseconds)) == 1 else { return "connect timed out after \(timeoutMilliseconds) ms" }
        var error: CInt = 0
        var size = socklen_t(MemoryLayout<CInt>.size)
        _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size)
        return error == 0 ? nil : String(cString: strerror(error))
    }

    /// Bytes received by the kernel that nobody has read yet.
    static func unreadBytes(_ fd: CInt) -> Int {
        var count: CInt = 0
        return ioctl(fd, UInt(FIONREAD), &count) == 0 ? Int(count) : 0
    }
}
