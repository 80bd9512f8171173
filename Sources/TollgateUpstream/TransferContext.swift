import CCurl
import Foundation
import Logging
import Synchronization

/// One easy handle's state. Touched only by the curl thread (begin, callbacks, end), which is
/// why it can be `@unchecked Sendable`; the outside world sees only `UpstreamParts`, and the
/// reader's side (`TransferDemand`) reads nothing here but `isDelivered`.
final class TransferContext: @unchecked Sendable {
    /// Its body and headers are dropped once curl has its own copies (`begin`): a stream keeps
    /// this object for its whole life.
    private(set) var request: UpstreamRequest
    /// A streamed reader's side (`UpstreamClient.start`): parts go through its bounded buffer.
    var source: UpstreamParts.Producer.Source!
    let buffer: TransferBuffer?
    /// An answer handed over whole (`UpstreamClient.collect`): its status, headers and
    /// `collected` body are left in the slot when the transfer ends (`finish`).
    let wholeAnswer: AnswerSlot?
    var easy: UnsafeMutableRawPointer?
    var headerList: UnsafeMutablePointer<curl_slist>?
    var status = 0
    var headers: [(name: String, value: String)] = []
    var headSent = false
    var finished = false
    /// `request.collectBody`: the body gathered here and handed over once, at the end.
    var collected: [UInt8] = []
    /// A stream's bytes of this turn of the curl loop, handed over when the turn ends
    /// (`UpstreamClient.deliverPendingBodies`), when the transfer does, or on reaching
    /// `pendingLimit`, so back-pressure still sees them: a transfer holds at most the high
    /// watermark plus one part.
    var pending: [UInt8] = []
    var pendingListed = false
    static let pendingLimit = 16 << 10
    /// Whose turn: the curl thread's list of transfers with pending bytes. Unowned: the client
    /// outlives its transfers (its thread ends them all before it stops).
    unowned let client: UpstreamClient
    /// The reader asked us to stop (`stopProducing`): the next chunk is refused with
    /// `CURL_WRITEFUNC_PAUSE`, which curl keeps and delivers again after `resume`.
    var paused = false
    /// curl holds a refused chunk and reads nothing until `curl_easy_pause(CURLPAUSE_CONT)`.
    var curlPaused = false
    /// Header bytes of this answer so far (all header blocks), against `maxHeaderBytes`.
    var headerBytes = 0
    let maxHeaderBytes: Int
    /// Against `collected`: an answer gathered whole must not hold unbounded memory.
    let maxCollectedBytes: Int
    /// The bound that stopped this transfer, so its failure says which (`complete`).
    var limitHit: UpstreamLimit?
    /// The last part has been handed to the producer: a reader leaving now cancels nothing.
    private let delivered = Atomic<Bool>(false)
    var isDelivered: Bool { delivered.load(ordering: .acquiring) }

    init(request: UpstreamRequest, buffer: TransferBuffer?, wholeAnswer: AnswerSlot?, maxHeaderBytes: Int, maxCollectedBytes: Int,
         client: UpstreamClient) {
        self.client = client
        self.request = request
        self.buffer = buffer
        self.wholeAnswer = wholeAnswer
        self.maxHeaderBytes = maxHeaderBytes
        self.maxCollectedBytes = maxCollectedBytes
    }

    /// A refused option is a failed transfer with a message that names it, never a transfer that
    /// runs with half its settings.
    struct OptionRefused: Error {
        let message: String
    }

    func begin(multi: UnsafeMutableRawPointer, settings: UpstreamClient.Settings) -> Bool {
        guard let h = client.takeHandle(collecting: request.collectBody) else {
            finish(.failed(UpstreamError(kind: .connect, message: "curl_easy_init failed")))
            return false
        }
        easy = h
        do {
            try configure(h, settings: settings)
        } catch {
            // Not yet added to the multi handle: clean up here and say which option failed.
            client.recycle(h, collecting: request.collectBody)
            easy = nil
            curl_slist_free_all(headerList)
            headerList = nil
            finish(.failed(UpstreamError(kind: .connect, message: error.message)))
            return false
        }
        request.body = [] // COPYPOSTFIELDS and the header list hold curl's copies
        request.headers = []
        // The thread's `active` table keeps this object alive while curl holds the pointer.
        let added = curl_multi_add_handle(multi, h)
        guard added == CURLM_OK else {
            client.recycle(h, collecting: request.collectBody)
            easy = nil
            curl_slist_free_all(headerList)
            headerList = nil
            finish(.failed(UpstreamError(kind: .connect, message: "curl_multi_add_handle failed: \(String(cString: curl_multi_strerror(added)))")))
            return false
        }
        return true
    }

    private func configure(_ h: UnsafeMutableRawPointer, settings: UpstreamClient.Settings) throws(OptionRefused) {
        func check(_ code: CURLcode, _ option: String) throws(OptionRefused) {
            guard code != CURLE_OK else { return }
            throw OptionRefused(message: "libcurl refused \(option): \(String(cString: curl_easy_strerror(code)))")
        }
        try check(tg_easy_setopt_string(h, CURLOPT_URL, request.url), "CURLOPT_URL")
        try check(tg_easy_setopt_long(h, CURLOPT_NOSIGNAL, 1), "CURLOPT_NOSIGNAL")
        try check(tg_easy_setopt_long(h, CURLOPT_CONNECTTIMEOUT_MS, settings.connectTimeoutMilliseconds), "CURLOPT_CONNECTTIMEOUT_MS")
        if let ms = request.timeoutMilliseconds {
            try check(tg_easy_setopt_long(h, CURLOPT_TIMEOUT_MS, ms), "CURLOPT_TIMEOUT_MS")
        } else {
            try check(tg_easy_setopt_long(h, CURLOPT_TIMEOUT, settings.timeoutSeconds), "CURLOPT_TIMEOUT")
        }
        try check(tg_easy_setopt_long(h, CURLOPT_TCP_KEEPALIVE, 1), "CURLOPT_TCP_KEEPALIVE")
        // A streamed answer arrives an event at a time, and its transfer lives as long as the
        // stream: curl's receive buffer (16 KiB by default, allocated per transfer) is cut to
        // 1 KiB for it, 3 KiB less per open stream. A burst larger than that takes more
        // callbacks, but its reader still gets one part per turn of the curl loop (`pending`).
        // An answer gathered whole keeps the default, for fewer callbacks.
        if !request.collectBody { try check(tg_easy_setopt_long(h, CURLOPT_BUFFERSIZE, 1_024), "CURLOPT_BUFFERSIZE") }
        if request.method == "GET" {
            try check(tg_easy_setopt_long(h, CURLOPT_HTTPGET, 1), "CURLOPT_HTTPGET")
        } else {
            try check(tg_easy_setopt_long(h, CURLOPT_POST, 1), "CURLOPT_POST")
            try check(tg_easy_setopt_off_t(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count)), "CURLOPT_POSTFIELDSIZE_LARGE")
            let copied = request.body.isEmpty
                ? tg_easy_setopt_string(h, CURLOPT_COPYPOSTFIELDS, "")
                : request.body.withUnsafeBufferPointer { tg_easy_setopt_pointer(h, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: $0.baseAddress!)) }
            try check(copied, "CURLOPT_COPYPOSTFIELDS")
            if request.method != "POST" { try check(tg_easy_setopt_string(h, CURLOPT_CUSTOMREQUEST, request.method), "CURLOPT_CUSTOMREQUEST") }
        }
        for header in request.headers { try appendHeaderLine(header.name, header.value) }
        // An empty Expect: stops curl waiting for 100-continue on bodies over 1 KB.
        try appendHeaderLine("Expect:", nil)
        try check(tg_easy_setopt_slist(h, CURLOPT_HTTPHEADER, headerList), "CURLOPT_HTTPHEADER")
        let me = Unmanaged.passUnretained(self).toOpaque()
        try check(tg_easy_setopt_pointer(h, CURLOPT_PRIVATE, me), "CURLOPT_PRIVATE")
        try check(tg_easy_setopt_pointer(h, CURLOPT_WRITEDATA, me), "CURLOPT_WRITEDATA")
        try check(tg_easy_setopt_pointer(h, CURLOPT_HEADERDATA, me), "CURLOPT_HEADERDATA")
        // Both callbacks may run inside `curl_easy_pause` (see `resume`), so they only touch this
        // object's state, never the multi handle.
        try check(tg_easy_setopt_data_callback(h, CURLOPT_WRITEFUNCTION) { ptr, size, count, userdata in
            let context = Unmanaged<TransferContext>.fromOpaque(userdata!).takeUnretainedValue()
            return context.received(UnsafeRawBufferPointer(start: ptr, count: size * count))
        }, "CURLOPT_WRITEFUNCTION")
        try check(tg_easy_setopt_data_callback(h, CURLOPT_HEADERFUNCTION) { ptr, size, count, userdata in
            let context = Unmanaged<TransferContext>.fromOpaque(userdata!).takeUnretainedValue()
            let n = size * count
            // Returning less than n makes curl fail the transfer (CURLE_WRITE_ERROR).
            return context.receivedHeader(UnsafeRawBufferPointer(start: ptr, count: n)) ? n : 0
        }, "CURLOPT_HEADERFUNCTION")
    }

    /// Adds `name: value` (or `name` alone) to the request's header list. The line is made in
    /// the client's reused buffer, since curl copies it: no new string per header per request.
    private func appendHeaderLine(_ name: String, _ value: String?) throws(OptionRefused) {
        var line = client.headerLine
        client.headerLine = [] // so the buffer is not shared while it is written
        defer { client.headerLine = line }
        line.removeAll(keepingCapacity: true)
        line.append(contentsOf: name.utf8)
        if let value {
            line.append(contentsOf: ": ".utf8)
            line.append(contentsOf: value.utf8)
        }
        line.append(0)
        let list = line.withUnsafeBufferPointer { bytes in
            curl_slist_append(headerList, UnsafeRawPointer(bytes.baseAddress!).assumingMemoryBound(to: CChar.self))
        }
        guard let list else { throw OptionRefused(message: "curl_slist_append failed (out of memory)") }
        headerList = list
    }

    /// Parses one header line on bytes: Foundation's trimming bridges through NSString and was
    /// the largest single cost per request in the profile.
    /// False when the answer's headers passed `maxHeaderBytes`: the transfer is then failed.
    func receivedHeader(_ line: UnsafeRawBufferPointer) -> Bool {
        headerBytes += line.count
        guard headerBytes <= maxHeaderBytes else {
            limitHit = .header
            return false
        }
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
        return true
    }

    static let statusPrefix = Array("HTTP/".utf8)
    static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0D || b == 0x0A }

    /// The write callback's answer: the bytes taken, or `CURL_WRITEFUNC_PAUSE` (curl keeps the
    /// chunk and hands it over again after `resume`, libcurl >= 7.18).
    func received(_ chunk: UnsafeRawBufferPointer) -> Int {
        if request.collectBody {
            guard collected.count + chunk.count <= maxCollectedBytes else {
                // Taking less than offered makes curl fail the transfer (CURLE_WRITE_ERROR).
                limitHit = .responseBody
                collected = []
                return 0
            }
            collected.append(contentsOf: chunk)
            return chunk.count
        }
        // A part is cut at `pendingLimit` before this chunk joins it; a pause that cut brings
        // refuses this chunk, as the reader's earlier pause does.
        if !pending.isEmpty && pending.count + chunk.count > Self.pendingLimit { deliverPending() }
        if paused {
            if !curlPaused { UpstreamMetrics.pauseCounter.increment() }
            curlPaused = true
            return Int(CURL_WRITEFUNC_PAUSE)
        }
        if !headSent {
            // The first bytes go out with the head, at once: the client's first event (its time to
            // first token) does not wait for the rest of a burst curl is still reading.
            sendHeadIfNeeded()
            deliver(.body(Array(chunk)))
            return chunk.count
        }
        if !pendingListed {
            pendingListed = true
            client.pendingBodies.append(self)
        }
        pending.append(contentsOf: chunk)
        return chunk.count
    }

    /// This turn's bytes, as one part.
    func deliverPending() {
        guard !pending.isEmpty else { return }
        let chunk = pending
        pending = []
        deliver(.body(chunk))
    }

    func sendHeadIfNeeded() {
        guard !headSent else { return }
        headSent = true
        deliver(.head(UpstreamResponseHead(status: status, headers: headers)))
        headers = [] // the reader has them; a stream's transfer lives as long as the stream
    }

    /// Hands one part to the reader's bounded buffer and notes whether it wants more.
    private func deliver(_ part: UpstreamPart) {
        let size = if case .body(let chunk) = part { chunk.count } else { 0 }
        buffer?.willYield(size)
        switch source.yield(part) {
        case .produceMore: break
        case .stopProducing: paused = true
        case .dropped: buffer?.dropped(size)
        }
    }

    /// The reader drained its buffer to the low watermark (`TransferDemand.produceMore`). curl may
    /// deliver the chunk it kept from inside `curl_easy_pause`, which can pause it again.
    /// - Returns: curl's answer; anything but CURLE_OK makes the caller end the transfer.
    func resume() -> CURLcode {
        paused = false
        guard curlPaused, let h = easy else { return CURLE_OK }
        curlPaused = false
        return curl_easy_pause(h, CURLPAUSE_CONT)
    }

    func complete(multi: UnsafeMutableRawPointer, result: CURLcode, settings: UpstreamClient.Settings, logger: Logger?) {
        if result == CURLE_OK {
            end(multi: multi, with: .end)
            return
        }
        // The whole-transfer limit of a provider call (`upstream.timeout_seconds`) is the stream
        // duration cap; a webhook's own short limit is just a failed delivery.
        if result == CURLE_OPERATION_TIMEDOUT, request.timeoutMilliseconds == nil, connected { limitHit = .duration }
        if let limit = limitHit {
            UpstreamMetrics.exceeded(limit)
            let message = limitMessage(limit, settings: settings)
            logger?.warning("upstream answer stopped at a limit", metadata: [
                "limit": "\(limit.rawValue)", "detail": "\(message)",
            ])
            end(multi: multi, with: .failed(UpstreamError(kind: .transfer, message: message, limit: limit)))
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

    func limitMessage(_ limit: UpstreamLimit, settings: UpstreamClient.Settings) -> String {
        switch limit {
        case .header:
            return "the provider's response headers are larger than \(limit.configKey) (\(maxHeaderBytes) bytes)"
        case .duration:
            return "the provider's answer took longer than \(limit.configKey) (\(settings.timeoutSeconds) s)"
        case .sseEvent:
            return "a server-sent event is larger than \(limit.configKey)"
        case .responseBody:
            return "the provider's answer is larger than \(limit.configKey) (\(maxCollectedBytes) bytes)"
        }
    }

    /// Whether any of the request went out (curl counts the head's bytes as it sends them). A
    /// transfer not begun yet, or already ended, counts as sent: the answer that is never wrong.
    var requestSent: Bool {
        guard let h = easy else { return true }
        var requestBytes = 0
        guard tg_easy_getinfo_long(h, CURLINFO_REQUEST_SIZE, &requestBytes) == CURLE_OK else { return true }
        return requestBytes > 0
    }

    /// Whether the request may have reached the provider: a connection was made for it (curl's
    /// connect time is 0 until then), or its head went out. The second matters on a reused
    /// keep-alive connection, whose transfers connect nothing and report a connect time of 0:
    /// a slow answer timed out there was once taken for one never sent, and charged $0.
    private var connected: Bool {
        guard let h = easy else { return true }
        var micros: curl_off_t = 0
        guard tg_easy_getinfo_off_t(h, CURLINFO_CONNECT_TIME_T, &micros) == CURLE_OK else { return true }
        return micros > 0 || requestSent
    }

    func end(multi: UnsafeMutableRawPointer, with last: UpstreamPart) {
        deliverPending()
        if let h = easy {
            curl_multi_remove_handle(multi, h)
            client.recycle(h, collecting: request.collectBody)
            easy = nil
        }
        curl_slist_free_all(headerList)
        headerList = nil
        if wholeAnswer == nil {
            if !collected.isEmpty {
                sendHeadIfNeeded()
                deliver(.body(collected))
                collected = []
            }
            if case .end = last { sendHeadIfNeeded() }
        }
        finish(last)
    }

    func finish(_ last: UpstreamPart) {
        guard !finished else { return }
        finished = true
        delivered.store(true, ordering: .releasing)
        if let wholeAnswer {
            // As parts would have it: a head with any body, or with an answer that ended well.
            let failure: UpstreamError? = if case .failed(let e) = last { e } else { nil }
            let head = failure == nil || !collected.isEmpty ? UpstreamResponseHead(status: status, headers: headers) : nil
            wholeAnswer.fill(UpstreamAnswer(head: head, body: collected, failure: failure))
            (headers, collected) = ([], [])
            return
        }
        _ = source.yield(last)
        source.finish()
    }
}
