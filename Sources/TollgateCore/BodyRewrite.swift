/// Edits a request body in place: only the members that change are touched, everything else
/// (key order, spacing, numbers) reaches the provider byte for byte.
public struct BodyRewrite: Sendable {
    public private(set) var edits: [(key: String, json: String)] = []
    public init() {}

    public var isEmpty: Bool { edits.isEmpty }

    /// Sets a top-level member to raw JSON text, replacing it when present.
    public mutating func set(_ key: String, json: String) {
        edits.removeAll { $0.key == key }
        edits.append((key, json))
    }

    /// Sets the reply cap Tollgate granted, in the field the client used (or the route's own).
    public mutating func setOutputLimit(_ tokens: Int64, request: ScannedRequest, route: ProxyRoute) {
        guard let field = request.outputLimit?.field ?? route.outputLimitFields.first else { return }
        set(field, json: String(tokens))
    }

    /// Asks an OpenAI stream to end with a usage chunk, keeping the client's other stream options.
    public mutating func requestStreamUsage(_ request: ScannedRequest) {
        var options: [(key: String, value: JSONValue)] = []
        if case .object(let existing)? = request.members.last(where: { $0.key == "stream_options" })?.value {
            options = existing.filter { $0.key != "include_usage" }
        }
        options.append(("include_usage", .bool(true)))
        set("stream_options", json: JSONValue.object(options).serialized)
    }

    public func apply(to request: ScannedRequest) -> [UInt8] {
        guard !edits.isEmpty else { return request.bytes }
        var replacements: [(range: Range<Int>, text: String)] = []
        var inserts = ""
        for edit in edits {
            if let m = request.members.last(where: { $0.key == edit.key }) {
                replacements.append((m.valueRange, edit.json))
            } else {
                inserts += jsonQuoted(edit.key) + ":" + edit.json + ","
            }
        }
        var out = request.bytes
        for r in replacements.sorted(by: { $0.range.lowerBound > $1.range.lowerBound }) {
            out.replaceSubrange(r.range, with: Array(r.text.utf8))
        }
        if !inserts.isEmpty, let brace = out.firstIndex(of: UInt8(ascii: "{")) {
            out.insert(contentsOf: Array(inserts.utf8), at: brace + 1)
        }
        return out
    }
}

extension JSONValue {
    /// Compact JSON text.
    public var serialized: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let n): return n
        case .string(let s): return jsonQuoted(s)
        case .array(let items): return "[" + items.map(\.serialized).joined(separator: ",") + "]"
        case .object(let members): return "{" + members.map { jsonQuoted($0.key) + ":" + $0.value.serialized }.joined(separator: ",") + "}"
        }
    }
}
