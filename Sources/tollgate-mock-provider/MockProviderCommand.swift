import ArgumentParser
import TollgateMockProvider

/// Serves the fake OpenAI/Anthropic API for demos and benchmarks until SIGINT or SIGTERM.
@main
struct MockProviderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tollgate-mock-provider",
        abstract: "A fake OpenAI and Anthropic API that never calls a real provider.",
        discussion: """
            Routes: POST /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/responses, \
            /v1/messages; GET /v1/models; POST /hooks/alerts (a receiver for Tollgate's alert \
            webhook). Shape replies with the request headers \
            \(MockHeader.completionTokens), \(MockHeader.cachedTokens), \(MockHeader.reasoningTokens), \
            \(MockHeader.status), \(MockHeader.latencyMs), \(MockHeader.chunkDelayMs), \
            \(MockHeader.dropAfterChunks).
            """)

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on.")
    var port = 9090

    @Option(help: "Append each alert POSTed to /hooks/alerts to this file, one JSON line each.")
    var alertsFile: String?

    @Option(help: "Append the usage each reply bills to this file, one JSON line each, tagged with its X-Mock-Tag header.")
    var usageLog: String?

    func run() async throws {
        try await MockProvider.run(host: host, port: port, alertsFile: alertsFile, usageLog: usageLog)
    }
}
