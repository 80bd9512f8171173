import Testing
@testable import TollgateCore
import NIOCore
import TollgateFuzzChecks
import TollgateRedis

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

    /// `make fuzz` (redis-reply): an array header of 2^31 - 1 elements inside a pipeline of
    /// replies made hiredis 0.14 allocate a 16 GiB element table at once.
    static let hugeArrayHeader = "2a350d0a3a310d0a24330d0a742a300dff2a340d0a3a340d0a2a320d0a3a350d0a242d310d0a2b4f4b0db92d45522a35a50d340d0a2a323134373438333634370d0a2b4f4b0d0a2d45525220780d0a52220d0a"

    @Test("an array reply declaring more than 2^20 elements is a protocol error, not a 16 GiB allocation")
    func hugeArrayIsRefused() throws {
        let bytes = stride(from: 0, to: Self.hugeArrayHeader.count, by: 2).map { i -> UInt8 in
            let start = Self.hugeArrayHeader.index(Self.hugeArrayHeader.startIndex, offsetBy: i)
            return UInt8(Self.hugeArrayHeader[start...].prefix(2), radix: 16)!
        }
        try FuzzTarget.redisReply.check(bytes)
        let reader = RedisReplyReader()
        reader.feed(ByteBuffer(string: "*2147483647\r\n"))
        #expect(throws: (any Error).self) { try reader.next() }
        // At the bound, an array is still read (its elements are yet to come).
        let atBound = RedisReplyReader()
        atBound.feed(ByteBuffer(string: "*1048576\r\n:1\r\n"))
        #expect(try atBound.next() == nil)
        let small = RedisReplyReader()
        small.feed(ByteBuffer(string: "*2\r\n:1\r\n$2\r\nok\r\n"))
        #expect(try small.next() == .array([.integer(1), .bulk(Array("ok".utf8))]))
    }

    @Test("the sse-stream target passes the stream that crashed it")
    func crashingStreamPasses() throws {
        let input = [UInt8(0)] + Array("data: \(Self.int64MinPrompt)\n\n".utf8) // route byte 0: chat completions
        try FuzzTarget.sseStream.check(input)
    }
}
