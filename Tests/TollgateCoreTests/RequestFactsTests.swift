import Testing
@testable import TollgateCore

@Suite("Request facts: what the body does not carry, what the provider runs, and how it bills")
struct RequestFactsTests {
    @Test("input the body does not carry is found, with the path of the field that names it", arguments: [
        (ProxyRoute.chatCompletions,
         #"{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"sum up"},{"type":"file","file":{"file_id":"file-abc"}}]}]}"#,
         "messages[0].content[1].file.file_id", UnseenInput.Kind.fileByReference),
        (.chatCompletions,
         #"{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,JVBERi0="}}]}]}"#,
         "messages[0].content[0].file.file_data", .document),
        (.responses,
         #"{"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_file","file_id":"file-abc"}]}]}"#,
         "input[0].content[0].file_id", .fileByReference),
        (.responses,
         #"{"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_file","file_url":"https://example.com/a.pdf"}]}]}"#,
         "input[0].content[0].file_url", .fileByReference),
        (.responses,
         #"{"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_text","text":"x"},{"type":"input_file","filename":"a.pdf","file_data":"data:application/pdf;base64,JVBERi0="}]}]}"#,
         "input[0].content[1].file_data", .document),
        (.responses, #"{"model":"gpt-4o","prompt":{"id":"pmpt_123","version":"2"}}"#, "prompt", .storedPrompt),
        (.responses, #"{"model":"gpt-4o","previous_response_id":"resp_1","input":"and then?"}"#, "previous_response_id", .previousResponse),
        (.responses, #"{"model":"gpt-4o","conversation":"conv_1","input":"hi"}"#, "conversation", .conversation),
        (.responses, #"{"model":"gpt-4o","input":[{"type":"item_reference","id":"msg_1"}]}"#, "input[0].id", .storedItem),
        (.messages,
         #"{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"url","url":"https://example.com/a.pdf"}}]}]}"#,
         "messages[0].content[0].source.url", .fileByReference),
        (.messages,
         #"{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[{"role":"user","content":[{"type":"text","text":"x"},{"type":"document","source":{"type":"file","file_id":"file_1"}}]}]}"#,
         "messages[0].content[1].source.file_id", .fileByReference),
        (.messages,
         #"{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0="}}]}]}"#,
         "messages[0].content[0].source.data", .document),
        (.messages,
         #"{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[{"role":"user","content":[{"type":"container_upload","file_id":"file_1"}]}]}"#,
         "messages[0].content[0].file_id", .fileByReference),
    ])
    func unseen(route: ProxyRoute, body: String, field: String, kind: UnseenInput.Kind) throws {
        #expect(try Fixture.scan(body, route).unseenInputs == [UnseenInput(field: field, kind: kind)])
    }

    @Test("text documents, images by URL or file, and a completions prompt are bounded, not unseen", arguments: [
        (ProxyRoute.messages,
         #"{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"plain words"}}]}]}"#),
        (.messages,
         #"{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://example.com/a.png"}}]}]}"#),
        (.chatCompletions, #"{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]}"#),
        (.responses, #"{"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_image","file_id":"file-img"}]}]}"#),
        (.responses, #"{"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_file","filename":"a.txt","file_data":"data:text/plain;base64,aGk="}]}]}"#),
        (.completions, #"{"model":"gpt-3.5-turbo-instruct","prompt":"Say hi"}"#),
    ])
    func bounded(route: ProxyRoute, body: String) throws {
        #expect(try Fixture.scan(body, route).unseenInputs.isEmpty)
    }

    @Test("provider-run tools are found with their field, name, billing name and max_uses")
    func serverTools() throws {
        let responses = try Fixture.scan(#"{"model":"gpt-4o","input":"hi","tools":[{"type":"function","name":"f","parameters":{}},{"type":"web_search_preview"},{"type":"custom","name":"c"},{"type":"code_interpreter","container":{"type":"auto"}},{"type":"mcp","server_label":"x","server_url":"https://x"}]}"#, .responses)
        #expect(responses.serverTools == [
            ServerTool(field: "tools[1]", name: "web_search_preview", billedAs: "web_search_call"),
            ServerTool(field: "tools[3]", name: "code_interpreter", billedAs: "code_interpreter_call"),
            ServerTool(field: "tools[4]", name: "mcp", billedAs: "mcp_call"),
        ])
        let anthropic = try Fixture.scan(#"{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[],"tools":[{"name":"get_weather","input_schema":{}},{"type":"custom","name":"c","input_schema":{}},{"type":"web_search_20250305","name":"web_search","max_uses":3},{"type":"web_fetch_20250910","name":"web_fetch"}],"mcp_servers":[{"type":"url","url":"https://x","name":"x"}]}"#, .messages)
        #expect(anthropic.serverTools == [
            ServerTool(field: "tools[2]", name: "web_search_20250305", billedAs: "web_search", maxUses: 3),
            ServerTool(field: "tools[3]", name: "web_fetch_20250910", billedAs: "web_fetch"),
            ServerTool(field: "mcp_servers[0]", name: "mcp", billedAs: "mcp"),
        ])
        let chat = try Fixture.scan(Fixture.chat(["hi"], extra: #","web_search_options":{},"tools":[{"type":"function","function":{"name":"f"}}]"#))
        #expect(chat.serverTools == [ServerTool(field: "web_search_options", name: "web_search", billedAs: "web_search_call")])
        #expect(try Fixture.scan(Fixture.chat(["hi"])).serverTools.isEmpty)
    }

    @Test("background, service tier, thinking budget, tools and max_tool_calls are read")
    func settings() throws {
        let r = try Fixture.scan(#"{"model":"gpt-5","input":"hi","background":true,"service_tier":"flex","max_tool_calls":3,"tools":[{"type":"function","name":"f"}]}"#, .responses)
        #expect(r.background)
        #expect(r.serviceTier == "flex")
        #expect(r.maxToolCalls == 3)
        #expect(r.hasTools)
        #expect(r.thinkingBudgetTokens == nil)
        let a = try Fixture.scan(#"{"model":"claude-sonnet-4-5","max_tokens":4000,"thinking":{"type":"enabled","budget_tokens":2048},"messages":[]}"#, .messages)
        #expect(a.thinkingBudgetTokens == 2_048)
        #expect(!a.background)
        #expect(a.serviceTier == nil)
        #expect(!a.hasTools)
        #expect(try Fixture.scan(#"{"model":"claude-sonnet-4-5","max_tokens":9,"thinking":{"type":"disabled"},"messages":[]}"#, .messages).thinkingBudgetTokens == nil)
        #expect(throws: RequestProblem.invalidField("background", "must be true or false")) {
            _ = try Fixture.scan(#"{"model":"gpt-5","background":"yes"}"#, .responses)
        }
    }

    @Test("cache_control is noticed anywhere, and a 1-hour TTL wins", arguments: [
        (#"{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[{"role":"user","content":"hi"}]}"#, CacheControlUse.none),
        (#"{"model":"claude-sonnet-4-5","max_tokens":9,"system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}],"messages":[]}"#, .fiveMinutes),
        (#"{"model":"claude-sonnet-4-5","max_tokens":9,"tools":[{"name":"f","input_schema":{},"cache_control":{"type":"ephemeral","ttl":"1h"}}],"messages":[{"role":"user","content":[{"type":"text","text":"x","cache_control":{"type":"ephemeral","ttl":"5m"}}]}]}"#, .oneHour),
    ])
    func cacheControl(body: String, expected: CacheControlUse) throws {
        #expect(try Fixture.scan(body, .messages).cacheControl == expected)
    }

    @Test("each image is counted with its detail; anything but low may be high")
    func imageDetails() throws {
        let body = #"{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"u","detail":"low"}},{"type":"image_url","image_url":{"url":"u"}},{"type":"image_url","image_url":{"url":"u","detail":"high"}},{"type":"image_url","image_url":{"url":"u","detail":"original"}}]}]}"#
        #expect(try Fixture.scan(body).images == [.low, .auto, .high, .high])
        let responses = #"{"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_image","image_url":"u","detail":"low"}]}]}"#
        #expect(try Fixture.scan(responses, .responses).images == [.low])
    }
}
