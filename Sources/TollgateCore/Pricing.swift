import Yams

/// Prices of one model, per million tokens.
public struct ModelPrice: Hashable, Sendable {
    public var input: PricePerMillion
    /// Cache hits (OpenAI cached_tokens, Anthropic cache_read_input_tokens).
    public var cachedInput: PricePerMillion
    /// Anthropic cache_creation_input_tokens.
    public var cacheWrite: PricePerMillion
    public var output: PricePerMillion
    /// Reasoning tokens are billed as output unless the table says otherwise.
    public var reasoning: PricePerMillion
    public var maxOutputTokens: Int64

    public init(input: PricePerMillion, cachedInput: PricePerMillion? = nil, cacheWrite: PricePerMillion? = nil,
                output: PricePerMillion, reasoning: PricePerMillion? = nil, maxOutputTokens: Int64) {
        self.input = input
        self.cachedInput = cachedInput ?? input
        self.cacheWrite = cacheWrite ?? input
        self.output = output
        self.reasoning = reasoning ?? output
        self.maxOutputTokens = maxOutputTokens
    }

    /// The real cost of what the provider reported, rounded up once at the end.
    public func cost(of usage: TokenUsage) -> NanoUSD {
        let terms: [(Int64, PricePerMillion)] = [
            (usage.input, input), (usage.cachedInput, cachedInput), (usage.cacheWrite, cacheWrite),
            (usage.output, output), (usage.reasoning, reasoning),
        ]
        let nanoTimesMillion = terms.reduce(Int128(0)) { $0 + Int128(max(0, $1.0)) * Int128($1.1.nanoUSD) }
        return NanoUSD(PricePerMillion.ceilDiv(nanoTimesMillion, 1_000_000))
    }

    /// The dearest way an input token can be billed (a cache write costs more than plain input).
    public var worstInput: PricePerMillion { max(input, cachedInput, cacheWrite) }
}

extension PricePerMillion: Comparable {
    public static func < (a: PricePerMillion, b: PricePerMillion) -> Bool { a.nanoUSD < b.nanoUSD }
}

/// The pricing table: shipped in `Sources/TollgateCore/Resources/pricing.yaml`, replaceable with
/// `pricing_file`. Dated snapshots resolve to their base model by longest prefix
/// (`gpt-4o-2024-08-06` → `gpt-4o`, `claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`); any other
/// suffix is a different model and must be listed itself.
public struct PriceTable: Sendable {
    public var models: [String: ModelPrice]
    public var source: String
    public var defaultPrice: ModelPrice?

    public init(models: [String: ModelPrice], source: String = "", defaultPrice: ModelPrice? = nil) {
        self.models = models
        self.source = source
        self.defaultPrice = defaultPrice
    }

    public func price(for model: String) -> ModelPrice? {
        if let p = models[model] { return p }
        var best: (key: String, price: ModelPrice)?
        for (key, price) in models where key.count > (best?.key.count ?? 0) && Self.isSnapshot(model, of: key) {
            best = (key, price)
        }
        return best?.price ?? defaultPrice
    }

    /// Only a date suffix makes a snapshot: `o1-pro` is a different (dearer) model than `o1`.
    static func isSnapshot(_ model: String, of base: String) -> Bool {
        guard model.hasPrefix(base + "-") else { return false }
        let suffix = model.dropFirst(base.count + 1)
        let digits = suffix.filter(\.isASCIIDigit)
        if suffix.count == 8, digits.count == 8 { return true } // 20250929
        if suffix.count == 10, digits.count == 8, suffix.split(separator: "-").map(\.count) == [4, 2, 2] { return true } // 2024-08-06
        return suffix == "latest"
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
        var models: [String: ModelPrice] = [:]
        for (nameNode, entry) in modelsNode {
            guard let name = nameNode.string else { continue }
            models[name] = try parseEntry(entry, path: "\(origin): models.\(name)")
        }
        return PriceTable(models: models, source: root["source"]?.string ?? origin)
    }

    static func parseEntry(_ node: Node, path: String) throws -> ModelPrice {
        func price(_ key: String, required: Bool) throws -> PricePerMillion? {
            guard let text = node[key]?.scalar?.string else {
                if required { throw ConfigError(key: "\(path).\(key)", message: "is required (USD per million tokens, e.g. 2.50)") }
                return nil
            }
            guard let p = PricePerMillion(usd: text) else {
                throw ConfigError(key: "\(path).\(key)", message: "must be a non-negative USD amount per million tokens with at most 9 decimals (got '\(text)')")
            }
            return p
        }
        guard let maxText = node["max_output_tokens"]?.scalar?.string, let maxOut = Int64(maxText), maxOut >= 0 else {
            throw ConfigError(key: "\(path).max_output_tokens", message: "is required: the model's largest possible reply in tokens (0 for embeddings)")
        }
        return ModelPrice(
            input: try price("input", required: true)!, cachedInput: try price("cached_input", required: false),
            cacheWrite: try price("cache_write", required: false), output: try price("output", required: false) ?? .zero,
            reasoning: try price("reasoning", required: false), maxOutputTokens: maxOut)
    }
}

import Foundation
