/// A small JSON reader for the proxy's own needs: request bodies and usage objects.
/// Numbers are kept as their source text so integers are read exactly (no `Double`), and the
/// top-level members of an object remember their byte ranges so a body can be spliced in place
/// instead of re-serialised.
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([(key: String, value: JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.number(x), .number(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: return false
        }
    }

    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.last(where: { $0.key == key })?.value
    }

    public var int: Int64? {
        if case .number(let text) = self, text.first != "+" { return Int64(text) }
        return nil
    }
    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }
    public var bool: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    public static func parse(_ bytes: some Collection<UInt8>) throws(JSONError) -> JSONValue {
        var reader = JSONReader(Array(bytes))
        let v = try reader.readValue()
        try reader.expectEnd()
        return v
    }
    public static func parse(_ text: String) throws(JSONError) -> JSONValue { try parse(Array(text.utf8)) }

    /// A top-level object with only the members named in `keep` made into values, in order;
    /// the others (a chat answer's `choices`, its text) are validated and stepped over.
    public static func parseObject(_ bytes: some Collection<UInt8>, keeping keep: Set<String>) throws(JSONError) -> JSONValue {
        var reader = JSONReader(Array(bytes))
        let members = try reader.readTopLevelObject()
        return .object(members.filter { keep.contains($0.key) }.map { (key: $0.key, value: $0.value) })
    }
}

public struct JSONError: Error, Equatable, CustomStringConvertible {
    public let offset: Int
    public let reason: String
    public var description: String { "invalid JSON at byte \(offset): \(reason)" }
}

/// A top-level object member with the byte range its value occupies in the source. Its value
/// is parsed only when asked for, so a body's large members (`messages`, `input`) never
/// become a tree; `JSONView` walks them in place.
public struct JSONMember: Sendable {
    public let key: String
    public let valueRange: Range<Int>
    /// The whole body (shared, not copied).
    let source: [UInt8]

    /// The member's value as a tree: for the small members only (`model`, `stream_options`).
    public var value: JSONValue {
        // The range was validated when the body was read, so this parse cannot fail.
        (try? JSONValue.parse(source[valueRange])) ?? .null
    }
    /// Where the value starts in `source`, for `JSONView`.
    var start: Int { valueRange.lowerBound }
}

struct JSONReader {
    let bytes: [UInt8]
    var i = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func fail(_ reason: String) -> JSONError { JSONError(offset: i, reason: reason) }

    mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    mutating func expectEnd() throws(JSONError) {
        skipSpace()
        if i != bytes.count { throw fail("unexpected trailing data") }
    }

    /// Reads a top-level object, keeping each member's value range.
    mutating func readTopLevelObject() throws(JSONError) -> [JSONMember] {
        skipSpace()
        guard i < bytes.count, bytes[i] == UInt8(ascii: "{") else { throw fail("expected a JSON object") }
        i += 1
        var members: [JSONMember] = []
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; try expectEnd(); return members }
        members.reserveCapacity(16) // a request's or an answer's members, without growing the array 4 times
        while true {
            skipSpace()
            let key = try readString()
            skipSpace()
            try expect(UInt8(ascii: ":"))
            skipSpace()
            let start = i
            try skipValue()
            members.append(JSONMember(key: key, valueRange: start..<i, source: bytes))
            skipSpace()
            guard i < bytes.count else { throw fail("unterminated object") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "}") { i += 1; break }
            throw fail("expected ',' or '}'")
        }
        try expectEnd()
        return members
    }

    mutating func expect(_ b: UInt8) throws(JSONError) {
        guard i < bytes.count, bytes[i] == b else { throw fail("expected '\(Character(UnicodeScalar(b)))'") }
        i += 1
    }

    mutating func readValue(depth: Int = 0) throws(JSONError) -> JSONValue {
        guard depth < 128 else { throw fail("nested too deeply") }
        skipSpace()
        guard i < bytes.count else { throw fail("unexpected end of input") }
        switch bytes[i] {
        case UInt8(ascii: "{"):
            i += 1
            var members: [(key: String, value: JSONValue)] = []
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            // Room for a usual object (a usage block has 3–6 members) at once, not grown 1, 2, 4, 8.
            members.reserveCapacity(8)
            while true {
                skipSpace()
                let key = try readString()
                skipSpace()
                try expect(UInt8(ascii: ":"))
                members.append((key, try readValue(depth: depth + 1)))
                skipSpace()
                guard i < bytes.count else { throw fail("unterminated object") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                throw fail("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            i += 1
            var items: [JSONValue] = []
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            while true {
                items.append(try readValue(depth: depth + 1))
                skipSpace()
                guard i < bytes.count else { throw fail("unterminated array") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                throw fail("expected ',' or ']'")
            }
        case UInt8(ascii: "\""):
            return .string(try readString())
        case UInt8(ascii: "t"): try readLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try readLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try readLiteral("null"); return .null
        default:
            return .number(try readNumber())
        }
    }

    /// Validates one value and moves past it, building nothing (see `JSONView`).
    mutating func skipValue(depth: Int = 0) throws(JSONError) {
        guard depth < 128 else { throw fail("nested too deeply") }
        skipSpace()
        guard i < bytes.count else { throw fail("unexpected end of input") }
        switch bytes[i] {
        case UInt8(ascii: "{"):
            i += 1
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return }
            while true {
                skipSpace()
                try skipString()
                skipSpace()
                try expect(UInt8(ascii: ":"))
                try skipValue(depth: depth + 1)
                skipSpace()
                guard i < bytes.count else { throw fail("unterminated object") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "}") { i += 1; return }
                throw fail("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            i += 1
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return }
            while true {
                try skipValue(depth: depth + 1)
                skipSpace()
                guard i < bytes.count else { throw fail("unterminated array") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "]") { i += 1; return }
                throw fail("expected ',' or ']'")
            }
        case UInt8(ascii: "\""): try skipString()
        case UInt8(ascii: "t"): try readLiteral("true")
        case UInt8(ascii: "f"): try readLiteral("false")
        case UInt8(ascii: "n"): try readLiteral("null")
        default: try scanNumber()
        }
    }

    /// Validates a string (escapes included, as `unescape` would read them) without decoding it.
    mutating func skipString() throws(JSONError) {
        guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string") }
        i += 1
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") { i += 1; return }
            if b < 0x20 { throw fail("control character in string") }
            guard b == UInt8(ascii: "\\") else { i += 1; continue }
            guard i + 1 < bytes.count else { break }
            switch bytes[i + 1] {
            case UInt8(ascii: "n"), UInt8(ascii: "t"), UInt8(ascii: "r"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                 UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"):
                i += 2
            case UInt8(ascii: "u"):
                guard i + 6 <= bytes.count, bytes[(i + 2)..<(i + 6)].allSatisfy(Self.isHexDigit) else {
                    throw fail("bad \\u escape")
                }
                i += 6
            default:
                throw fail("bad escape")
            }
        }
        throw fail("unterminated string")
    }

    static func isHexDigit(_ b: UInt8) -> Bool {
        (0x30...0x39).contains(b) || (0x41...0x46).contains(b) || (0x61...0x66).contains(b)
    }

    mutating func readLiteral(_ word: String) throws(JSONError) {
        for b in word.utf8 {
            guard i < bytes.count, bytes[i] == b else { throw fail("unexpected character") }
            i += 1
        }
    }

    /// RFC 8259 number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
    mutating func readNumber() throws(JSONError) -> String {
        let start = i
        try scanNumber()
        return String(decoding: bytes[start..<i], as: UTF8.self)
    }

    mutating func scanNumber() throws(JSONError) {
        let start = i
        func digit() -> Bool { i < bytes.count && bytes[i] >= 0x30 && bytes[i] <= 0x39 }
        func digits() throws(JSONError) {
            guard digit() else { throw fail("malformed number") }
            while digit() { i += 1 }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
        guard digit() else { throw fail(i == start ? "unexpected character" : "malformed number") }
        if bytes[i] == UInt8(ascii: "0") { i += 1 } else { try digits() }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") { i += 1; try digits() }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            try digits()
        }
        if digit() || (i < bytes.count && [UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "e"), UInt8(ascii: "E")].contains(bytes[i])) {
            throw fail("malformed number")
        }
    }

    mutating func readString() throws(JSONError) -> String {
        guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string") }
        i += 1
        let start = i
        var hasEscape = false
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                let raw = bytes[start..<i]
                i += 1
                return hasEscape ? try Self.unescape(raw, at: start) : String(decoding: raw, as: UTF8.self)
            }
            if b == UInt8(ascii: "\\") { hasEscape = true; i += 2; continue }
            if b < 0x20 { throw fail("control character in string") }
            i += 1
        }
        throw fail("unterminated string")
    }

    static func unescape(_ raw: ArraySlice<UInt8>, at offset: Int) throws(JSONError) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var k = raw.startIndex
        func hex4(_ at: Int) throws(JSONError) -> UInt32 {
            guard at + 4 <= raw.endIndex else { throw JSONError(offset: at, reason: "bad \\u escape") }
            var v: UInt32 = 0
            for j in at..<(at + 4) {
                guard let d = Character(UnicodeScalar(raw[j])).hexDigitValue else { throw JSONError(offset: j, reason: "bad \\u escape") }
                v = v * 16 + UInt32(d)
            }
            return v
        }
        while k < raw.endIndex {
            let b = raw[k]
            guard b == UInt8(ascii: "\\") else { out.append(b); k += 1; continue }
            guard k + 1 < raw.endIndex else { throw JSONError(offset: k, reason: "bad escape") }
            let e = raw[k + 1]
            k += 2
            switch e {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "u"):
                var scalar = try hex4(k)
                k += 4
                if (0xD800..<0xDC00).contains(scalar), k + 6 <= raw.endIndex, raw[k] == UInt8(ascii: "\\"), raw[k + 1] == UInt8(ascii: "u") {
                    let low = try hex4(k + 2)
                    if (0xDC00..<0xE000).contains(low) {
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        k += 6
                    }
                }
                out.append(contentsOf: String(Character(UnicodeScalar(scalar) ?? "\u{FFFD}")).utf8)
            default:
                throw JSONError(offset: k, reason: "bad escape")
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// True when `jsonQuoted` escapes something in `s`: a quote, a backslash or a control character.
func needsJSONEscaping(_ s: String) -> Bool {
    s.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") })
}

/// JSON text for a string value (quotes and escapes).
public func jsonQuoted(_ s: String) -> String {
    // Most strings (ids, model names, routes) need no escaping: one copy, no per-scalar work.
    if !needsJSONEscaping(s) {
        return "\"" + s + "\""
    }
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case let c where c.value < 0x20: out += "\\u" + String(repeating: "0", count: 4 - String(c.value, radix: 16).count) + String(c.value, radix: 16)
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
