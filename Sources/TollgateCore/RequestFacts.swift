/// Input a request makes the provider read that its body does not carry, so its bytes cannot
/// bound its tokens. `field` is the JSON path to it, e.g. `messages[0].content[1].file.file_id`.
public struct UnseenInput: Hashable, Sendable {
    public var field: String
    public var kind: Kind

    public init(field: String, kind: Kind) {
        self.field = field
        self.kind = kind
    }

    public enum Kind: String, Sendable {
        /// A file by id or URL (OpenAI `file_id`/`file_url`, Anthropic `source.type` url or file,
        /// `container_upload`).
        case fileByReference = "a file by id or URL"
        /// An inline PDF or other binary document: compressed text, plus a page image per page,
        /// so its bytes do not bound its tokens.
        case document = "an inline document (PDF)"
        /// A Responses `prompt` template by id.
        case storedPrompt = "a stored prompt template"
        /// Responses `previous_response_id`: the earlier turns are re-read.
        case previousResponse = "an earlier response's context"
        /// Responses `conversation`.
        case conversation = "a stored conversation"
        /// A Responses `item_reference` input item.
        case storedItem = "a stored input item"
    }
}

/// A tool the provider runs itself: each call may re-read the whole context and carry a fee.
public struct ServerTool: Hashable, Sendable {
    /// Where it was declared, e.g. `tools[2]` or `web_search_options`.
    public var field: String
    /// Its type as the request names it, e.g. `web_search_preview` or `web_search_20250305`.
    public var name: String
    /// The name its calls are reported and billed under (the key of `tool_fees_usd`).
    public var billedAs: String
    /// Anthropic `max_uses`.
    public var maxUses: Int64?

    public init(field: String, name: String, billedAs: String, maxUses: Int64? = nil) {
        self.field = field
        self.name = name
        self.billedAs = billedAs
        self.maxUses = maxUses
    }

    /// The Responses output item types that are provider-run tool calls (counted at settlement).
    static let openAIBilledCalls: Set<String> = [
        "web_search_call", "file_search_call", "code_interpreter_call", "image_generation_call",
        "mcp_call", "mcp_list_tools", "computer_call", "local_shell_call",
    ]

    /// An OpenAI tool type → the output item its calls appear as.
    static func openAIBilledAs(_ type: String) -> String {
        if type.hasPrefix("web_search") { return "web_search_call" } // web_search, web_search_preview, dated variants
        if type.hasPrefix("computer") { return "computer_call" }
        switch type {
        case "file_search", "code_interpreter", "image_generation", "mcp", "local_shell": return type + "_call"
        default: return type
        }
    }

    /// An Anthropic tool type without its version date: `web_search_20250305` → `web_search`,
    /// the name its calls are counted under in `usage.server_tool_use` (`web_search_requests`).
    static func anthropicBilledAs(_ type: String) -> String {
        guard let underscore = type.lastIndex(of: "_") else { return type }
        let date = type[type.index(after: underscore)...]
        return date.count == 8 && date.allSatisfy(\.isASCIIDigit) ? String(type[..<underscore]) : type
    }

    /// The provider-run tools a request declares.
    static func scan(_ members: [JSONMember], _ view: JSONView, route: ProxyRoute) -> [ServerTool] {
        func member(_ key: String) -> Int? { members.last(where: { $0.key == key })?.start }
        var found: [ServerTool] = []
        if let tools = member("tools"), view.isArray(tools) {
            var items = view.elements(tools)
            var i = 0
            while let tool = items.next() {
                defer { i += 1 }
                // Function tools (and Anthropic's untyped/custom ones) run on the client.
                guard let type = view.string(view.member("type", of: tool)), type != "function", type != "custom" else { continue }
                let field = "tools[\(i)]"
                if route == .messages {
                    found.append(ServerTool(field: field, name: type, billedAs: anthropicBilledAs(type), maxUses: view.int(view.member("max_uses", of: tool))))
                } else {
                    found.append(ServerTool(field: field, name: type, billedAs: openAIBilledAs(type)))
                }
            }
        }
        if let options = member("web_search_options"), !view.isNull(options) {
            found.append(ServerTool(field: "web_search_options", name: "web_search", billedAs: "web_search_call"))
        }
        if route == .messages {
            for i in 0..<view.count(ofArrayAt: member("mcp_servers")) { found.append(ServerTool(field: "mcp_servers[\(i)]", name: "mcp", billedAs: "mcp")) }
        }
        return found
    }
}

/// The `detail` an image was sent with; anything but `low` may be processed at high detail.
public enum ImageDetail: String, Sendable {
    case low, high, auto

    init(_ text: String?) {
        switch text {
        case nil, "auto": self = .auto
        case "low": self = .low
        default: self = .high // "high", and any detail we do not know, at the dearest
        }
    }
}

/// Whether a request asks for prompt caching, and with which TTL (the write rates differ).
public enum CacheControlUse: Int, Comparable, Sendable {
    case none, fiveMinutes, oneHour
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}
