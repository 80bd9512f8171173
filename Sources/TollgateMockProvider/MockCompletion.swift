import Foundation
import TollgateCore

/// The token counts of one mock reply, decided from the request text, its output cap and the
/// knobs. Every route renders these same numbers in its own provider's shape.
struct MockCompletion: Sendable {
    /// Each generated token is this word, so a reply of C visible tokens is C copies of it.
    static let token = "tok "

    let promptTokens: Int
    /// Part of `promptTokens` reported as cache hits.
    let cachedTokens: Int
    /// Anthropic: parts of the prompt written to the cache (5-minute and 1-hour TTL).
    let cacheWriteTokens: Int
    let cacheWrite1hTokens: Int
    /// Part of `completionTokens` spent on (invisible) reasoning.
    let reasoningTokens: Int
    /// Everything generated, reasoning included: what the provider bills as output.
    let completionTokens: Int
    /// True when the cap cut the reply short ("length" / "max_tokens" / incomplete).
    let hitCap: Bool

    init(promptTokens: Int, cap: Int?, knobs: MockKnobs) {
        self.promptTokens = promptTokens
        cachedTokens = min(knobs.cachedTokens, promptTokens)
        cacheWriteTokens = min(knobs.cacheWriteTokens, promptTokens - cachedTokens)
        cacheWrite1hTokens = min(knobs.cacheWrite1hTokens, promptTokens - cachedTokens - cacheWriteTokens)
        // Reasoning comes first and counts against the same cap, as with OpenAI's o-series.
        let wanted = knobs.replyTokens + knobs.reasoningTokens
        completionTokens = min(cap ?? wanted, wanted)
        hitCap = completionTokens < wanted
        reasoningTokens = min(knobs.reasoningTokens, completionTokens)
    }

    var totalTokens: Int { promptTokens + completionTokens }
    var visibleTokens: Int { completionTokens - reasoningTokens }
    var text: String { String(repeating: Self.token, count: visibleTokens) }
}

/// Prompt size from the request text. A quarter of the UTF-8 bytes (at least 1) keeps the count
/// at or below the bytes sent, which the proxy relies on as its upper bound for input tokens.
enum PromptTokens {
    static func count(_ parts: JSONValue?...) -> Int {
        max(1, parts.reduce(0) { $0 + textBytes($1) } / 4)
    }

    /// UTF-8 bytes of the text in a prompt value: plain strings, arrays of them, message lists
    /// and content blocks (their `text` / `content` members); roles, ids and types are skipped.
    static func textBytes(_ value: JSONValue?) -> Int {
        switch value {
        case .string(let s): return s.utf8.count
        // Token-id prompts: the digits stand in for the text, so the count stays below the body.
        case .number(let digits): return digits.utf8.count
        case .array(let items): return items.reduce(0) { $0 + textBytes($1) }
        case .object: return textBytes(value?["text"]) + textBytes(value?["content"])
        default: return 0
        }
    }
}

/// Ids and timestamps in the providers' formats.
enum MockIdentity {
    static func id(_ prefix: String) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        return prefix + String((0..<24).map { _ in alphabet.randomElement()! })
    }

    static var now: Int { Int(Date().timeIntervalSince1970) }
}
