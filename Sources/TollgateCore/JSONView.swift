import Foundation

/// Reads JSON in place: values are byte offsets into a body that `JSONReader.skipValue` has
/// already validated, so nothing here fails and nothing builds a tree. A 30 MB array of a
/// million elements costs its bytes and no more (a `JSONValue` tree of it took ~280 MB).
/// Only what a caller asks for becomes a Swift value: a `type` string, a `max_uses` integer.
struct JSONView {
    let bytes: [UInt8]

    static let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")

    func skipSpace(_ i: Int) -> Int {
        var i = i
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
        return i
    }

    /// The offset just past the value that starts at `i`.
    func end(ofValueAt i: Int) -> Int {
        switch bytes[i] {
        case Self.quote: return end(ofStringAt: i)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            // Validated input: brackets balance outside strings, so a depth count finds the end.
            var depth = 0
            var k = i
            while true {
                switch bytes[k] {
                case Self.quote: k = end(ofStringAt: k); continue
                case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 { return k + 1 }
                default: break
                }
                k += 1
            }
        default: // a number or a literal: up to the next delimiter
            var k = i
            while k < bytes.count, !Self.isDelimiter(bytes[k]) { k += 1 }
            return k
        }
    }

    static func isDelimiter(_ b: UInt8) -> Bool {
        b == UInt8(ascii: ",") || b == UInt8(ascii: "}") || b == UInt8(ascii: "]") || b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09
    }

    func end(ofStringAt i: Int) -> Int {
        // memchr finds each quote (the byte-at-a-time loop this replaced was ~3 % of a request's
        // CPU); a quote ends the string unless an odd run of backslashes escapes it.
        bytes.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return i + 1 }
            var k = i + 1
            while k < buffer.count, let found = memchr(base + k, Int32(Self.quote), buffer.count - k) {
                let quote = base.distance(to: found.assumingMemoryBound(to: UInt8.self))
                var escapes = 0
                while quote - escapes - 1 >= k, buffer[quote - escapes - 1] == Self.backslash { escapes += 1 }
                if escapes % 2 == 0 { return quote + 1 }
                k = quote + 1
            }
            return buffer.count // unterminated: only validated bodies come here
        }
    }

    // MARK: Scalars

    func isNull(_ i: Int) -> Bool { bytes[i] == UInt8(ascii: "n") }

    /// The decoded string at `i`, or nil when the value there is not a string.
    func string(_ i: Int?) -> String? {
        guard let i, bytes[i] == Self.quote else { return nil }
        let raw = bytes[(i + 1)..<(end(ofStringAt: i) - 1)]
        guard raw.contains(Self.backslash) else { return String(decoding: raw, as: UTF8.self) }
        return try? JSONReader.unescape(raw, at: i + 1)
    }

    /// The UTF-8 length of the decoded string at `i`, without making it for plain ASCII text.
    func stringUTF8Count(_ i: Int) -> Int64 {
        let raw = (i + 1)..<(end(ofStringAt: i) - 1)
        if !bytes[raw].contains(where: { $0 >= 0x80 || $0 == Self.backslash }) { return Int64(raw.count) }
        return Int64(string(i)?.utf8.count ?? 0) // escapes, or non-ASCII that may need repair
    }

    /// An integer written as one (`3`, not `3.0` or `3e0`), as `JSONValue.int` reads it.
    func int(_ i: Int?) -> Int64? {
        guard let i, bytes[i] == UInt8(ascii: "-") || (0x30...0x39).contains(bytes[i]) else { return nil }
        return Int64(String(decoding: bytes[i..<end(ofValueAt: i)], as: UTF8.self))
    }

    func bool(_ i: Int?) -> Bool? {
        guard let i else { return nil }
        switch bytes[i] {
        case UInt8(ascii: "t"): return true
        case UInt8(ascii: "f"): return false
        default: return nil
        }
    }

    // MARK: Containers

    func isObject(_ i: Int?) -> Bool { i.map { bytes[$0] == UInt8(ascii: "{") } ?? false }
    func isArray(_ i: Int?) -> Bool { i.map { bytes[$0] == UInt8(ascii: "[") } ?? false }

    /// The value of the last member named `key` (providers read the last of a repeated key),
    /// or nil when `i` is not an object or has no such member.
    func member(_ key: String, of i: Int?) -> Int? {
        guard let i, bytes[i] == UInt8(ascii: "{") else { return nil }
        var found: Int?
        var members = Members(self, objectAt: i)
        while let m = members.next() { if keyEquals(m, key) { found = m.value } }
        return found
    }

    func keyEquals(_ m: Member, _ key: String) -> Bool {
        m.escaped ? keyString(m) == key : bytes[m.key].elementsEqual(key.utf8)
    }

    func keyString(_ m: Member) -> String {
        m.escaped ? ((try? JSONReader.unescape(bytes[m.key], at: m.key.lowerBound)) ?? "") : String(decoding: bytes[m.key], as: UTF8.self)
    }

    /// An object member: the raw bytes of its key (inside the quotes) and where its value starts.
    struct Member {
        var key: Range<Int>
        var escaped: Bool
        var value: Int
    }

    /// Steps through the items of the object or array at `start`, up to its closing bracket.
    struct Items {
        let view: JSONView
        /// Where the next item starts (a key's quote in an object).
        private(set) var next: Int
        private(set) var done: Bool

        init(_ view: JSONView, at start: Int) {
            self.view = view
            next = view.skipSpace(start + 1)
            done = view.bytes[next] == UInt8(ascii: "}") || view.bytes[next] == UInt8(ascii: "]")
        }

        /// Moves past the item whose value starts at `value`, and its comma.
        mutating func finish(valueAt value: Int) {
            let after = view.skipSpace(view.end(ofValueAt: value))
            done = view.bytes[after] != UInt8(ascii: ",")
            next = view.skipSpace(after + 1)
        }
    }

    /// The members of the object at an offset, in order, read as they are asked for.
    struct Members {
        private var items: Items
        init(_ view: JSONView, objectAt start: Int) { items = Items(view, at: start) }

        mutating func next() -> Member? {
            guard !items.done else { return nil }
            let view = items.view
            let keyStart = items.next + 1
            let keyEnd = view.end(ofStringAt: items.next) - 1
            let value = view.skipSpace(view.skipSpace(keyEnd + 1) + 1) // past the closing quote and ':'
            items.finish(valueAt: value)
            return Member(key: keyStart..<keyEnd, escaped: view.bytes[keyStart..<keyEnd].contains(JSONView.backslash), value: value)
        }
    }

    /// Where each element of the array at an offset starts, in order.
    struct Elements {
        private var items: Items
        init(_ view: JSONView, arrayAt start: Int) { items = Items(view, at: start) }

        mutating func next() -> Int? {
            guard !items.done else { return nil }
            let value = items.next
            items.finish(valueAt: value)
            return value
        }
    }

    func members(_ i: Int) -> Members { Members(self, objectAt: i) }
    func elements(_ i: Int) -> Elements { Elements(self, arrayAt: i) }

    func count(ofArrayAt i: Int?) -> Int {
        guard isArray(i), let i else { return 0 }
        var n = 0
        var items = elements(i)
        while items.next() != nil { n += 1 }
        return n
    }
}
