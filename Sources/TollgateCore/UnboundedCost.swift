/// A request whose cost Tollgate cannot bound, refused before anything is sent upstream with a
/// 400 that names the field and the setting that would allow it.
public struct UnboundedCost: Error, Equatable, Sendable {
    /// The request field that makes the cost unbounded, e.g. `messages[0].content[1].file.file_id`.
    public var field: String
    /// The config or pricing setting that would allow it.
    public var setting: String
    public var message: String

    public init(field: String, setting: String, message: String) {
        self.field = field
        self.setting = setting
        self.message = message
    }

    static func unseenInput(_ input: UnseenInput) -> UnboundedCost {
        UnboundedCost(field: input.field, setting: "budget.unseen_input", message:
            "The field \"\(input.field)\" makes the provider read \(input.kind.rawValue), which the request body does not carry, so strict mode cannot bound its cost. Send the content inline as text, or ask the operator to set budget.unseen_input: context_window (the model's whole context window is then reserved).")
    }

    static func noContextWindow(field: String, model: String) -> UnboundedCost {
        UnboundedCost(field: field, setting: "pricing_file", message:
            "The field \"\(field)\" can only be bounded by the model's context window, and the pricing table gives '\(model)' none. Ask the operator to add context_window for it to the pricing file.")
    }

    static func serverTool(_ tool: ServerTool) -> UnboundedCost {
        UnboundedCost(field: tool.field, setting: "budget.server_tools", message:
            "The field \"\(tool.field)\" declares '\(tool.name)', a tool the provider runs itself: each call can re-read the whole context and carry a fee, so strict mode cannot bound its cost. Remove it, or ask the operator to set budget.server_tools: allow (each call is then reserved as a full context window plus its fee, up to budget.server_tool_max_calls calls).")
    }

    static func unpricedTool(_ tool: ServerTool) -> UnboundedCost {
        UnboundedCost(field: tool.field, setting: "pricing_file", message:
            "The field \"\(tool.field)\" declares '\(tool.name)', whose per-call fee ('\(tool.billedAs)') is not in the pricing table's tool_fees_usd. Remove the tool, or ask the operator to add its fee to the pricing file.")
    }

    static var background: UnboundedCost {
        UnboundedCost(field: "background", setting: "budget.background", message:
            "The field \"background\": true makes the provider answer later, outside Tollgate, so strict mode cannot see what it bills. Send the request without background, or ask the operator to set budget.background: allow (the whole reservation is then charged).")
    }

    static func unpricedTier(_ tier: String, model: String, known: [String]) -> UnboundedCost {
        UnboundedCost(field: "service_tier", setting: "pricing_file", message:
            "The field \"service_tier\" asks for '\(tier)', which the pricing table does not price for '\(model)' (priced: \(known.joined(separator: ", "))). Use one of those, or ask the operator to add it to service_tiers in the pricing file.")
    }
}
