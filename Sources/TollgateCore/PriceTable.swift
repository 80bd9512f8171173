import Foundation
import Yams

/// The pricing table: shipped in `Sources/TollgateCore/Resources/pricing.yaml`, replaceable with
/// `pricing_file`. Dated snapshots resolve to their base model by longest prefix
/// (`gpt-4o-2024-08-06` → `gpt-4o`, `claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`); any other
/// suffix is a different model and must be listed itself. A snapshot priced differently from its
/// base (`gpt-4o-2024-05-13`) is listed itself: an exact name beats a prefix.
public struct PriceTable: Sendable {
    public var models: [String: ModelPrice]
    public var source: String
    /// From the config's `default_price`: it has only the default tier and no tool fees, so
    /// requests for an unlisted model on another tier or with provider-run tools are refused.
    public var defaultPrice: ModelPrice?

    public init(models: [String: ModelPrice], source: String = "", defaultPrice: ModelPrice? = nil) {
        self.models = models
        self.source = source
        self.defaultPrice = defaultPrice
    }

    public func price(for model: String) -> ModelPrice? {
        if let p = models[model] { return p }
        if let base = Self.snapshotBase(of: model), let p = models[base] { return p }
        return defaultPrice
    }

    /// The table's `service_tiers:` and `tool_fees_usd:` under the model's own.
    static func withTableWide(_ price: ModelPrice, tiers: [String: TierMultiplier], fees: [String: NanoUSD]) -> ModelPrice {
        var p = price
        p.serviceTiers = tiers.merging(p.serviceTiers) { _, model in model }
        p.toolFees = fees.merging(p.toolFees) { _, model in model }
        return p
    }

    /// The model a snapshot is of: the name without its date suffix (`-20250929`, `-2024-08-06`)
    /// or `-latest`. Only those make a snapshot: `o1-pro` is a different (dearer) model than `o1`.
    /// Read on the name's bytes, since a client pinning a snapshot asks on every request (scanning
    /// the table for the longest base took ~4 µs and 20 allocations).
    static func snapshotBase(of model: String) -> String? {
        let name = Array(model.utf8)
        let n = name.count
        func digits(_ range: Range<Int>) -> Bool { name[range].allSatisfy { (0x30...0x39).contains($0) } }
        func dash(_ i: Int) -> Bool { name[i] == UInt8(ascii: "-") }
        let suffixLength: Int
        if n > 7, name[(n - 7)...].elementsEqual("-latest".utf8) {
            suffixLength = 7
        } else if n > 9, dash(n - 9), digits((n - 8)..<n) { // -20250929
            suffixLength = 9
        } else if n > 11, dash(n - 11), digits((n - 10)..<(n - 6)), dash(n - 6), digits((n - 5)..<(n - 3)), dash(n - 3),
                  digits((n - 2)..<n) { // -2024-08-06
            suffixLength = 11
        } else {
            return nil
        }
        return String(decoding: name[..<(n - suffixLength)], as: UTF8.self)
    }

    public static func bundled() throws -> PriceTable {
        guard let url = Bundle.module.url(forResource: "pricing", withExtension: "yaml") else {
            throw ConfigError(key: "pricing_file", message: "the bundled pricing table is missing from the build; set pricing_file to a copy of Sources/TollgateCore/Resources/pricing.yaml")
        }
        return try parse(yaml: String(contentsOf: url, encoding: .utf8), origin: "bundled pricing.yaml")
    }

    /// Parses the YAML table. Prices are read as decimal text, never through `Double`.
    public static func parse(yaml: String, origin: String) throws -> PriceTable {
        let root: Node?
        do { root = try Yams.compose(yaml: yaml) } catch {
            throw ConfigError(key: "pricing_file", message: "\(origin) is not valid YAML: \(error)")
        }
        guard let root, let modelsNode = root["models"]?.mapping else {
            throw ConfigError(key: "pricing_file", message: "\(origin) needs a top-level 'models:' mapping of model name to prices")
        }
        // Without a service_tiers: section only the default tier is priced.
        let tiers = try root["service_tiers"].map { try parseTiers($0, path: "\(origin): service_tiers") } ?? TierMultiplier.defaultTiers
        let fees = try root["tool_fees_usd"].map { try parseFees($0, path: "\(origin): tool_fees_usd") } ?? [:]
        var models: [String: ModelPrice] = [:]
        for (nameNode, entry) in modelsNode {
            guard let name = nameNode.string else { continue }
            let price = try parseEntry(entry, path: "\(origin): models.\(name)")
            models[name] = withTableWide(price, tiers: tiers, fees: fees)
        }
        return PriceTable(models: models, source: root["source"]?.string ?? origin)
    }

    static func parseTiers(_ node: Node, path: String) throws -> [String: TierMultiplier] {
        guard let mapping = node.mapping else {
            throw ConfigError(key: path, message: "must map tier names to price multipliers, e.g. { default: 1, flex: 0.5, priority: 2 }")
        }
        var tiers: [String: TierMultiplier] = [:]
        for (k, v) in mapping {
            guard let name = k.string, let text = v.scalar?.string, let m = TierMultiplier(decimal: text) else {
                throw ConfigError(key: "\(path).\(k.string ?? "?")", message: "must be a non-negative decimal multiplier with at most 6 decimals, e.g. 0.5 (got '\(v.scalar?.string ?? "?")')")
            }
            tiers[name] = m
        }
        return tiers
    }

    static func parseFees(_ node: Node, path: String) throws -> [String: NanoUSD] {
        guard let mapping = node.mapping else {
            throw ConfigError(key: path, message: "must map tool billing names to USD per call, e.g. { web_search_call: 0.01 }")
        }
        var fees: [String: NanoUSD] = [:]
        for (k, v) in mapping {
            guard let name = k.string, let text = v.scalar?.string, let fee = NanoUSD(usd: text), fee >= .zero else {
                throw ConfigError(key: "\(path).\(k.string ?? "?")", message: "must be a non-negative USD amount per call with at most 9 decimals (got '\(v.scalar?.string ?? "?")')")
            }
            fees[name] = fee
        }
        return fees
    }

    static func parseEntry(_ node: Node, path: String) throws -> ModelPrice {
        func price(_ node: Node, _ key: String, at path: String, required: Bool) throws -> PricePerMillion? {
            guard let text = node[key]?.scalar?.string else {
                if required { throw ConfigError(key: "\(path).\(key)", message: "is required (USD per million tokens, e.g. 2.50)") }
                return nil
            }
            guard let p = PricePerMillion(usd: text) else {
                throw ConfigError(key: "\(path).\(key)", message: "must be a non-negative USD amount per million tokens with at most 9 decimals (got '\(text)')")
            }
            return p
        }
        func count(_ node: Node, _ key: String, at path: String, _ meaning: String) throws -> Int64? {
            guard let v = node[key] else { return nil }
            guard let text = v.scalar?.string, let n = Int64(text), n >= 0 else {
                throw ConfigError(key: "\(path).\(key)", message: "must be a non-negative integer: \(meaning) (got '\(v.scalar?.string ?? "a mapping")')")
            }
            return n
        }
        guard let maxOut = try count(node, "max_output_tokens", at: path, "the model's largest possible reply in tokens (0 for embeddings)") else {
            throw ConfigError(key: "\(path).max_output_tokens", message: "is required: the model's largest possible reply in tokens (0 for embeddings)")
        }
        let input = try price(node, "input", at: path, required: true)!
        var p = ModelPrice(
            input: input, cachedInput: try price(node, "cached_input", at: path, required: false),
            cacheWrite: try price(node, "cache_write", at: path, required: false),
            cacheWrite1h: try price(node, "cache_write_1h", at: path, required: false),
            output: try price(node, "output", at: path, required: false) ?? .zero,
            reasoning: try price(node, "reasoning", at: path, required: false), maxOutputTokens: maxOut,
            contextWindow: try count(node, "context_window", at: path, "the most input tokens the model accepts"),
            toolUseOverheadTokens: try count(node, "tool_use_overhead_tokens", at: path, "tokens the provider adds when tools are present") ?? 0)
        if let image = node["image_tokens"] {
            let at = path + ".image_tokens"
            guard let high = try count(image, "high", at: at, "worst-case tokens of one high- or auto-detail image") else {
                throw ConfigError(key: at + ".high", message: "is required: worst-case tokens of one high- or auto-detail image")
            }
            p.imageTokens = ImageTokens(high: high, low: try count(image, "low", at: at, "worst-case tokens of one low-detail image") ?? high)
        }
        if let long = node["long_context"] {
            let at = path + ".long_context"
            guard let above = try count(long, "above_input_tokens", at: at, "the input size above which these rates apply") else {
                throw ConfigError(key: at + ".above_input_tokens", message: "is required: the input size above which these rates apply")
            }
            let longInput = try price(long, "input", at: at, required: true)!
            let longOutput = try price(long, "output", at: at, required: true)!
            p.longContext = LongContextPrice(aboveInputTokens: above, rates: TokenRates(
                input: longInput, cachedInput: try price(long, "cached_input", at: at, required: false) ?? longInput,
                cacheWrite: try price(long, "cache_write", at: at, required: false) ?? longInput,
                cacheWrite1h: try price(long, "cache_write_1h", at: at, required: false) ?? PricePerMillion(nanoUSD: longInput.nanoUSD * 2),
                output: longOutput, reasoning: try price(long, "reasoning", at: at, required: false) ?? longOutput))
        }
        if let tiers = node["tiers"] { p.serviceTiers = try parseTiers(tiers, path: path + ".tiers") }
        if let hidden = node["hidden_reasoning"] {
            guard let text = hidden.scalar?.string, let b = Bool(text) else {
                throw ConfigError(key: path + ".hidden_reasoning", message: "must be true or false")
            }
            p.hiddenReasoning = b
        }
        return p
    }
}
