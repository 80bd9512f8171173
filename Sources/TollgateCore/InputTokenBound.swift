/// The documented input bound: tokens never outnumber the UTF-8 bytes of the text they encode
/// (every BPE token of OpenAI's and Anthropic's tokenizers decodes to at least one byte), so
/// Tollgate counts bytes, plus framing the providers add around each message.
///  - 16 tokens per request, 8 per message-like object inside `messages`/`input`/`system`;
///  - every string, number and boolean nested in a content-bearing field, by its UTF-8 length;
///    object keys count too, except the framing keys of messages (`role`, `content`, `type`, …);
///  - an image counts nothing here: the model's image rule is added per image
///    (`ScannedRequest.inputTokenBound(for:)`), because providers resize images;
///  - files and audio count their base64 payload byte for byte. Inputs whose bytes do not bound
///    their tokens (PDFs, files by id) are recorded as `UnseenInput`.
/// Top-level settings that are not content (`model`, `temperature`, …) are not counted.
public enum InputTokenBound {
    public static let perRequest: Int64 = 16
    public static let perMessage: Int64 = 8

    static let settingsKeys: Set<String> = [
        "model", "stream", "stream_options", "max_tokens", "max_completion_tokens", "max_output_tokens",
        "n", "best_of", "echo", "temperature", "top_p", "top_k", "user", "metadata", "service_tier", "store",
        "seed", "logprobs", "top_logprobs", "presence_penalty", "frequency_penalty", "logit_bias",
        "parallel_tool_calls", "reasoning_effort", "reasoning", "modalities", "stop", "stop_sequences",
        "encoding_format", "dimensions", "thinking", "truncation", "include", "background",
        "prompt_cache_key", "safety_identifier", "verbosity", "max_tool_calls",
    ]
    static let messageContainers: Set<String> = ["messages", "input", "system"]
    /// Framing keys of messages and content parts, covered by `perMessage`.
    static let structuralKeys: Set<String> = ["role", "content", "type", "text", "image_url", "source", "media_type", "detail", "cache_control"]
    /// Where an image's URL, id or base64 bytes sit; inside an image they count nothing.
    static let imagePayloadKeys: Set<String> = ["url", "data", "file_data", "image_url", "file_id"]
    static let imageTypes: Set<String> = ["image_url", "image", "input_image", "computer_screenshot"]
}

/// One pass over the content of a request: its byte bound, and the facts found on the way.
/// It walks the body in place (`JSONView`): a million-element `messages` array allocates
/// nothing per element, except the path steps it keeps for naming unseen inputs.
struct InputScan {
    let view: JSONView
    var tokens: Int64 = 0
    var images: [ImageDetail] = []
    var unseen: [UnseenInput] = []
    var cacheControl = CacheControlUse.none
    private var path: [PathStep] = []

    init(view: JSONView) { self.view = view }

    enum PathStep { case key(String), index(Int) }

    func field(_ suffix: String...) -> String {
        var s = ""
        for step in path {
            switch step {
            case .key(let k): s += s.isEmpty ? k : "." + k
            case .index(let i): s += "[\(i)]"
            }
        }
        for k in suffix { s += "." + k }
        return s
    }

    mutating func scan(_ members: [JSONMember], route: ProxyRoute) {
        tokens = InputTokenBound.perRequest
        for m in members where !InputTokenBound.settingsKeys.contains(m.key) {
            path = [.key(m.key)]
            if InputTokenBound.messageContainers.contains(m.key), view.isArray(m.start) {
                var messages = view.elements(m.start)
                var i = 0
                while let message = messages.next() {
                    path = [.key(m.key), .index(i)]
                    tokens += InputTokenBound.perMessage + count(message, inImage: false)
                    i += 1
                }
            } else {
                tokens += count(m.start, inImage: false)
            }
        }
        path = []
        guard route == .responses else { return }
        for m in members where !view.isNull(m.start) {
            switch m.key {
            case "prompt": unseen.append(UnseenInput(field: "prompt", kind: .storedPrompt))
            case "previous_response_id": unseen.append(UnseenInput(field: "previous_response_id", kind: .previousResponse))
            case "conversation": unseen.append(UnseenInput(field: "conversation", kind: .conversation))
            default: break
            }
        }
    }

    /// The bound of the value starting at offset `v`.
    private mutating func count(_ v: Int, inImage: Bool) -> Int64 {
        switch view.bytes[v] {
        case UInt8(ascii: "n"): return 0
        case UInt8(ascii: "t"): return 4
        case UInt8(ascii: "f"): return 5
        case JSONView.quote: return view.stringUTF8Count(v)
        case UInt8(ascii: "["):
            var sum: Int64 = 0
            var items = view.elements(v)
            var i = 0
            while let item = items.next() {
                path.append(.index(i))
                sum += count(item, inImage: inImage)
                path.removeLast()
                i += 1
            }
            return sum
        case UInt8(ascii: "{"):
            return countObject(v, inImage: inImage)
        default: // a number, by its text
            return Int64(view.end(ofValueAt: v) - v)
        }
    }

    private mutating func countObject(_ v: Int, inImage: Bool) -> Int64 {
        var image = inImage
        if let type = view.string(view.member("type", of: v)) {
            if InputTokenBound.imageTypes.contains(type), !inImage {
                let detail = view.string(view.member("detail", of: v)) ?? view.string(view.member("detail", of: view.member("image_url", of: v)))
                images.append(ImageDetail(detail))
                image = true
            } else {
                noteUnseen(type: type, v)
            }
        }
        var sum: Int64 = 0
        var members = view.members(v)
        while let m = members.next() {
            // Keys of up to 15 UTF-8 bytes ("role", "content") are small strings: no allocation.
            let name = view.keyString(m)
            let value = m.value
            if name == "cache_control", view.isObject(value), view.member("type", of: value) != nil || view.member("ttl", of: value) != nil {
                cacheControl = max(cacheControl, view.string(view.member("ttl", of: value)) == "1h" ? .oneHour : .fiveMinutes)
            }
            if image, InputTokenBound.imagePayloadKeys.contains(name) {
                if view.isObject(value) { path.append(.key(name)); sum += count(value, inImage: true); path.removeLast() }
                continue
            }
            if !InputTokenBound.structuralKeys.contains(name) { sum += Int64(name.utf8.count) }
            path.append(.key(name))
            sum += count(value, inImage: image)
            path.removeLast()
        }
        return sum
    }

    /// Content parts whose tokens the body's bytes do not bound.
    private mutating func noteUnseen(type: String, _ part: Int) {
        func file(_ holder: Int, _ prefix: String...) {
            let at = prefix.joined(separator: ".")
            func here(_ key: String) -> String { at.isEmpty ? field(key) : field(at, key) }
            if view.string(view.member("file_id", of: holder)) != nil { unseen.append(UnseenInput(field: here("file_id"), kind: .fileByReference)) }
            if view.string(view.member("file_url", of: holder)) != nil { unseen.append(UnseenInput(field: here("file_url"), kind: .fileByReference)) }
            if let data = view.string(view.member("file_data", of: holder)), !Self.isText(dataURL: data) {
                unseen.append(UnseenInput(field: here("file_data"), kind: .document))
            }
        }
        switch type {
        case "file": if let f = view.member("file", of: part) { file(f, "file") }   // OpenAI chat
        case "input_file": file(part)                                               // OpenAI Responses
        case "container_upload": unseen.append(UnseenInput(field: field("file_id"), kind: .fileByReference))
        case "item_reference": unseen.append(UnseenInput(field: field("id"), kind: .storedItem))
        case "document":                                                            // Anthropic
            guard let source = view.member("source", of: part) else { return }
            switch view.string(view.member("type", of: source)) {
            case "url": unseen.append(UnseenInput(field: field("source", "url"), kind: .fileByReference))
            case "file": unseen.append(UnseenInput(field: field("source", "file_id"), kind: .fileByReference))
            case "base64" where !(view.string(view.member("media_type", of: source)) ?? "").hasPrefix("text/"):
                unseen.append(UnseenInput(field: field("source", "data"), kind: .document))
            default: break // `text` and `content` sources are counted by their bytes
            }
        default: break
        }
    }

    /// Plain text sent as a data URL decodes to fewer bytes than its base64, so its bytes bound it.
    static func isText(dataURL: String) -> Bool {
        dataURL.hasPrefix("data:text/") || dataURL.hasPrefix("data:application/json")
    }
}
