@testable import TollgateCore
import TollgateFuzzChecks

/// Shared fixtures: the bundled table is the one source of truth for prices, so tests read
/// their numbers from it instead of repeating them.
enum Fixture {
    static func table() throws -> PriceTable { try PriceTable.bundled() }

    static func price(_ model: String) throws -> ModelPrice {
        guard let p = try table().models[model] else { throw Missing(model: model) }
        return p
    }

    static func scan(_ body: String, _ route: ProxyRoute = .chatCompletions) throws(RequestProblem) -> ScannedRequest {
        try ScannedRequest(body: Array(body.utf8), route: route)
    }

    /// A chat body with one user message per text.
    static func chat(_ texts: [String], extra: String = "") -> String {
        let messages = texts.map { #"{"role":"user","content":"# + jsonQuoted($0) + "}" }
        return #"{"model":"gpt-4o-mini","messages":["# + messages.joined(separator: ",") + "]" + extra + "}"
    }

    struct Missing: Error { let model: String }
}

extension String {
    var bytes: [UInt8] { Array(utf8) }
}

extension Array where Element == UInt8 {
    var text: String { String(decoding: self, as: UTF8.self) }
}

/// A seeded generator so "random" chunkings are the same on every run.
typealias SeededGenerator = SplitMix64
