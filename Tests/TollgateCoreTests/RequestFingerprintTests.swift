import Testing
@testable import TollgateCore

private func fingerprint(_ body: String, _ route: ProxyRoute = .chatCompletions) throws -> RequestFingerprint {
    RequestFingerprint(route: route, request: try Fixture.scan(body, route))
}

@Suite("Request fingerprint: the same request, however it is spelled")
struct RequestFingerprintTests {
    static let base = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#

    // SHA-256 of "tollgate-fingerprint-v1\n/v1/chat/completions\n\"gpt-4o-mini\"\n{\"messages\":[{\"content\":\"hi\",\"role\":\"user\"}]}",
    // computed with Python's hashlib. Pins the canonical form: replicas of different versions
    // must agree on it.
    @Test("the fingerprint is SHA-256 of route, model and the canonical content, in lowercase hex")
    func knownAnswer() throws {
        let f = try fingerprint(#"{"temperature":0.2,"messages":[{"role":"user","content":"hi"}],"model":"gpt-4o-mini"}"#)
        #expect(f.hex == "4ada8a6a1f1022e618a59b7599e15c046050945bd83da9c7e1d8a7d07f2c837d")
        #expect(f.description == f.hex)
    }

    // Expected digests from Python's hashlib over the canonical text in each comment.
    // "tollgate-fingerprint-v1\n/v1/chat/completions\n\"m\"\n{\"messages\":[{\"content\":\"hi\",\"role\":\"user\"}],\"tools\":[{\"k00\":0,…,\"k05\":\"last\",…,\"k19\":19}]}"
    @Test("an object of many keys is sorted and its repeated key keeps its last value")
    func manyKeys() throws {
        let body = #"{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"k17":17,"k15":15,"k11":11,"k05":"first","k18":18,"k07":7,"k06":6,"k19":19,"k03":3,"k14":14,"k00":0,"k09":9,"k05":5,"k16":16,"k08":8,"k13":13,"k02":2,"k01":1,"k12":12,"k04":4,"k10":10,"k05":"last"}]}"#
        #expect(try fingerprint(body).hex == "de3eeaa5fa8363a1a90715df63db0dcb7d72b372f24a5da27c2eb64750a83cae")
    }

    // "tollgate-fingerprint-v1\n/v1/chat/completions\n\"m\"\n{\"messages\":[{\"b\":[true,null,1.50],\"content\":\"café\",\"role\":\"user\",\"x\\\"y\\tz\":1}]}"
    @Test("a key that needs escaping is written escaped; strings unescaped to UTF-8; numbers as written")
    func escapedKeys() throws {
        let body = #"{"model":"m","messages":[{"role":"user","content":"caf\u00e9","x\"y\tz":1,"b":[true,null,1.50]}]}"#
        #expect(try fingerprint(body).hex == "c78cb3aa6cce2bdd2f5daebf2c5fd53265803f7073ee1cfbdc3165e329b47187")
    }

    @Test("settings that vary between retries do not change it", arguments: [
        #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"temperature":0.7,"seed":42}"#,
        #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"top_p":0.1,"user":"u-1","metadata":{"request_id":"r-9"}}"#,
        #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#,
        #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":10,"max_completion_tokens":20,"n":2}"#,
        #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"service_tier":"flex","store":true,"stop":["x"]}"#,
        #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"reasoning_effort":"low","parallel_tool_calls":false}"#,
        #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"tools":null,"tool_choice":null}"#,
    ])
    func settingsIgnored(body: String) throws {
        #expect(try fingerprint(body) == fingerprint(Self.base))
    }

    @Test("key order, whitespace, escape spelling and repeated keys do not change it", arguments: [
        #"{"messages":[{"content":"hi","role":"user"}],"model":"gpt-4o-mini"}"#,
        "{ \"model\" : \"gpt-4o-mini\" ,\n\t\"messages\" : [ { \"role\" : \"user\" , \"content\" : \"hi\" } ] }",
        #"{"model":"gpt-4o-mini","messages":[{"role":"\u0075ser","content":"h\u0069"}]}"#,
        #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"bye"}],"messages":[{"role":"user","content":"hi"}]}"#,
        #"{"model":"gpt-4o-mini","messages":[{"role":"system","role":"user","content":"hi"}]}"#,
    ])
    func spellingIgnored(body: String) throws {
        #expect(try fingerprint(body) == fingerprint(Self.base))
    }

    @Test("content, model and route change it", arguments: [
        (#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi!"}]}"#, ProxyRoute.chatCompletions),
        (#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#, .chatCompletions),
        (#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#, .messages),
        (#"{"model":"gpt-4o-mini","messages":[{"role":"assistant","content":"hi"}]}"#, .chatCompletions),
        (#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}]}"#, .chatCompletions),
        (#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"tool_choice":"required"}"#, .chatCompletions),
        (#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}}"#, .chatCompletions),
        (#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"system":"be brief"}"#, .chatCompletions),
        (#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"},{"role":"user","content":"hi"}]}"#, .chatCompletions),
    ])
    func contentCounts(body: String, route: ProxyRoute) throws {
        #expect(try fingerprint(body, route) != fingerprint(Self.base))
    }

    @Test("the message order counts; numbers count as written")
    func orderAndNumbers() throws {
        let ab = #"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]}"#
        let ba = #"{"model":"m","messages":[{"role":"user","content":"b"},{"role":"user","content":"a"}]}"#
        #expect(try fingerprint(ab) != fingerprint(ba))
        let one = #"{"model":"m","messages":[],"tools":[{"type":"function","function":{"name":"f","strict":1}}]}"#
        let onePointZero = #"{"model":"m","messages":[],"tools":[{"type":"function","function":{"name":"f","strict":1.0}}]}"#
        #expect(try fingerprint(one) != fingerprint(onePointZero))
    }

    @Test("Responses requests count input, instructions and the conversation they continue")
    func responses() throws {
        let base = #"{"model":"gpt-4.1","input":"hi","instructions":"be brief","previous_response_id":"resp_1"}"#
        #expect(try fingerprint(base, .responses)
            == fingerprint(#"{"input":"hi","model":"gpt-4.1","max_output_tokens":5,"previous_response_id":"resp_1","instructions":"be brief","store":false}"#, .responses))
        for changed in [
            #"{"model":"gpt-4.1","input":"hello","instructions":"be brief","previous_response_id":"resp_1"}"#,
            #"{"model":"gpt-4.1","input":"hi","instructions":"be long","previous_response_id":"resp_1"}"#,
            #"{"model":"gpt-4.1","input":"hi","instructions":"be brief","previous_response_id":"resp_2"}"#,
            #"{"model":"gpt-4.1","input":"hi","instructions":"be brief","previous_response_id":"resp_1","text":{"format":{"type":"json_object"}}}"#,
        ] {
            #expect(try fingerprint(changed, .responses) != fingerprint(base, .responses))
        }
    }

    @Test("legacy completions count the prompt and suffix; Anthropic counts the system prompt")
    func promptAndSystem() throws {
        let prompt = #"{"model":"gpt-3.5-turbo-instruct","prompt":"Say hi","temperature":0}"#
        #expect(try fingerprint(prompt, .completions)
            == fingerprint(#"{"prompt":"Say hi","model":"gpt-3.5-turbo-instruct","echo":true,"best_of":2}"#, .completions))
        #expect(try fingerprint(prompt, .completions)
            != fingerprint(#"{"model":"gpt-3.5-turbo-instruct","prompt":"Say hi","suffix":"!"}"#, .completions))
        let system = #"{"model":"claude-haiku-4-5","max_tokens":64,"system":"a","messages":[{"role":"user","content":"hi"}]}"#
        #expect(try fingerprint(system, .messages)
            == fingerprint(#"{"model":"claude-haiku-4-5","max_tokens":1024,"thinking":{"type":"disabled"},"system":"a","messages":[{"role":"user","content":"hi"}]}"#, .messages))
        #expect(try fingerprint(system, .messages)
            != fingerprint(#"{"model":"claude-haiku-4-5","max_tokens":64,"system":"b","messages":[{"role":"user","content":"hi"}]}"#, .messages))
    }

    @Test("the counted fields are the documented ones")
    func countedFields() {
        #expect(RequestFingerprint.countedFields == [
            "messages", "input", "prompt", "suffix", "system", "instructions", "tools", "tool_choice",
            "functions", "function_call", "response_format", "text", "previous_response_id", "conversation",
        ])
    }
}
