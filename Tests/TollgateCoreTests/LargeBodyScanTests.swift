import Testing
@testable import TollgateCore

/// The scanner reads members in place (JSONView): these pin the byte rule of InputTokenBound on
/// a body too big for a tree, and the in-place reader against the tree on awkward spellings.
@Suite("scanning large and awkward bodies in place")
struct LargeBodyScanTests {
    @Test("a million-element input array is bounded by the documented rule: 16 per request, 8 + bytes per item")
    func millionElements() throws {
        let body = #"{"model":"text-embedding-3-small","input":["# + Array(repeating: "7", count: 1_000_000).joined(separator: ",") + "]}"
        let r = try Fixture.scan(body, .embeddings)
        #expect(r.contentTokenBound == 16 + 1_000_000 * (8 + 1))
        #expect(r.members.map(\.key) == ["model", "input"])
    }

    @Test("escaped keys and strings, whitespace and non-ASCII count as their decoded UTF-8 bytes", arguments: [
        (#"{"model":"m","messages":[{"role":"user","content":"h\u00e9"}]}"#, #"{"model":"m","messages":[{"role":"user","content":"hé"}]}"#),
        (#"{ "model" : "m" , "messages" : [ { "role" : "user" , "content" : "a\nb" } ] }"#, #"{"model":"m","messages":[{"role":"user","content":"a\nb"}]}"#),
        (#"{"model":"m","messages":[{"role":"user","cont\u0065nt":"x","n\u0061me":"bob"}]}"#, #"{"model":"m","messages":[{"role":"user","content":"x","name":"bob"}]}"#),
        (#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"\ud83d\ude00"}]}]}"#, #"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"😀"}]}]}"#),
    ])
    func spellings(escaped: String, plain: String) throws {
        let a = try Fixture.scan(escaped), b = try Fixture.scan(plain)
        #expect(a.contentTokenBound == b.contentTokenBound)
        #expect(RequestFingerprint(route: .chatCompletions, request: a) == RequestFingerprint(route: .chatCompletions, request: b))
    }

    @Test("invalid JSON anywhere in a big member is still refused", arguments: [
        #"{"model":"m","messages":[{"role":"user","content":"x"},]}"#,
        #"{"model":"m","messages":[{"role":"user","content":"\q"}]}"#,
        #"{"model":"m","messages":[{"role":"user","content":"\u12"}]}"#,
        #"{"model":"m","messages":[01]}"#,
        #"{"model":"m","messages":[tru]}"#,
    ])
    func invalid(body: String) {
        #expect(throws: RequestProblem.self) { try Fixture.scan(body) }
    }
}
