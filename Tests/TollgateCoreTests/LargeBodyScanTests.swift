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

    @Test("a string ends at the first quote not escaped by an odd run of backslashes", arguments: [
        ("\"abc\",1", 5),
        ("\"\",1", 2),
        ("\"a\\\"b\",1", 6),
        ("\"a\\\\\",1", 5),
        ("\"a\\\\\\\"b\",1", 8),
        ("\"\\\\\\\\\",1", 6),
        ("\"\\\"\\\"\",1", 6),
        ("\"x\\\\\\\\\\\\\\\"y\\\\\",1", 14),
    ])
    func stringEnds(json: String, end: Int) {
        // `end`: where Python's json.raw_decode stopped, the offset just past the closing quote.
        #expect(JSONView(bytes: Array(json.utf8)).end(ofStringAt: 0) == end)
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
