import Crypto

/// What the loop breaker counts: "the same request" is the same route, model and content, so an
/// agent stuck resending one prompt is caught even when its retries vary a seed, a temperature
/// or a request id.
///
/// The fingerprint is the SHA-256 (lowercase hex) of the route's path, the model, and a canonical
/// JSON object of the request's top-level members that carry content:
///
/// - counted: `messages`, `input`, `prompt`, `suffix`, `system`, `instructions`, `tools`,
///   `tool_choice`, `functions`, `function_call`, `response_format`, `text`,
///   `previous_response_id`, `conversation`;
/// - ignored: every other member, notably the settings `temperature`, `top_p`, `top_k`, `seed`,
///   `user`, `metadata`, `stream`, `stream_options`, `max_tokens`, `max_completion_tokens`,
///   `max_output_tokens`, `n`, `best_of`, `stop`, `stop_sequences`, `logprobs`, `top_logprobs`,
///   `logit_bias`, `presence_penalty`, `frequency_penalty`, `parallel_tool_calls`, `reasoning`,
///   `reasoning_effort`, `thinking`, `service_tier`, `store`, `background`, `include`,
///   `truncation`, `prompt_cache_key`, `safety_identifier`, `modalities`, `audio`, `prediction`,
///   and request ids.
///
/// A counted member that is `null` counts as absent. Canonical form: object keys sorted by their
/// UTF-8 bytes (a repeated key keeps its last value, as providers read it), no whitespace,
/// strings re-escaped the one way `jsonQuoted` writes them, numbers exactly as written (`1.0` and
/// `1` differ). So key order, whitespace and escape spelling never change a fingerprint.
public struct RequestFingerprint: Hashable, Sendable, CustomStringConvertible {
    /// 64 lowercase hex digits.
    public let hex: String

    /// The top-level members that make two requests the same one.
    public static let countedFields: Set<String> = [
        "messages", "input", "prompt", "suffix", "system", "instructions", "tools", "tool_choice",
        "functions", "function_call", "response_format", "text", "previous_response_id", "conversation",
    ]

    /// Names the canonical form; a change to it must change this so old and new replicas never
    /// count different spellings of one request as the same.
    static let version = "tollgate-fingerprint-v1"

    public init(route: ProxyRoute, request: ScannedRequest) {
        self.init(route: route, model: request.model, members: request.members)
    }

    public init(route: ProxyRoute, model: String, members: [JSONMember]) {
        let content = Self.sorted(members.filter { Self.countedFields.contains($0.key) }.map { (key: $0.key, value: $0.value) })
        var text = Self.version + "\n" + route.path + "\n" + jsonQuoted(model) + "\n"
        Self.write(content.filter { !$0.value.isNull }, into: &text)
        hex = SHA256.hash(data: Array(text.utf8)).map { byte in
            let digits = String(byte, radix: 16)
            return byte < 16 ? "0" + digits : digits
        }.joined()
    }

    public var description: String { hex }

    static func canonical(_ value: JSONValue, into out: inout String) {
        switch value {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n): out += n
        case .string(let s): out += jsonQuoted(s)
        case .array(let items):
            out += "["
            for (index, item) in items.enumerated() {
                if index > 0 { out += "," }
                canonical(item, into: &out)
            }
            out += "]"
        case .object(let members):
            write(sorted(members), into: &out)
        }
    }

    static func write(_ members: [(key: String, value: JSONValue)], into out: inout String) {
        out += "{"
        for (index, member) in members.enumerated() {
            if index > 0 { out += "," }
            out += jsonQuoted(member.key) + ":"
            canonical(member.value, into: &out)
        }
        out += "}"
    }

    /// Members sorted by the UTF-8 bytes of their keys; of a repeated key only the last remains.
    static func sorted(_ members: [(key: String, value: JSONValue)]) -> [(key: String, value: JSONValue)] {
        let ordered = members.enumerated().sorted { a, b in
            a.element.key.utf8.elementsEqual(b.element.key.utf8)
                ? a.offset < b.offset : a.element.key.utf8.lexicographicallyPrecedes(b.element.key.utf8)
        }.map(\.element)
        return ordered.enumerated().filter { index, member in
            index + 1 == ordered.count || !ordered[index + 1].key.utf8.elementsEqual(member.key.utf8)
        }.map(\.element)
    }
}
