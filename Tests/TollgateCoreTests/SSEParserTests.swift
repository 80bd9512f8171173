import Testing
@testable import TollgateCore

@Suite("SSEParser: events from a byte stream")
struct SSEParserTests {
    /// A stream mixing every feature: names, comments, multi-line data, CRLF and LF endings.
    static let stream = [
        ": OPENROUTER PROCESSING\n\n",
        "data: {\"id\":\"1\",\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n",
        "event: message_start\ndata: {\"type\":\"message_start\"}\n\n",
        "event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n",
        "data: first line\ndata: second line\ndata:third\n\n",
        "event: content_block_delta\n: a comment inside\nid: 7\nretry: 100\ndata: {\"text\":\"héllo 😀\"}\n\n",
        "data:  two spaces\n\n",
        "data\n\n",
        "data: [DONE]\n\n",
    ].joined()

    struct Seen: Equatable {
        var raw: [UInt8]
        var name: String?
        var data: String
    }

    static func seen(_ events: [SSEEvent]) -> [Seen] { events.map { Seen(raw: $0.raw, name: $0.name, data: $0.data) } }

    static func feed(_ bytes: [UInt8], chunkSizes: some IteratorProtocol<Int>) -> [Seen] {
        var sizes = chunkSizes
        var parser = SSEParser()
        var out: [SSEEvent] = []
        var i = 0
        while i < bytes.count {
            let n = min(bytes.count - i, max(1, sizes.next() ?? 1))
            out += parser.feed(bytes[i..<(i + n)])
            i += n
        }
        return seen(out)
    }

    @Test("a whole stream splits into its events with names and data")
    func wholeStream() {
        var parser = SSEParser()
        let events = Self.seen(parser.feed(Self.stream.bytes))
        #expect(events.map(\.name) == [nil, nil, "message_start", "ping", nil, "content_block_delta", nil, nil, nil])
        #expect(events.map(\.data) == [
            "", #"{"id":"1","choices":[{"delta":{"content":"Hel"}}]}"#, #"{"type":"message_start"}"#, #"{"type": "ping"}"#,
            "first line\nsecond line\nthird", #"{"text":"héllo 😀"}"#, " two spaces", "", "[DONE]",
        ])
        #expect(parser.buffered.isEmpty)
    }

    @Test("each event keeps its exact bytes, so the stream can be passed on unchanged")
    func rawBytes() {
        var parser = SSEParser()
        let events = parser.feed(Self.stream.bytes)
        #expect(events.flatMap(\.raw) == Self.stream.bytes)
        #expect(events[3].raw == "event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n".bytes)
    }

    @Test("feeding byte by byte gives the same events")
    func byteByByte() {
        var whole = SSEParser()
        let expected = Self.seen(whole.feed(Self.stream.bytes))
        #expect(Self.feed(Self.stream.bytes, chunkSizes: [Int]().makeIterator()) == expected)
    }

    @Test("any chunking gives the same events", arguments: 0..<64)
    func randomChunking(seed: Int) {
        var whole = SSEParser()
        let expected = Self.seen(whole.feed(Self.stream.bytes))
        var rng = SeededGenerator(seed: UInt64(seed))
        let maxChunk = [2, 3, 5, 17, 64][seed % 5]
        let sizes = (0..<Self.stream.utf8.count).map { _ in Int.random(in: 1...maxChunk, using: &rng) }
        #expect(Self.feed(Self.stream.bytes, chunkSizes: sizes.makeIterator()) == expected)
    }

    @Test("every split point of a CRLF terminator is handled", arguments: 1..<22)
    func crlfSplits(at: Int) {
        let bytes = "data: a\r\n\r\ndata: b\r\n\r\n".bytes
        var parser = SSEParser()
        let events = parser.feed(bytes[..<at]) + parser.feed(bytes[at...])
        #expect(events.map(\.data) == ["a", "b"])
        #expect(parser.buffered.isEmpty)
    }

    @Test("an unfinished event stays buffered until its blank line arrives")
    func buffering() {
        var parser = SSEParser()
        #expect(parser.feed("data: {\"a\":".bytes).isEmpty)
        #expect(parser.feed("1}\n".bytes).isEmpty)
        #expect(parser.buffered == "data: {\"a\":1}\n".bytes)
        let events = parser.feed("\ndata: next".bytes)
        #expect(events.map(\.data) == [#"{"a":1}"#])
        #expect(parser.buffered == "data: next".bytes)
    }

    @Test("a comment-only event has no name and no data")
    func commentOnly() {
        var parser = SSEParser()
        let events = parser.feed(": keep-alive\n\n".bytes)
        #expect(events.count == 1)
        #expect(events.first?.name == nil)
        #expect(events.first?.data == "")
    }
}
