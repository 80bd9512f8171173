import Testing
@testable import TollgateCore

@Suite("ScannedRequest: reading a request body")
struct ScannedRequestTests {
    @Test("model, stream and defaults of a minimal chat request")
    func minimal() throws {
        let r = try Fixture.scan(#"{"model":"gpt-4o-mini","messages":[]}"#)
        #expect(r.model == "gpt-4o-mini")
        #expect(r.stream == false)
        #expect(r.outputLimit == nil)
        #expect(r.choices == 1)
        #expect(r.clientIncludesUsage == false)
        #expect(r.members.map(\.key) == ["model", "messages"])
        #expect(r.bytes == #"{"model":"gpt-4o-mini","messages":[]}"#.bytes)
    }

    @Test("stream is read when true, false or null", arguments: [
        (#","stream":true"#, true), (#","stream":false"#, false), (#","stream":null"#, false), ("", false),
    ])
    func stream(extra: String, expected: Bool) throws {
        #expect(try Fixture.scan(Fixture.chat(["hi"], extra: extra)).stream == expected)
    }

    @Test("the reply cap is read from the route's fields, in the provider's order", arguments: [
        (ProxyRoute.chatCompletions, #"{"model":"m","max_completion_tokens":300,"max_tokens":100}"#, "max_completion_tokens", Int64(300)),
        (.chatCompletions, #"{"model":"m","max_tokens":100,"max_completion_tokens":300}"#, "max_completion_tokens", 300),
        (.chatCompletions, #"{"model":"m","max_tokens":100}"#, "max_tokens", 100),
        (.chatCompletions, #"{"model":"m","max_completion_tokens":null,"max_tokens":100}"#, "max_tokens", 100),
        (.completions, #"{"model":"m","max_tokens":0}"#, "max_tokens", 0),
        (.messages, #"{"model":"m","max_tokens":1024}"#, "max_tokens", 1024),
        (.responses, #"{"model":"m","max_output_tokens":500,"max_tokens":9}"#, "max_output_tokens", 500),
    ])
    func outputLimit(route: ProxyRoute, body: String, field: String, tokens: Int64) throws {
        let limit = try #require(try Fixture.scan(body, route).outputLimit)
        #expect(limit.field == field)
        #expect(limit.tokens == tokens)
    }

    @Test("fields of other routes are not reply caps", arguments: [
        (ProxyRoute.embeddings, #"{"model":"m","input":"x","max_tokens":5}"#),
        (.responses, #"{"model":"m","max_tokens":5}"#),
        (.messages, #"{"model":"m","max_completion_tokens":5}"#),
    ])
    func noOutputLimit(route: ProxyRoute, body: String) throws {
        #expect(try Fixture.scan(body, route).outputLimit == nil)
    }

    @Test("n and best_of multiply choices; the larger wins", arguments: [
        (#","n":3"#, Int64(3)), (#","best_of":5,"n":2"#, 5), (#","n":128"#, 128), (#","n":null"#, 1), (#","n":1"#, 1),
    ])
    func choices(extra: String, expected: Int64) throws {
        #expect(try Fixture.scan(Fixture.chat(["hi"], extra: extra)).choices == expected)
    }

    @Test("stream_options.include_usage is what the client asked for", arguments: [
        (#","stream":true,"stream_options":{"include_usage":true}"#, true),
        (#","stream":true,"stream_options":{"include_usage":false}"#, false),
        (#","stream":true,"stream_options":{}"#, false),
        (#","stream":true"#, false),
    ])
    func includeUsage(extra: String, expected: Bool) throws {
        #expect(try Fixture.scan(Fixture.chat(["hi"], extra: extra)).clientIncludesUsage == expected)
    }

    @Test("bodies Tollgate cannot proxy name what is wrong", arguments: [
        (#"{"model":"m","max_tokens":-1}"#, ProxyRoute.chatCompletions, RequestProblem.invalidField("max_tokens", "must be an integer from 0 to 10000000")),
        (#"{"model":"m","max_tokens":1.5}"#, .messages, .invalidField("max_tokens", "must be an integer from 0 to 10000000")),
        (#"{"model":"m","max_completion_tokens":"100"}"#, .chatCompletions, .invalidField("max_completion_tokens", "must be an integer from 0 to 10000000")),
        (#"{"model":"m","max_output_tokens":true}"#, .responses, .invalidField("max_output_tokens", "must be an integer from 0 to 10000000")),
        (#"{"model":"m","stream":"yes"}"#, .chatCompletions, .invalidField("stream", "must be true or false")),
        (#"{"model":"m","stream":1}"#, .messages, .invalidField("stream", "must be true or false")),
        (#"{"model":"m","n":0}"#, .chatCompletions, .invalidField("n", "must be an integer from 1 to 128")),
        (#"{"model":"m","n":129}"#, .chatCompletions, .invalidField("n", "must be an integer from 1 to 128")),
        (#"{"model":"m","best_of":"2"}"#, .completions, .invalidField("best_of", "must be an integer from 1 to 128")),
        (#"{"messages":[]}"#, .chatCompletions, .missingModel),
        (#"{"model":""}"#, .chatCompletions, .missingModel),
        (#"{"model":5}"#, .chatCompletions, .missingModel),
        (#"{"model":null}"#, .messages, .missingModel),
    ])
    func problems(body: String, route: ProxyRoute, problem: RequestProblem) {
        #expect(throws: problem) { try Fixture.scan(body, route) }
        #expect(!problem.message.isEmpty)
    }

    @Test("a body that is not one JSON object is invalid JSON", arguments: [
        "[1,2]", #""gpt-4o""#, "", "null", #"{"model":"m"} trailing"#, #"{"model":"m",}"#, #"{"model":"m""#,
    ])
    func invalidJSON(body: String) {
        let problem = #expect(throws: RequestProblem.self) { try Fixture.scan(body) }
        guard case .invalidJSON(let why)? = problem else {
            Issue.record("expected invalidJSON, got \(String(describing: problem))")
            return
        }
        #expect(why.contains("invalid JSON at byte"))
        #expect(problem?.message.contains("not valid JSON") == true)
    }

    @Test("problem messages tell the client what to send")
    func messages() {
        #expect(RequestProblem.missingModel.message.contains("\"model\""))
        #expect(RequestProblem.invalidField("stream", "must be true or false").message == #"The field "stream" must be true or false."#)
    }

    @Test("top-level members remember the exact bytes of their values")
    func memberRanges() throws {
        let body = #"{ "model" : "gpt-4o" , "max_tokens":  4096 ,"messages":[ {"role":"user","content":"hi"} ] }"#
        let r = try Fixture.scan(body)
        for m in r.members {
            let slice = Array(r.bytes[m.valueRange])
            #expect(try JSONValue.parse(slice) == m.value, "\(m.key)")
        }
        #expect(Array(r.bytes[r.members[1].valueRange]).text == "4096")
    }
}
