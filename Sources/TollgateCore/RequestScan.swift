/// What Tollgate needs to know about a request body, read in one pass over its JSON.
public struct ScannedRequest: Sendable {
    public var model: String
    public var stream: Bool
    /// The reply cap the client asked for, and in which field.
    public var outputLimit: (field: String, tokens: Int64)?
    /// Number of choices generated (`n`, or `best_of` for legacy completions): output scales with it.
    public var choices: Int64
    /// `stream_options.include_usage` as the client sent it.
    public var clientIncludesUsage: Bool
    /// A conservative upper bound on the input tokens; see `InputTokenBound`.
    public var inputTokenBound: Int64
    /// Top-level members and their byte ranges, for splicing.
    public var members: [JSONMember]
    public var bytes: [UInt8]
}

/// Why a body cannot be proxied; rendered by the server in the family's error shape.
public enum RequestProblem: Error, Equatable, Sendable {
    case invalidJSON(String)
    case missingModel
    case invalidField(String, String)

    public var message: String {
        switch self {
        case .invalidJSON(let why):
            return "The request body is not valid JSON (\(why)). Send a JSON object with Content-Type: application/json."
        case .missingModel:
            return "The request body has no \"model\" string. Add \"model\": \"<model name>\", e.g. \"gpt-4o-mini\"."
        case .invalidField(let field, let why):
            return "The field \"\(field)\" \(why)."
        }
    }
}

/// The documented input bound: tokens never outnumber the UTF-8 bytes of the text they encode
/// (every BPE token of OpenAI's and Anthropic's tokenizers decodes to at least one byte), so
/// Tollgate counts bytes, plus framing the providers add around each message.
///  - 16 tokens per request, 8 per message-like object inside `messages`/`input`/`system`;
///  - every string, number and boolean nested in a content-bearing field, by its UTF-8 length;
///    object keys count too, except the framing keys of messages (`role`, `content`, `type`, …);
///  - an image counts `imageTokens` instead of its URL or base64 data (providers resize images);
///    files, PDFs and audio count their base64 payload byte for byte.
/// Top-level settings that are not content (`model`, `temperature`, …) are not counted.
public enum InputTokenBound {
    public static let perRequest: Int64 = 16
    public static let perMessage: Int64 = 8
    /// OpenAI high-detail images top out near 1,500 tokens and Anthropic's near 1,600.
    public static let imageTokens: Int64 = 2_000

    static let settingsKeys: Set<String> = [
        "model", "stream", "stream_options", "max_tokens", "max_completion_tokens", "max_output_tokens",
        "n", "best_of", "echo", "temperature", "top_p", "top_k", "user", "metadata", "service_tier", "store",
        "seed", "logprobs", "top_logprobs", "presence_penalty", "frequency_penalty", "logit_bias",
        "parallel_tool_calls", "reasoning_effort", "reasoning", "modalities", "stop", "stop_sequences",
        "encoding_format", "dimensions", "thinking", "truncation", "include", "background",
        "prompt_cache_key", "safety_identifier", "verbosity",
    ]
    static let messageContainers: Set<String> = ["messages", "input", "system"]
    /// Framing keys of messages and content parts, covered by `perMessage`.
    static let structuralKeys: Set<String> = ["role", "content", "type", "text", "image_url", "source", "media_type", "detail", "cache_control"]
    /// Where an image's URL or base64 bytes sit; inside an image they count `imageTokens` instead.
    static let imagePayloadKeys: Set<String> = ["url", "data", "file_data", "image_url"]
    static let imageTypes: Set<String> = ["image_url", "image", "input_image"]

    static func count(_ members: [JSONMember]) -> Int64 {
        var total = perRequest
        for m in members where !settingsKeys.contains(m.key) {
            if messageContainers.contains(m.key), case .array(let messages) = m.value {
                total += messages.reduce(0) { $0 + perMessage + count($1, inImage: false) }
            } else {
                total += count(m.value, inImage: false)
            }
        }
        return total
    }

    /// Files, PDFs and audio have no such cap, so their base64 payload counts byte for byte:
    /// generous, but a bound.
    static func count(_ v: JSONValue, inImage: Bool) -> Int64 {
        switch v {
        case .null: return 0
        case .bool(let b): return b ? 4 : 5
        case .number(let n): return Int64(n.utf8.count)
        case .string(let s): return Int64(s.utf8.count)
        case .array(let items): return items.reduce(0) { $0 + count($1, inImage: inImage) }
        case .object(let members):
            var sum: Int64 = 0
            var image = inImage
            if let type = v["type"]?.string, imageTypes.contains(type) {
                sum += imageTokens
                image = true
            }
            for (key, value) in members {
                if image, imagePayloadKeys.contains(key) {
                    if case .object = value { sum += count(value, inImage: true) }
                    continue
                }
                if !structuralKeys.contains(key) { sum += Int64(key.utf8.count) }
                sum += count(value, inImage: image)
            }
            return sum
        }
    }
}

extension ScannedRequest {
    /// No model replies with more; keeps every cost product far inside Int64 and Lua's 2^53.
    public static let maxOutputTokens: Int64 = 10_000_000

    public init(body: [UInt8], route: ProxyRoute) throws(RequestProblem) {
        var reader = JSONReader(body)
        let members: [JSONMember]
        do { members = try reader.readTopLevelObject() } catch { throw .invalidJSON(error.description) }
        func member(_ key: String) -> JSONValue? { members.last(where: { $0.key == key })?.value }

        guard let model = member("model")?.string, !model.isEmpty else { throw .missingModel }
        var stream = false
        if let s = member("stream"), !s.isNull {
            guard let b = s.bool else { throw .invalidField("stream", "must be true or false") }
            stream = b
        }
        var outputLimit: (String, Int64)?
        for field in route.outputLimitFields {
            guard let v = member(field), !v.isNull else { continue }
            guard let n = v.int, (0...Self.maxOutputTokens).contains(n) else {
                throw .invalidField(field, "must be an integer from 0 to \(Self.maxOutputTokens)")
            }
            outputLimit = (field, n)
            break
        }
        var choices: Int64 = 1
        for field in ["n", "best_of"] {
            guard let v = member(field), !v.isNull else { continue }
            guard let n = v.int, (1...128).contains(n) else { throw .invalidField(field, "must be an integer from 1 to 128") }
            choices = max(choices, n)
        }
        self.init(
            model: model, stream: stream, outputLimit: outputLimit, choices: choices,
            clientIncludesUsage: member("stream_options")?["include_usage"]?.bool ?? false,
            inputTokenBound: InputTokenBound.count(members), members: members, bytes: body)
    }
}
