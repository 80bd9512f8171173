@testable import TollgateCore

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

/// SplitMix64: a seeded generator so "random" chunkings are the same on every run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
