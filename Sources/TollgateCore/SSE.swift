/// One server-sent event, with the exact bytes it arrived as (including its blank line) so it
/// can be passed on unchanged.
public struct SSEEvent: Sendable {
    public var raw: [UInt8]
    public var name: String?
    public var data: String
}

/// Splits a byte stream into SSE events as the bytes arrive; chunk boundaries may fall anywhere.
public struct SSEParser: Sendable {
    private var pending: [UInt8] = []
    private var scanFrom = 0
    /// The most bytes one event may take: an event that never ends must not grow without bound.
    public let maxEventBytes: Int
    /// An event passed `maxEventBytes`: the parser dropped it and takes nothing more. The stream
    /// can only be cut now (a later blank line would start mid-event, so no resync is safe).
    public private(set) var eventTooLarge = false

    public init(maxEventBytes: Int = .max) {
        self.maxEventBytes = maxEventBytes
    }

    /// Bytes received but not yet part of a complete event.
    public var buffered: [UInt8] { pending }

    public mutating func feed(_ chunk: some Collection<UInt8>) -> [SSEEvent] {
        guard !eventTooLarge else { return [] }
        pending.append(contentsOf: chunk)
        var events: [SSEEvent] = []
        var eventStart = 0
        var i = scanFrom
        // An event ends at an empty line: "\n\n" or "\r\n\r\n".
        while i < pending.count {
            if pending[i] == 0x0A {
                let next = i + 1
                if next < pending.count, pending[next] == 0x0A {
                    events.append(Self.event(Array(pending[eventStart...next])))
                    eventStart = next + 1
                    i = next + 1
                    continue
                }
                if next + 1 < pending.count, pending[next] == 0x0D, pending[next + 1] == 0x0A {
                    events.append(Self.event(Array(pending[eventStart...(next + 1)])))
                    eventStart = next + 2
                    i = next + 2
                    continue
                }
            }
            i += 1
        }
        // A chunk that ends at an event's end leaves nothing: give the buffer back, since an open
        // stream may wait long for its next event (memory per open stream).
        if eventStart == pending.count { pending = [] } else if eventStart > 0 { pending.removeFirst(eventStart) }
        // An oversized event, complete or still open: the events before it still go out, the
        // rest is dropped.
        let oversized = events.firstIndex { $0.raw.count > maxEventBytes }
        if oversized != nil || pending.count > maxEventBytes {
            if let oversized { events.removeSubrange(oversized...) }
            eventTooLarge = true
            pending = []
            scanFrom = 0
            return events
        }
        // Re-examine the last two bytes next time: a terminator may straddle the chunk boundary.
        scanFrom = max(0, pending.count - 2)
        return events
    }

    /// The event's name and data, read line by line over its bytes: one `String` per field value
    /// (this ran for every event of every stream, and splitting into arrays and lines first was
    /// most of its cost).
    static func event(_ raw: [UInt8]) -> SSEEvent {
        var name: String?
        var data: String?
        var lineStart = 0
        while lineStart < raw.count {
            var lineEnd = lineStart
            while lineEnd < raw.count, raw[lineEnd] != 0x0A { lineEnd += 1 }
            var end = lineEnd
            if end > lineStart, raw[end - 1] == 0x0D { end -= 1 }
            if end > lineStart, raw[lineStart] != UInt8(ascii: ":") {
                var colon = lineStart
                while colon < end, raw[colon] != UInt8(ascii: ":") { colon += 1 }
                var valueStart = min(colon + 1, end)
                if valueStart < end, raw[valueStart] == UInt8(ascii: " ") { valueStart += 1 }
                let field = raw[lineStart..<colon]
                if field.elementsEqual(Self.eventField) {
                    name = String(decoding: raw[valueStart..<end], as: UTF8.self)
                } else if field.elementsEqual(Self.dataField) {
                    let value = String(decoding: raw[valueStart..<end], as: UTF8.self)
                    data = data.map { $0 + "\n" + value } ?? value
                }
            }
            lineStart = lineEnd + 1
        }
        return SSEEvent(raw: raw, name: name, data: data ?? "")
    }

    static let eventField = Array("event".utf8), dataField = Array("data".utf8)
}
