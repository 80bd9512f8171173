import Testing
@testable import TollgateCore

@Suite("settle journal format")
struct SettleJournalFormatTests {
    static func settle(_ n: Int, model: String = "gpt-4o-mini") -> JournaledSettle {
        JournaledSettle(client: ClientID("team-\(n)")!, lease: Lease(reservation: ReservationID(rawValue: "r\(n)"),
                                                                    member: "A|r\(n)|5000|tollgate:{team-\(n)}:d:2026-12-01|tollgate:{team-\(n)}:m:2026-12||"),
                        cost: NanoUSD(Int64(1_000 * n)), model: model, endedAtMilliseconds: 1_764_547_200_000 + Int64(n))
    }

    static func journal(_ settles: [JournaledSettle]) -> [UInt8] { settles.flatMap(SettleJournalFormat.encode) }

    @Test("CRC-32 is the IEEE one: the standard check value of \"123456789\" is cbf43926")
    func checkValue() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
    }

    @Test("records read back as written, in order, including a model name that needs escaping")
    func roundTrip() {
        let settles = [Self.settle(1), Self.settle(2, model: "odd \"model\"\nname"), Self.settle(3, model: "")]
        let scan = SettleJournalFormat.scan(Self.journal(settles))
        #expect(scan.settles == settles)
        #expect(scan.skipped.isEmpty)
    }

    @Test("each record is one line: checksum, space, JSON")
    func lineShape() {
        let line = String(decoding: SettleJournalFormat.encode(Self.settle(7)), as: UTF8.self)
        #expect(line.hasSuffix("}\n"))
        #expect(line.filter { $0 == "\n" }.count == 1)
        #expect(line.dropFirst(8).hasPrefix(" {\"v\":1,\"client\":\"team-7\""))
    }

    @Test("a torn last record (a crash mid-append) is skipped; the records before it still count", arguments: [1, 20, 60])
    func tornTail(keep: Int) {
        let whole = Self.journal([Self.settle(1), Self.settle(2)])
        let third = SettleJournalFormat.encode(Self.settle(3))
        let scan = SettleJournalFormat.scan(whole + third.prefix(keep))
        #expect(scan.settles == [Self.settle(1), Self.settle(2)])
        #expect(scan.skipped == [.init(offset: whole.count, length: keep, reason: .tornTail)])
    }

    @Test("a flipped byte fails its record's checksum; the records around it still count")
    func corruptMiddle() {
        var bytes = Self.journal([Self.settle(1), Self.settle(2), Self.settle(3)])
        let first = SettleJournalFormat.encode(Self.settle(1)).count
        bytes[first + 40] ^= 0x01
        let scan = SettleJournalFormat.scan(bytes)
        #expect(scan.settles == [Self.settle(1), Self.settle(3)])
        #expect(scan.skipped.map(\.reason) == [.checksumMismatch])
        #expect(scan.skipped.first?.offset == first)
    }

    @Test("garbage lines are skipped, and so is a record with a valid checksum this version cannot read")
    func garbage() {
        let body = Array(#"{"v":99}"#.utf8)
        let digits = String(CRC32.checksum(body), radix: 16)
        let future = Array((String(repeating: "0", count: 8 - digits.count) + digits + " ").utf8) + body + [10]
        let bytes = Array("not a record\n\n".utf8) + future + SettleJournalFormat.encode(Self.settle(4))
        let scan = SettleJournalFormat.scan(bytes)
        #expect(scan.settles == [Self.settle(4)])
        #expect(scan.skipped.map(\.reason) == [.checksumMismatch, .unreadable])
    }
}

@Suite("settle journal settings")
struct SettleJournalConfigTests {
    @Test("no journal unless redis.journal.dir is set; 64 MiB bound by default")
    func defaults() throws {
        let c = try TollgateConfig.load(yaml: "")
        #expect(c.redis.journal.directory == nil)
        #expect(c.redis.journal.maxBytes == 64 << 20)
    }

    @Test("redis.journal.dir and max_bytes from the file; the directory also from TOLLGATE_REDIS_JOURNAL_DIR")
    func set() throws {
        let c = try TollgateConfig.load(yaml: "redis: { journal: { dir: /var/lib/tollgate/journal, max_bytes: 1048576 } }")
        #expect(c.redis.journal.directory == "/var/lib/tollgate/journal")
        #expect(c.redis.journal.maxBytes == 1 << 20)
        let e = try TollgateConfig.load(yaml: "", environment: ["TOLLGATE_REDIS_JOURNAL_DIR": "/data/journal"])
        #expect(e.redis.journal.directory == "/data/journal")
    }

    @Test("a bound below 64 KiB or an empty directory is an error naming the key", arguments: [
        ("redis: { journal: { max_bytes: 100 } }", "redis.journal.max_bytes"),
        ("redis: { journal: { dir: '' } }", "redis.journal.dir"),
        ("redis: { journal: { size: 1 } }", "redis.journal.size"),
    ])
    func invalid(yaml: String, key: String) {
        #expect(throws: ConfigError.self) { try TollgateConfig.load(yaml: yaml) }
        do { _ = try TollgateConfig.load(yaml: yaml) } catch let e as ConfigError { #expect(e.key == key, "\(e)") } catch {}
    }
}
