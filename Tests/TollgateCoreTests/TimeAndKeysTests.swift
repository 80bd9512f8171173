import Foundation
import Testing
@testable import TollgateCore

@Suite("UnixTime and CivilDate")
struct TimeTests {
    @Test("rfc3339 renders seconds since the epoch in UTC", arguments: [
        (Int64(0), "1970-01-01T00:00:00Z"),
        (1_795_478_400, "2026-11-24T00:00:00Z"),
        (1_795_478_399, "2026-11-23T23:59:59Z"),
        (1_709_164_800, "2024-02-29T00:00:00Z"),
        (1_709_251_199, "2024-02-29T23:59:59Z"),
        (951_827_696, "2000-02-29T12:34:56Z"),
        (4_107_456_000, "2100-02-28T00:00:00Z"),
        (4_107_542_400, "2100-03-01T00:00:00Z"), // 2100 is not a leap year
        (-1, "1969-12-31T23:59:59Z"),
        (-86_400, "1969-12-31T00:00:00Z"),
        (-86_401, "1969-12-30T23:59:59Z"),
    ])
    func rfc3339(seconds: Int64, text: String) {
        #expect(UnixTime(seconds: seconds).rfc3339 == text)
    }

    @Test("timestamps with milliseconds, and years outside four digits", arguments: [
        (Int64(1_795_478_399), Int64?(7), "2026-11-23T23:59:59.007Z"),
        (1_795_478_400, 0, "2026-11-24T00:00:00.000Z"),
        (951_827_696, 999, "2000-02-29T12:34:56.999Z"),
        (-62_135_596_801, nil, "0-12-31T23:59:59Z"), // one second before 0001-01-01
        (-30_610_310_400, 42, "999-12-31T00:00:00.042Z"),
        (253_402_300_800, nil, "10000-01-01T00:00:00Z"), // TimezoneSchedule.never
    ])
    func timestamps(seconds: Int64, milliseconds: Int64?, text: String) {
        #expect(CivilDate.timestamp(seconds, milliseconds: milliseconds) == text)
    }

    @Test("fromDays agrees with Foundation's Gregorian calendar from 1600 to 2400")
    func fromDaysMatchesFoundation() {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        for days in stride(from: Int64(-135_000), through: 157_000, by: 97) {
            let date = Date(timeIntervalSince1970: TimeInterval(days * 86_400))
            let c = calendar.dateComponents([.year, .month, .day], from: date)
            let civil = CivilDate.fromDays(days)
            #expect(civil.year == Int64(c.year!) && civil.month == Int64(c.month!) && civil.day == Int64(c.day!), "day \(days)")
        }
    }

    @Test("dayString is the local date at a fixed UTC offset", arguments: [
        (Int64(1_795_478_399), Int64(0), "2026-11-23"),
        (1_795_478_399, 3_600, "2026-11-24"),    // Berlin in winter: already tomorrow
        (1_795_478_400, -18_000, "2026-11-23"),  // New York in winter: still yesterday
        (1_795_478_400, 0, "2026-11-24"),
        (0, -1, "1969-12-31"),
        (1_709_164_800, 0, "2024-02-29"),
        (1_709_164_799, 50_400, "2024-02-29"), // UTC+14
    ])
    func dayString(seconds: Int64, offset: Int64, text: String) {
        #expect(CivilDate.dayString(UnixTime(seconds: seconds), utcOffset: offset) == text)
    }

    @Test("UnixTime orders by seconds")
    func ordering() {
        #expect(UnixTime(seconds: 1) < UnixTime(seconds: 2))
        #expect(!(UnixTime(seconds: 2) < UnixTime(seconds: 2)))
    }
}

@Suite("Redis key names")
struct RedisKeysTests {
    @Test("every key of a client shares the {client} hash tag")
    func names() throws {
        let keys = RedisKeys(try #require(ClientID("c1")))
        #expect(keys.base == "tollgate:{c1}")
        #expect(keys.limits == "tollgate:{c1}:limits")
        #expect(keys.leases == "tollgate:{c1}:leases")
        #expect(keys.day("2026-11-23") == "tollgate:{c1}:day:2026-11-23")
        #expect(keys.month("2026-11") == "tollgate:{c1}:month:2026-11")
    }

    @Test("the day key built from a time and offset is the script's day key")
    func dayFromTime() throws {
        let keys = RedisKeys(try #require(ClientID("team-a@example.com")))
        let day = CivilDate.dayString(UnixTime(seconds: 1_795_478_399), utcOffset: 0)
        #expect(keys.day(day) == "tollgate:{team-a@example.com}:day:2026-11-23")
    }
}

@Suite("ClientID: safe inside Redis key names")
struct ClientIDTests {
    @Test("accepts 1-128 characters of letters, digits and . _ : @ -", arguments: [
        "c1", "A", "0", "a.b_c:d@e-f", "team-a@example.com", "svc:billing:prod", String(repeating: "x", count: 128),
    ])
    func valid(raw: String) throws {
        let id = try #require(ClientID(raw))
        #expect(id.rawValue == raw)
        #expect(id.description == raw)
    }

    @Test("rejects anything else", arguments: [
        "", "{c1}", "a{b", "a}b", "a b", " c1", "c1\n", "tab\t", "a/b", "é", "a*b", "a#b", "😀",
        String(repeating: "x", count: 129),
    ])
    func invalid(raw: String) {
        #expect(ClientID(raw) == nil)
    }

    @Test("the rule text names the allowed characters")
    func rule() {
        #expect(ClientID.rule.contains("1-128"))
    }
}

@Suite("ReservationID")
struct ReservationIDTests {
    @Test("ids are lowercase hex, do not repeat, and share this process's 16-digit prefix")
    func unique() {
        let ids = (0..<1_000).map { _ in ReservationID.unique().rawValue }
        #expect(Set(ids).count == ids.count)
        for id in ids {
            #expect(!id.isEmpty && id.count <= 32)
            #expect(id.allSatisfy { $0.isHexDigit && !$0.isUppercase })
            #expect(id.prefix(16) == ids[0].prefix(16))
        }
    }
}
