/// A settle that could not reach Redis, as a replica keeps it in its settle journal until it is
/// replayed. The lease member carries the reservation (what reserve wrote), so replaying it
/// through the idempotent settle script charges once however often it is replayed.
public struct JournaledSettle: Sendable, Equatable {
    public let client: ClientID
    public let lease: Lease
    /// The real cost of the request, nano-USD.
    public let cost: NanoUSD
    /// The model billed ('' = unknown), as the settle script counts it per model.
    public let model: String
    /// When the request ended, Unix milliseconds: for operators reading the journal.
    public let endedAtMilliseconds: Int64

    public init(client: ClientID, lease: Lease, cost: NanoUSD, model: String, endedAtMilliseconds: Int64) {
        self.client = client
        self.lease = lease
        self.cost = cost
        self.model = model
        self.endedAtMilliseconds = endedAtMilliseconds
    }
}

/// The journal file's format, without I/O. One record per line:
///
///     <CRC-32 of the JSON, 8 lowercase hex digits> <JSON object>\n
///
/// Text lines, so an operator can read a journal with `cat` and repair one by hand. JSON escapes
/// every control character, so a record never contains a newline: after a torn or corrupt
/// record the scan resumes at the next line. A crash mid-append leaves a last line without its
/// newline or with a checksum that does not match; both are skipped (and reported), and every
/// earlier record still counts.
public enum SettleJournalFormat {
    public static let version = 1

    public static func encode(_ s: JournaledSettle) -> [UInt8] {
        let json = "{\"v\":\(version),\"client\":\(jsonQuoted(s.client.rawValue)),\"reservation\":\(jsonQuoted(s.lease.reservation.rawValue)),"
            + "\"lease\":\(jsonQuoted(s.lease.member)),\"cost\":\(s.cost.value),\"model\":\(jsonQuoted(s.model)),\"ended_at_ms\":\(s.endedAtMilliseconds)}"
        let body = Array(json.utf8)
        return Array(hex8(CRC32.checksum(body)).utf8) + [UInt8(ascii: " ")] + body + [UInt8(ascii: "\n")]
    }

    /// A stretch of the file that is not a valid record.
    public struct Skipped: Sendable, Equatable {
        public enum Reason: String, Sendable, Error {
            /// The last line has no newline: the replica stopped mid-append.
            case tornTail = "torn tail"
            case checksumMismatch = "checksum mismatch"
            /// The checksum matches but the record is not one this version can replay.
            case unreadable = "unreadable record"
        }
        public let offset: Int
        public let length: Int
        public let reason: Reason
    }

    public struct Scan: Sendable {
        public var settles: [JournaledSettle] = []
        public var skipped: [Skipped] = []
    }

    public static func scan(_ bytes: [UInt8]) -> Scan {
        var scan = Scan()
        var start = 0
        while start < bytes.count {
            guard let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) else {
                scan.skipped.append(Skipped(offset: start, length: bytes.count - start, reason: .tornTail))
                break
            }
            let line = bytes[start..<newline]
            if !line.isEmpty {
                switch decode(line) {
                case .success(let settle): scan.settles.append(settle)
                case .failure(let reason): scan.skipped.append(Skipped(offset: start, length: line.count, reason: reason))
                }
            }
            start = newline + 1
        }
        return scan
    }

    private static func decode(_ line: ArraySlice<UInt8>) -> Result<JournaledSettle, Skipped.Reason> {
        guard line.count > 9, line[line.startIndex + 8] == UInt8(ascii: " "),
              let stored = UInt32(String(decoding: line.prefix(8), as: UTF8.self), radix: 16) else { return .failure(.checksumMismatch) }
        let body = line.dropFirst(9)
        guard CRC32.checksum(body) == stored else { return .failure(.checksumMismatch) }
        guard let json = try? JSONValue.parse(body), json["v"]?.int == Int64(version),
              let client = json["client"]?.string.flatMap(ClientID.init), let reservation = json["reservation"]?.string,
              let member = json["lease"]?.string, let cost = json["cost"]?.int, cost >= 0,
              let model = json["model"]?.string, let at = json["ended_at_ms"]?.int else { return .failure(.unreadable) }
        return .success(JournaledSettle(client: client, lease: Lease(reservation: ReservationID(rawValue: reservation), member: member),
                                        cost: NanoUSD(cost), model: model, endedAtMilliseconds: at))
    }

    private static func hex8(_ v: UInt32) -> String {
        let digits = String(v, radix: 16)
        return String(repeating: "0", count: 8 - digits.utf8.count) + digits
    }
}

/// CRC-32 (IEEE 802.3, the one zlib and `cksum -o 3` compute): catches the torn and flipped
/// bytes a crash or a bad disk leaves, which is all a journal record needs.
public enum CRC32 {
    private static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 == 1 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    public static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}
