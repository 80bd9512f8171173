/// The two API families Tollgate speaks. Each renders errors in its own shape.
public enum APIFamily: String, Sendable {
    case openAI = "openai"
    case anthropic
}

/// The paid endpoints, with what each needs for estimation and settlement.
public enum ProxyRoute: String, Sendable, CaseIterable {
    case chatCompletions = "/v1/chat/completions"
    case completions = "/v1/completions"
    case embeddings = "/v1/embeddings"
    case responses = "/v1/responses"
    case messages = "/v1/messages"

    public var path: String { rawValue }
    public var family: APIFamily { self == .messages ? .anthropic : .openAI }

    /// Fields that cap the reply, in the order the provider honours them. The first is the one
    /// Tollgate writes when a request has none.
    public var outputLimitFields: [String] {
        switch self {
        case .chatCompletions: return ["max_completion_tokens", "max_tokens"]
        case .completions, .messages: return ["max_tokens"]
        case .responses: return ["max_output_tokens"]
        case .embeddings: return []
        }
    }

    /// The provider's own default reply cap when the request sets none (nil: the model's maximum).
    public var providerDefaultOutputTokens: Int64? {
        switch self {
        case .completions: return 16 // legacy completions default max_tokens
        case .embeddings: return 0
        default: return nil
        }
    }

    public var hasOutput: Bool { self != .embeddings }

    /// Reads the usage this route reports in a complete (non-streamed) JSON response.
    /// The top-level members `usage(inResponse:)` reads: parsing only these skips the answer.
    public var responseUsageMembers: Set<String> {
        self == .responses ? Self.responsesUsageMembers : Self.usageMembers
    }
    // Made once: every settled answer asks.
    private static let usageMembers: Set<String> = ["usage", "service_tier"]
    private static let responsesUsageMembers: Set<String> = ["usage", "service_tier", "output"]

    /// The usage of a whole (non-streamed) answer, read without making its text into values.
    public func usage(inResponseBytes bytes: some Collection<UInt8>) -> TokenUsage? {
        switch self {
        case .chatCompletions, .completions, .embeddings:
            // The most common answer, read in place: no tree of its usage block (issue 13).
            var reader = JSONReader(Array(bytes))
            guard let members = try? reader.readTopLevelObject(),
                  let usage = members.last(where: { $0.key == "usage" })?.start else { return nil }
            let view = JSONView(bytes: reader.bytes)
            guard !view.isNull(usage) else { return nil }
            return TokenUsage.openAI(view, usageAt: usage, serviceTier: view.string(members.last { $0.key == "service_tier" }?.start))
        case .responses, .messages:
            return (try? JSONValue.parseObject(bytes, keeping: responseUsageMembers)).flatMap(usage(inResponse:))
        }
    }

    public func usage(inResponse body: JSONValue) -> TokenUsage? {
        guard let usage = body["usage"], !usage.isNull else { return nil }
        switch self {
        case .chatCompletions, .completions, .embeddings: return TokenUsage.openAI(usage, serviceTier: body["service_tier"]?.string)
        case .responses: return TokenUsage.openAIResponses(body)
        case .messages: return TokenUsage.anthropic(usage)
        }
    }
}
