import CCurl
import Foundation

/// One easy handle's state. Touched only by the curl thread (begin, callbacks, end), which is
/// why it can be `@unchecked Sendable`; the outside world sees only the AsyncStream.
final class TransferContext: @unchecked Sendable {
    let request: UpstreamRequest
    let continuation: AsyncStream<UpstreamPart>.Continuation
    var easy: UnsafeMutableRawPointer?
    var headerList: UnsafeMutablePointer<curl_slist>?
    var status = 0
    var headers: [(name: String, value: String)] = []
    var headSent = false
    var finished = false
    /// `request.collectBody`: the body gathered here and handed over once, at the end.
    var collected: [UInt8] = []

    init(request: UpstreamRequest, continuation: AsyncStream<UpstreamPart>.Continuation) {
        self.request = request
        self.continuation = continuation
    }

    func begin(multi: UnsafeMutableRawPointer, settings: UpstreamClient.Settings) -> Bool {
        guard let h = curl_easy_init() else {
            finish(.failed(UpstreamError(kind: .connect, message: "curl_easy_init failed")))
            return false
        }
        easy = h
        tg_easy_setopt_string(h, CURLOPT_URL, request.url)
        tg_easy_setopt_long(h, CURLOPT_NOSIGNAL, 1)
        tg_easy_setopt_long(h, CURLOPT_CONNECTTIMEOUT_MS, settings.connectTimeoutMilliseconds)
        if let ms = request.timeoutMilliseconds {
            tg_easy_setopt_long(h, CURLOPT_TIMEOUT_MS, ms)
        } else {
            tg_easy_setopt_long(h, CURLOPT_TIMEOUT, settings.timeoutSeconds)
        }
        tg_easy_setopt_long(h, CURLOPT_TCP_KEEPALIVE, 1)
        if request.method == "GET" {
            tg_easy_setopt_long(h, CURLOPT_HTTPGET, 1)
        } else {
            tg_easy_setopt_long(h, CURLOPT_POST, 1)
            tg_easy_setopt_off_t(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count))
            request.body.withUnsafeBufferPointer { buf in
                _ = buf.baseAddress.map { tg_easy_setopt_pointer(h, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: $0)) }
            }
            if request.body.isEmpty { tg_easy_setopt_string(h, CURLOPT_COPYPOSTFIELDS, "") }
            if request.method != "POST" { tg_easy_setopt_string(h, CURLOPT_CUSTOMREQUEST, request.method) }
        }
        // An empty Expect: stops curl waiting for 100-continue on bodies over 1 KB.
        for line in request.headers.map({ "\($0.name): \($0.value)" }) + ["Expect:"] {
            headerList = curl_slist_append(headerList, line)
        }
        tg_easy_setopt_slist(h, CURLOPT_HTTPHEADER, headerList)
        let me = Unmanaged.passUnretained(self).toOpaque()
        tg_easy_setopt_pointer(h, CURLOPT_PRIVATE, me)
        tg_easy_setopt_pointer(h, CURLOPT_WRITEDATA, me)
        tg_easy_setopt_pointer(h, CURLOPT_HEADERDATA, me)
        tg_easy_setopt_data_callback(h, CURLOPT_WRITEFUNCTION, { ptr, size, count, userdata in
            let context = Unmanaged<TransferContext>.fromOpaque(userdata!).takeUnretainedValue()
            let n = size * count
            context.received(UnsafeRawBufferPointer(start: ptr, count: n))
            return n
        })
        tg_easy_setopt_data_callback(h, CURLOPT_HEADERFUNCTION, { ptr, size, count, userdata in
            let context = Unmanaged<TransferContext>.fromOpaque(userdata!).takeUnretainedValue()
            let n = size * count
            context.receivedHeader(UnsafeRawBufferPointer(start: ptr, count: n))
            return n
        })
        // The thread's `active` table keeps this object alive while curl holds the pointer.
        curl_multi_add_handle(multi, h)
        return true
    }

    /// Parses one header line on bytes: Foundation's trimming bridges through NSString and was
    /// the largest single cost per request in the profile.
    func receivedHeader(_ line: UnsafeRawBufferPointer) {
        var end = line.count
        while end > 0, Self.isSpace(line[end - 1]) { end -= 1 }
        let bytes = UnsafeRawBufferPointer(rebasing: line[0..<end])
        if bytes.starts(with: Self.statusPrefix) {
            // A new status line (after 100 Continue or a redirect) starts a new header block.
            var i = bytes.firstIndex(of: UInt8(ascii: " ")).map { $0 + 1 } ?? bytes.count
            var code = 0
            while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 { code = code * 10 + Int(bytes[i] - 0x30); i += 1 }
            status = code
            headers.removeAll()
        } else if let colon = bytes.firstIndex(of: UInt8(ascii: ":")) {
            var start = colon + 1
            while start < bytes.count, Self.isSpace(bytes[start]) { start += 1 }
            headers.append((String(decoding: bytes[0..<colon], as: UTF8.self), String(decoding: bytes[start...], as: UTF8.self)))
        }
    }

    static let statusPrefix = Array("HTTP/".utf8)
    static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0D || b == 0x0A }

    func received(_ chunk: UnsafeRawBufferPointer) {
        if request.collectBody {
            collected.append(contentsOf: chunk)
            return
        }
        sendHeadIfNeeded()
        continuation.yield(.body(Array(chunk)))
    }

    func sendHeadIfNeeded() {
        guard !headSent else { return }
        headSent = true
        continuation.yield(.head(UpstreamResponseHead(status: status, headers: headers)))
    }

    func complete(multi: UnsafeMutableRawPointer, result: CURLcode) {
        if result == CURLE_OK {
            end(multi: multi, with: .end)
            return
        }
        let message = String(cString: curl_easy_strerror(result))
        // Only a request that never reached the provider is certainly unbilled. A timeout before
        // any answer may well be after the request was sent (a slow model): that is a transfer
        // failure, charged as such, unless the connection itself was never made.
        let connectFailure = [CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY].contains(result)
            || (result == CURLE_OPERATION_TIMEDOUT && status == 0 && !headSent && !connected)
        end(multi: multi, with: .failed(UpstreamError(kind: connectFailure ? .connect : .transfer, message: message)))
    }

    /// Whether a connection to the provider was made (curl's connect time is 0 until then).
    private var connected: Bool {
        guard let h = easy else { return true }
        var micros: curl_off_t = 0
        guard tg_easy_getinfo_off_t(h, CURLINFO_CONNECT_TIME_T, &micros) == CURLE_OK else { return true }
        return micros > 0
    }

    func end(multi: UnsafeMutableRawPointer, with last: UpstreamPart) {
        if let h = easy {
            curl_multi_remove_handle(multi, h)
            curl_easy_cleanup(h)
            easy = nil
        }
        curl_slist_free_all(headerList)
        headerList = nil
        if !collected.isEmpty {
            sendHeadIfNeeded()
            continuation.yield(.body(collected))
            collected = []
        }
        if case .end = last { sendHeadIfNeeded() }
        finish(last)
    }

    func finish(_ last: UpstreamPart) {
        guard !finished else { return }
        finished = true
        continuation.yield(last)
        continuation.finish()
    }
}
