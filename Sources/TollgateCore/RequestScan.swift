/// What Tollgate needs to know about a request body, read in one pass over its JSON.
public struct ScannedRequest: Sendable {
    public var route: ProxyRoute
    public var model: String
    public var stream: Bool
    /// The reply cap the client asked for, and in which field.
    public var outputLimit: (field: String, tokens: Int64)?
    /// Number of choices generated (`n`, or `best_of` for legacy completions): output scales with it.
    public var choices: Int64
    /// `stream_options.include_usage` as the client sent it.
    public var clientIncludesUsage: Bool
    /// The input bound of the body's own text and framing, without images or what the provider
    /// adds; see `InputTokenBound`. The whole bound needs the model: `inputTokenBound(for:)`.
    public var contentTokenBound: Int64
    /// Every image in the input, with the detail it was sent with.
    public var images: [ImageDetail]
    /// Input the provider reads that the body does not carry (files by id, PDFs, stored prompts…).
    public var unseenInputs: [UnseenInput]
    /// Tools the provider runs itself (web search, code execution, MCP…).
    public var serverTools: [ServerTool]
    /// Responses `max_tool_calls`: caps provider-run tool calls across the request.
    public var maxToolCalls: Int64?
    /// Responses `background: true`: the answer is fetched later, outside Tollgate.
    public var background: Bool
    /// The `service_tier` asked for (nil: none, the default tier).
    public var serviceTier: String?
    /// Anthropic `thinking: {type: enabled, budget_tokens}`.
    public var thinkingBudgetTokens: Int64?
    /// The strongest `cache_control` anywhere in the request.
    public var cacheControl: CacheControlUse
    /// A non-empty `tools` list (Anthropic adds its tool-use system prompt).
    public var hasTools: Bool
    /// Top-level members and their byte ranges, for splicing.
    public var members: [JSONMember]
    public var bytes: [UInt8]
}

/// Why a body cannot be proxied; rendered by the server in the family's error shape.
public enum RequestProblem: Error, Equatable, Sendable {
    case invalidJSON(String)
    case missingModel
    case invalidField(String, String)
    /// Strict mode cannot bound the request's cost (see `UnboundedCost`).
    case unboundedCost(UnboundedCost)
    /// A budget header (`X-Budget-…`) that is not valid; the message says what a valid one is.
    case invalidHeader(String, String)
    /// The HTTP body itself could not be read (a malformed chunked encoding, a cut upload).
    case malformedBody(String)

    public var message: String {
        switch self {
        case .invalidJSON(let why):
            return "The request body is not valid JSON (\(why)). Send a JSON object with Content-Type: application/json."
        case .missingModel:
            return "The request body has no \"model\" string. Add \"model\": \"<model name>\", e.g. \"gpt-4o-mini\"."
        case .invalidField(let field, let why):
            return "The field \"\(field)\" \(why)."
        case .unboundedCost(let problem):
            return problem.message
        case .invalidHeader(_, let message):
            return message
        case .malformedBody(let why):
            return "The request body could not be read (\(why)). Send it whole, with a valid Content-Length or chunked encoding."
        }
    }
}

extension ScannedRequest {
    /// A conservative upper bound on the input tokens for this model: the body's bytes, each
    /// image at the model's worst case for its detail, and the tool-use prompt the provider adds.
    /// Never above the model's context window, where a request is one prompt: the provider
    /// rejects (unbilled) longer ones. Embeddings and legacy completions take arrays of inputs,
    /// each up to the window, so they are not capped.
    public func inputTokenBound(for price: ModelPrice) -> Int64 {
        let rule = price.imageTokens ?? .unknownModel
        var bound = contentTokenBound + images.reduce(0) { $0 + rule.tokens($1) }
        if hasTools { bound += price.toolUseOverheadTokens }
        if [.chatCompletions, .responses, .messages].contains(route), let window = price.contextWindow { bound = min(bound, window) }
        return bound
    }

    /// No model replies with more; keeps every cost product far inside Int64 and Lua's 2^53.
    public static let maxOutputTokens: Int64 = 10_000_000

    public init(body: [UInt8], route: ProxyRoute) throws(RequestProblem) {
        var reader = JSONReader(body)
        let members: [JSONMember]
        do { members = try reader.readTopLevelObject() } catch { throw .invalidJSON(error.description) }
        // Members are read in place (JSONView): the body's big ones never become a tree.
        let view = JSONView(bytes: body)
        func member(_ key: String) -> Int? { members.last(where: { $0.key == key })?.start }
        func present(_ key: String) -> Int? { member(key).flatMap { view.isNull($0) ? nil : $0 } }

        guard let model = view.string(member("model")), !model.isEmpty else { throw .missingModel }
        var stream = false
        if let s = present("stream") {
            guard let b = view.bool(s) else { throw .invalidField("stream", "must be true or false") }
            stream = b
        }
        var outputLimit: (String, Int64)?
        for field in route.outputLimitFields {
            guard let v = present(field) else { continue }
            guard let n = view.int(v), (0...Self.maxOutputTokens).contains(n) else {
                throw .invalidField(field, "must be an integer from 0 to \(Self.maxOutputTokens)")
            }
            outputLimit = (field, n)
            break
        }
        var choices: Int64 = 1
        for field in ["n", "best_of"] {
            guard let v = present(field) else { continue }
            guard let n = view.int(v), (1...128).contains(n) else { throw .invalidField(field, "must be an integer from 1 to 128") }
            choices = max(choices, n)
        }
        var background = false
        if let b = present("background") {
            guard let flag = view.bool(b) else { throw .invalidField("background", "must be true or false") }
            background = flag
        }
        var thinkingBudget: Int64?
        if let thinking = member("thinking"), view.string(view.member("type", of: thinking)) == "enabled" {
            guard let n = view.int(view.member("budget_tokens", of: thinking)), (0...Self.maxOutputTokens).contains(n) else {
                throw .invalidField("thinking.budget_tokens", "must be an integer from 0 to \(Self.maxOutputTokens)")
            }
            thinkingBudget = n
        }
        var maxToolCalls: Int64?
        if let v = present("max_tool_calls") {
            guard let n = view.int(v), n >= 0 else { throw .invalidField("max_tool_calls", "must be a non-negative integer") }
            maxToolCalls = n
        }
        let hasTools = view.count(ofArrayAt: member("tools")) > 0
        var input = InputScan(view: view)
        input.scan(members, route: route)
        self.init(
            route: route, model: model, stream: stream, outputLimit: outputLimit, choices: choices,
            clientIncludesUsage: view.bool(view.member("include_usage", of: member("stream_options"))) ?? false,
            contentTokenBound: input.tokens, images: input.images, unseenInputs: input.unseen,
            serverTools: ServerTool.scan(members, view, route: route), maxToolCalls: maxToolCalls, background: background,
            serviceTier: view.string(member("service_tier")), thinkingBudgetTokens: thinkingBudget,
            cacheControl: input.cacheControl, hasTools: hasTools, members: members, bytes: body)
    }
}
