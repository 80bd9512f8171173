/// Anthropic beta features (`anthropic-beta` request header) and whether Tollgate bounds their
/// cost. A beta can change what a request costs (a longer context at higher rates, a new tool
/// with its own fee), so strict mode refuses a beta it does not know, unless the operator lists
/// it in `budget.allowed_betas`.
public enum AnthropicBetas {
    /// Prefixes (the part before the date) of betas whose cost is bounded:
    /// - `prompt-caching`, `extended-cache-ttl`: cache reads and 5-minute / 1-hour writes are priced;
    /// - `context-1m`: the long-context rates are priced;
    /// - `output-128k`: the reply cap Tollgate writes into the request still binds;
    /// - `token-efficient-tools`, `interleaved-thinking`, `fine-grained-tool-streaming`,
    ///   `context-management`: change no price;
    /// - `files-api`, `mcp-client`, `code-execution`, `computer-use`, `web-fetch`, `web-search`,
    ///   `pdfs`: what they bring into a request (file ids, `mcp_servers`, server tools, PDFs) is
    ///   refused or bounded from the body itself (`budget.unseen_input`, `budget.server_tools`).
    public static let bounded: [String] = [
        "prompt-caching-", "extended-cache-ttl-", "context-1m-", "output-128k-", "token-efficient-tools-",
        "interleaved-thinking-", "fine-grained-tool-streaming-", "context-management-", "files-api-",
        "mcp-client-", "code-execution-", "computer-use-", "web-fetch-", "web-search-", "pdfs-",
    ]

    /// The betas in the header values (comma-separated) that are neither bounded nor allowed.
    public static func unbounded(_ headerValues: [String], allowed: Set<String>) -> [String] {
        headerValues.flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { beta in !beta.isEmpty && !allowed.contains(beta) && !bounded.contains { beta.hasPrefix($0) } }
    }
}

import Foundation
