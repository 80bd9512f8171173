import Foundation
import Testing
import TollgateCore
import TollgateRedis

/// `GET /v1/spend/{client}?from&to` and `GET /v1/spend/top` against counters seeded straight
/// into the real Redis; every expected number is written out here.
@Suite("spend analytics API", .timeLimit(.minutes(2)))
struct SpendAnalyticsTests {
    @Test("a client's days over a range come from its day hashes, with spend per model and totals")
    func clientRange() async throws {
        try await AdminServer.with { admin in
            let client = TestRedis.uniqueClient("hist")
            let first = Seed.randomPastDay()
            let (d1, d2, d3) = (dayName(first), dayName(first + 1), dayName(first + 2))
            try await Seed.hash(RedisKeys(client).day(d1), ["spent": 1_500_000_000, "reserved": 7, "requests": 3, "refused": 1, "downgrades": 1,
                                                            "model:gpt-4o": 1_000_000_000, "model:gpt-4o-mini": 500_000_000])
            try await Seed.hash(RedisKeys(client).day(d3), ["spent": 250_000_001, "requests": 1, "loop_trips": 2, "model:gpt-4o-mini": 250_000_001])

            let reply = await admin.get("/v1/spend/\(client)?from=\(d1)&to=\(d3)")
            #expect(reply.status == 200, "\(reply.text)")
            let json = try #require(reply.json)
            #expect(json["from"]?.string == d1 && json["to"]?.string == d3)
            #expect(json["days"] == (try JSONValue.parse("""
                [{"date":"\(d1)","spent_nano_usd":1500000000,"spent_usd":"1.5","requests":3,"refused":1,"downgrades":1,"loop_trips":0,
                  "models":{"gpt-4o":1000000000,"gpt-4o-mini":500000000}},
                 {"date":"\(d2)","spent_nano_usd":0,"spent_usd":"0","requests":0,"refused":0,"downgrades":0,"loop_trips":0,"models":{}},
                 {"date":"\(d3)","spent_nano_usd":250000001,"spent_usd":"0.250000001","requests":1,"refused":0,"downgrades":0,"loop_trips":2,
                  "models":{"gpt-4o-mini":250000001}}]
                """)))
            #expect(json["models"] == (try JSONValue.parse("""
                [{"model":"gpt-4o","spent_nano_usd":1000000000,"spent_usd":"1"},
                 {"model":"gpt-4o-mini","spent_nano_usd":750000001,"spent_usd":"0.750000001"}]
                """)))
            #expect(json["total"] == (try JSONValue.parse("""
                {"spent_nano_usd":1750000001,"spent_usd":"1.750000001","requests":4,"refused":1,"downgrades":1,"loop_trips":2}
                """)))
            #expect(json["client_id"]?.string == client.rawValue && json["day"]?["spent_usd"] != nil, "the day and month it always showed are still there")

            // `to` alone: the 30 days ending there.
            let ending = await admin.get("/v1/spend/\(client)?to=\(d3)")
            #expect(ending.json?["from"]?.string == dayName(first + 2 - 29))
            #expect(elements(ending.json?["days"]).count == 30)
            #expect(ending.json?["total"]?["spent_nano_usd"]?.int == 1_750_000_001)

            // The longest range allowed, 400 days.
            let longest = await admin.get("/v1/spend/\(client)?from=\(d1)&to=\(dayName(first + 399))")
            #expect(longest.status == 200)
            #expect(elements(longest.json?["days"]).count == 400)
        }
    }

    @Test("without from and to, the range is the 30 days ending today")
    func defaultRange() async throws {
        try await AdminServer.with { admin in
            let client = TestRedis.uniqueClient("recent")
            let today = try await Seed.today()
            try await Seed.hash(RedisKeys(client).day(dayName(today)), ["spent": 42, "requests": 1, "model:gpt-4o-mini": 42])
            try await Seed.hash(RedisKeys(client).day(dayName(today - 29)), ["spent": 8, "requests": 1, "model:claude-haiku-4-5": 8])
            try await Seed.hash(RedisKeys(client).day(dayName(today - 30)), ["spent": 1000, "requests": 1])

            let json = try #require(await admin.get("/v1/spend/\(client)").json)
            #expect(json["from"]?.string == dayName(today - 29) && json["to"]?.string == dayName(today))
            let days = elements(json["days"])
            #expect(days.count == 30)
            #expect(days.last?["spent_nano_usd"]?.int == 42 && days.first?["spent_nano_usd"]?.int == 8)
            #expect(json["total"]?["spent_nano_usd"]?.int == 50, "the day before the range is not counted")
        }
    }

    @Test("bad dates, ranges and limits get a 400 that says what to send", arguments: [
        ("/v1/spend/CLIENT?from=2026-02-30&to=2026-03-01", "from must be a calendar date YYYY-MM-DD"),
        ("/v1/spend/CLIENT?from=2026-03-02&to=2026-03-01", "is after to"),
        ("/v1/spend/CLIENT?from=2024-01-01&to=2025-02-04", "401 days; at most 400"),
        ("/v1/spend/CLIENT?to=yesterday", "to must be a calendar date"),
        ("/v1/spend/CLIENT?from=", "from must be a calendar date"),
        ("/v1/spend/top?day=2026-1-1", "day must be a calendar date"),
        ("/v1/spend/top?month=2026-13", "month must be a month YYYY-MM"),
        ("/v1/spend/top?month=2026-11-01", "month must be a month YYYY-MM"),
        ("/v1/spend/top?day=2026-11-01&month=2026-11", "not both"),
        ("/v1/spend/top?limit=0", "limit must be a whole number from 1 to 1000"),
        ("/v1/spend/top?limit=1001", "limit must be a whole number from 1 to 1000"),
        ("/v1/spend/top?limit=ten", "limit must be a whole number from 1 to 1000"),
    ])
    func badInput(path: String, hint: String) async throws {
        try await AdminServer.with { admin in
            let reply = await admin.get(path.replacingOccurrences(of: "CLIENT", with: "alice"))
            #expect(reply.status == 400, "\(path): \(reply.text)")
            #expect(reply.json?["error"]?["code"]?.string == "invalid_request")
            #expect(reply.json?["error"]?["message"]?.string?.contains(hint) == true, "\(path): \(reply.text)")
        }
    }

    @Test("top clients: the sorted set picks them, their hashes give the numbers and the order")
    func topClients() async throws {
        try await AdminServer.with { admin in
            let day = dayName(Seed.randomPastDay()), month = String(day.prefix(7))
            let (x, y, z) = (TestRedis.uniqueClient("topx"), TestRedis.uniqueClient("topy"), TestRedis.uniqueClient("topz"))
            try await Seed.top(SharedRedisKeys.topDay(day), [(x.rawValue, 3_000_000_000), (y.rawValue, 2_000_000_000), (z.rawValue, 1_000_000_000),
                                                              ("not{a}client", 500_000_000)])
            try await Seed.hash(RedisKeys(x).day(day), ["spent": 3_000_000_000, "requests": 10, "refused": 2])
            try await Seed.hash(RedisKeys(y).day(day), ["spent": 2_000_000_000, "reserved": 5_000_000, "requests": 5, "downgrades": 3])
            // Lease reaping charged z more than the set knows: the hash is right.
            try await Seed.hash(RedisKeys(z).day(day), ["spent": 3_500_000_000, "requests": 4, "loop_trips": 1])
            try await Seed.hash(RedisKeys(x).limits, ["daily": 5_000_000_000])

            let reply = await admin.get("/v1/spend/top?day=\(day)&limit=4")
            #expect(reply.status == 200, "\(reply.text)")
            #expect(reply.json == (try JSONValue.parse("""
                {"period":"day","day":"\(day)","clients":[
                 {"client_id":"\(z)","spent_nano_usd":3500000000,"spent_usd":"3.5","reserved_nano_usd":0,"reserved_usd":"0","requests":4,"refused":0,
                  "downgrades":0,"loop_trips":1,"limit_nano_usd":10000000000,"limit_usd":"10","limit_is_default":true,"used_percent":35},
                 {"client_id":"\(x)","spent_nano_usd":3000000000,"spent_usd":"3","reserved_nano_usd":0,"reserved_usd":"0","requests":10,"refused":2,
                  "downgrades":0,"loop_trips":0,"limit_nano_usd":5000000000,"limit_usd":"5","limit_is_default":false,"used_percent":60},
                 {"client_id":"\(y)","spent_nano_usd":2000000000,"spent_usd":"2","reserved_nano_usd":5000000,"reserved_usd":"0.005","requests":5,"refused":0,
                  "downgrades":3,"loop_trips":0,"limit_nano_usd":10000000000,"limit_usd":"10","limit_is_default":true,"used_percent":20}]}
                """)), "\(reply.text)")
            let two = await admin.get("/v1/spend/top?day=\(day)&limit=2")
            #expect(ids(two.json?["clients"]) == [x.rawValue, y.rawValue], "the set picks who is shown")

            try await Seed.top(SharedRedisKeys.topMonth(month), [(x.rawValue, 5_000_000_000), (y.rawValue, 1_000_000_000)])
            try await Seed.hash(RedisKeys(x).month(month), ["spent": 5_000_000_000, "requests": 20])
            try await Seed.hash(RedisKeys(y).month(month), ["spent": 1_000_000_000, "requests": 2, "refused": 1])
            let monthly = try #require(await admin.get("/v1/spend/top?month=\(month)").json)
            #expect(monthly["period"]?.string == "month" && monthly["month"]?.string == month)
            let rows = elements(monthly["clients"])
            #expect(ids(monthly["clients"]) == [x.rawValue, y.rawValue])
            #expect(rows.map { $0["spent_nano_usd"]?.int } == [5_000_000_000, 1_000_000_000])
            #expect(rows.map { $0["used_percent"]?.serialized } == ["2.5", "0.5"], "against the default monthly limit of $200")

            let empty = await admin.get("/v1/spend/top?day=\(dayName(Seed.randomPastDay() - 20_000))")
            #expect(empty.json?["clients"] == .array([]))
            #expect(await TestClient.shared.get(admin.url + "/v1/spend/top").status == 401, "the same bearer token as every admin call")
        }
    }

    func ids(_ clients: JSONValue?) -> [String] { elements(clients).compactMap { $0["client_id"]?.string } }
}
