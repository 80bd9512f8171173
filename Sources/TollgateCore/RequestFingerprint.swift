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
        var out = CanonicalJSON(view: JSONView(bytes: members.first?.source ?? []))
        out.append(Self.version); out.append("\n"); out.append(route.path); out.append("\n")
        out.appendQuoted(model)
        out.append(CollectionOfOne(UInt8(ascii: "\n")))
        let view = out.view
        var content = members.compactMap { member -> (key: String, value: Int)? in
            Self.countedFields.contains(member.key) ? (member.key, member.start) : nil
        }
        Self.sortByKey(&content)
        content.removeAll { view.isNull($0.value) }
        out.writeObject(content)
        let digest = out.finish()
        let digits = Self.hexDigits
        hex = String(unsafeUninitializedCapacity: 64) { text in
            for (i, byte) in digest.enumerated() {
                text[2 * i] = digits[Int(byte >> 4)]
                text[2 * i + 1] = digits[Int(byte & 0x0f)]
            }
            return 64
        }
    }

    public var description: String { hex }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// Sorts members by the UTF-8 bytes of their keys, in place; of a repeated key only the last
    /// remains. Every object of every message goes through here, so the few keys an object
    /// usually has are sorted without a copy (a stable insertion sort); many keys take the
    /// library's sort, on (key, position), so a hostile object of 100k keys stays O(n log n).
    static func sortByKey(_ members: inout [(key: String, value: Int)]) {
        func precedes(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }
        if members.count <= 16 {
            for i in members.indices.dropFirst() {
                let member = members[i]
                var j = i
                while j > 0, precedes(member.key, members[j - 1].key) {
                    members[j] = members[j - 1]
                    j -= 1
                }
                members[j] = member
            }
        } else {
            members = members.enumerated().sorted { a, b in
                a.element.key.utf8.elementsEqual(b.element.key.utf8) ? a.offset < b.offset : precedes(a.element.key, b.element.key)
            }.map(\.element)
        }
        // Equal keys are adjacent and in their order of appearance: keep the last of each run.
        var kept = 0
        for index in members.indices where index + 1 == members.count || !members[index + 1].key.utf8.elementsEqual(members[index].key.utf8) {
            members[kept] = members[index]
            kept += 1
        }
        members.removeLast(members.count - kept)
    }
}

/// Writes the canonical form of values read in place straight into SHA-256, a few KiB at a
/// time, so a 30 MB `messages` array is hashed without a tree or a 30 MB string.
struct CanonicalJSON {
    let view: JSONView
    private var hash = SHA256()
    private var pending: [UInt8] = []

    init(view: JSONView) {
        self.view = view
        // The canonical text is about as long as the body: a usual request needs far less than a flush.
        pending.reserveCapacity(min(Self.flushAt, view.bytes.count) + 256)
    }

    static let flushAt = 16 << 10

    mutating func append(_ text: String) { append(text.utf8) }
    mutating func append(_ bytes: some Sequence<UInt8>) {
        pending.append(contentsOf: bytes)
        if pending.count >= Self.flushAt { hash.update(data: pending); pending.removeAll(keepingCapacity: true) }
    }

    mutating func finish() -> SHA256.Digest {
        hash.update(data: pending)
        return hash.finalize()
    }

    /// A key as `jsonQuoted` writes it; one that needs no escaping is copied without a new string.
    mutating func appendQuoted(_ key: String) {
        if needsJSONEscaping(key) {
            append(jsonQuoted(key))
        } else {
            append(CollectionOfOne(JSONView.quote)); append(key.utf8); append(CollectionOfOne(JSONView.quote))
        }
    }

    mutating func writeValue(_ v: Int) {
        switch view.bytes[v] {
        case JSONView.quote:
            let raw = (v + 1)..<(view.end(ofStringAt: v) - 1)
            // Plain ASCII without escapes is already written the one way `jsonQuoted` writes it.
            if !view.bytes[raw].contains(where: { $0 >= 0x80 || $0 == JSONView.backslash }) {
                append(CollectionOfOne(JSONView.quote)); append(view.bytes[raw]); append(CollectionOfOne(JSONView.quote))
            } else {
                append(jsonQuoted(view.string(v) ?? ""))
            }
        case UInt8(ascii: "["):
            append(CollectionOfOne(UInt8(ascii: "[")))
            var items = view.elements(v)
            var first = true
            while let item = items.next() {
                if !first { append(CollectionOfOne(UInt8(ascii: ","))) }
                first = false
                writeValue(item)
            }
            append(CollectionOfOne(UInt8(ascii: "]")))
        case UInt8(ascii: "{"):
            var members: [(key: String, value: Int)] = []
            var all = view.members(v)
            while let m = all.next() { members.append((view.keyString(m), m.value)) }
            RequestFingerprint.sortByKey(&members)
            writeObject(members)
        default: // numbers exactly as written, and literals
            append(view.bytes[v..<view.end(ofValueAt: v)])
        }
    }

    mutating func writeObject(_ members: [(key: String, value: Int)]) {
        append(CollectionOfOne(UInt8(ascii: "{")))
        for (index, member) in members.enumerated() {
            if index > 0 { append(CollectionOfOne(UInt8(ascii: ","))) }
            appendQuoted(member.key)
            append(CollectionOfOne(UInt8(ascii: ":")))
            writeValue(member.value)
        }
        append(CollectionOfOne(UInt8(ascii: "}")))
    }
}
