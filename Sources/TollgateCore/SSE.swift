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

    static func event(_ raw: [UInt8]) -> SSEEvent {
        var name: String?
        var data: [String] = []
        for line in raw.split(separator: 0x0A, omittingEmptySubsequences: true) {
            var l = line
            if l.last == 0x0D { l = l.dropLast() }
            if l.isEmpty || l.first == UInt8(ascii: ":") { continue }
            let text = String(decoding: l, as: UTF8.self)
            let (field, value) = Self.split(text)
            if field == "event" { name = value } else if field == "data" { data.append(value) }
        }
        return SSEEvent(raw: raw, name: name, data: data.joined(separator: "\n"))
    }

    static func split(_ line: String) -> (String, String) {
        guard let colon = line.firstIndex(of: ":") else { return (line, "") }
        var value = line[line.index(after: colon)...]
        if value.first == " " { value = value.dropFirst() }
        return (String(line[..<colon]), String(value))
    }
}
