import Testing
@testable import TollgateCore
import TollgateFuzzChecks

/// Inputs that crashed a fuzz target's harness, inline, each with the fix's expected answer.
@Suite("Fuzz findings stay fixed", .timeLimit(.minutes(1)))
struct FuzzRegressionTests {
    /// An upstream reporting Int64.min prompt tokens and one cached token made `prompt - cached`
    /// overflow in `TokenUsage.openAI`: a trap that took the whole replica down mid-stream.
    static let int64MinPrompt = #"{"choices":[],"usage":{"prompt_tokens":-9223372036854775808,"prompt_tokens_details":{"cached_tokens":1}}}"#

    @Test("usage counts out of range are held to 0…2^40 instead of overflowing")
    func usageCountsAreClamped() throws {
        let usage = try #require(TokenUsage.openAI(try JSONValue.parse(Self.int64MinPrompt)["usage"]!))
        #expect(usage.input == -1 && usage.cachedInput == 1) // 0 reported, 1 cached: billed as 1 cached
        let huge = try #require(TokenUsage.anthropic(try JSONValue.parse(
            #"{"input_tokens":9223372036854775807,"cache_read_input_tokens":9223372036854775807,"cache_creation_input_tokens":-9223372036854775808,"output_tokens":9223372036854775807,"cache_creation":{"ephemeral_1h_input_tokens":-9223372036854775808}}"#)))
        #expect(huge.input == 1 << 40 && huge.cachedInput == 1 << 40 && huge.cacheWrite == 0 && huge.output == 1 << 40)
        #expect(try Fixture.price("gpt-4o-mini").cost(of: huge).value > 0)
    }

    @Test("the sse-stream target passes the stream that crashed it")
    func crashingStreamPasses() throws {
        let input = [UInt8(0)] + Array("data: \(Self.int64MinPrompt)\n\n".utf8) // route byte 0: chat completions
        try FuzzTarget.sseStream.check(input)
    }
}
