import Foundation

/// One exchange on a raw TCP socket, for what HTTP clients never send: half a request head,
/// HTTP/1.0, a write side shut after the request. Python does the socket work in a child
/// process (see ChildProcess: no blocking on Swift's cooperative pool).
enum RawHTTP {
    struct Exchange {
        /// Everything the server sent.
        var response: String
        /// The server closed the connection (EOF) within `waitForClose`.
        var closedByServer: Bool
        /// Seconds from the last byte sent to the server's EOF (when it closed).
        var secondsToClose: Double?
    }

    /// When a socket is closed with a TCP reset (SO_LINGER 0), as a crashed or killed client's is.
    enum Reset {
        /// Once a whole answer (its head and its Content-Length of body) has been read.
        case afterAnswer
        /// Once the file at this path exists (the test creates it when the server is where it wants).
        case whenFileExists(String)

        var argument: String {
            switch self {
            case .afterAnswer: "answered"
            case .whenFileExists(let path): "file:" + path
            }
        }
    }

    /// Sends `request`, optionally shuts the write side, then reads until EOF or until
    /// `waitForClose` seconds pass with the connection still open, or, with `reset`, until its
    /// point comes, and then resets the connection.
    static func exchange(port: Int, _ request: String, shutdownWrite: Bool = false, waitForClose: Double = 5,
                         reset: Reset? = nil) async throws -> Exchange {
        let script = """
            import os, re, socket, struct, sys, time
            port, payload, shut, wait = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3] == "1", float(sys.argv[4])
            reset = sys.argv[5]
            def answered(data):
                head, sep, body = data.partition(b"\\r\\n\\r\\n")
                length = re.search(rb"(?i)\\r\\ncontent-length: *(\\d+)", head)
                return bool(sep) and length is not None and len(body) >= int(length.group(1))
            def due(data):
                if reset == "answered": return answered(data)
                return reset.startswith("file:") and os.path.exists(reset[5:])
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(payload)
            if shut: s.shutdown(socket.SHUT_WR)
            sent = time.monotonic()
            data, closed, took = b"", False, -1.0
            deadline = sent + wait
            while True:
                if reset and due(data): break
                left = deadline - time.monotonic()
                if left <= 0: break
                s.settimeout(min(left, 0.05) if reset else left)
                try:
                    part = s.recv(65536)
                except socket.timeout:
                    if reset: continue  # a poll: is its point due yet?
                    break
                except ConnectionResetError:
                    closed, took = True, time.monotonic() - sent
                    break
                if not part:
                    closed, took = True, time.monotonic() - sent
                    break
                data += part
            if reset and due(data):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
            sys.stdout.write(("CLOSED %.3f\\n" % took if closed else "OPEN\\n") + data.decode("utf-8", "replace"))
            """
        let (status, output) = try await ChildProcess.run(
            "python3", ["-c", script, String(port), request, shutdownWrite ? "1" : "0", String(waitForClose), reset?.argument ?? ""])
        guard status == 0, let newline = output.firstIndex(of: "\n") else { throw RawHTTPError(output: output) }
        let first = output[..<newline]
        let closed = first.hasPrefix("CLOSED")
        return Exchange(response: String(output[output.index(after: newline)...]), closedByServer: closed,
                        secondsToClose: closed ? Double(first.dropFirst("CLOSED ".count)) : nil)
    }

    struct RawHTTPError: Error, CustomStringConvertible {
        let output: String
        var description: String { "raw HTTP exchange failed: \(output)" }
    }

    static func post(_ path: String, _ body: String, version: String = "HTTP/1.1", headers: [String] = []) -> String {
        ([ "POST \(path) \(version)", "Host: 127.0.0.1", "Content-Type: application/json", "Content-Length: \(body.utf8.count)"] + headers)
            .joined(separator: "\r\n") + "\r\n\r\n" + body
    }
}
