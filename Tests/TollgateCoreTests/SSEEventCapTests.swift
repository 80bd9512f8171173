import Testing
@testable import TollgateCore

@Suite("SSEParser: the event size cap (upstream.max_sse_event_bytes)")
struct SSEEventCapTests {
    static let small = "data: {\"delta\":\"hi\"}\n\n"

    @Test("an event that never ends stops the parser once it passes the cap, and its bytes are dropped")
    func endlessEvent() {
        var parser = SSEParser(maxEventBytes: 1_024)
        var events = parser.feed(Array(Self.small.utf8))
        #expect(events.count == 1)
        events = parser.feed(Array("data: ".utf8) + Array(repeating: UInt8(ascii: "x"), count: 1_000))
        #expect(events.isEmpty)
        #expect(!parser.eventTooLarge, "1006 bytes is still within 1024")
        events = parser.feed(Array(repeating: UInt8(ascii: "x"), count: 100))
        #expect(events.isEmpty)
        #expect(parser.eventTooLarge)
        #expect(parser.buffered.isEmpty, "the partial event is not held, and not passed on at the end")
        // Whatever follows is ignored: a blank line now would start mid-event.
        #expect(parser.feed(Array(("\n\n" + Self.small).utf8)).isEmpty)
    }

    @Test("a complete event over the cap in one chunk is cut too; the events before it still come out")
    func completeOversizedEvent() {
        var parser = SSEParser(maxEventBytes: 1_024)
        let big = "data: " + String(repeating: "y", count: 2_000) + "\n\n"
        let events = parser.feed(Array((Self.small + big + Self.small).utf8))
        #expect(events.map { String(decoding: $0.raw, as: UTF8.self) } == [Self.small])
        #expect(parser.eventTooLarge)
    }

    @Test("events right at the cap pass, chunked anywhere")
    func atTheCap() {
        let event = "data: " + String(repeating: "z", count: 1_024 - 8) + "\n\n"
        #expect(event.utf8.count == 1_024)
        var parser = SSEParser(maxEventBytes: 1_024)
        var seen = 0
        let bytes = Array(String(repeating: event, count: 5).utf8)
        for start in stride(from: 0, to: bytes.count, by: 700) {
            seen += parser.feed(bytes[start..<min(bytes.count, start + 700)]).count
        }
        #expect(seen == 5)
        #expect(!parser.eventTooLarge)
    }
}
