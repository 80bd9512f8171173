import Testing
import TollgateCore
@testable import TollgateRedis

/// The outbox senders share (`AlertOutbox`), on a real redis-server: one consumer group per
/// client stream, so an entry goes to one sender, and an abandoned one is claimed by another.
@Suite("alert outbox", .timeLimit(.minutes(2)))
struct AlertOutboxTests {
    let outbox = AlertOutbox(redis: TestRedis.shared)

    /// Spends 60 % of a 1 USD day: fires the 50 % alert into the client's outbox.
    func fireOne() async throws -> ClientID {
        let client = TestRedis.uniqueClient("outbox")
        try await AlertScriptTests.spend(BudgetStore.forTests(dailyUSD: 1), client, 600_000_000)
        return client
    }

    @Test("a fired alert is indexed for the senders, and one sender's entry is not handed to another")
    func oneSenderPerEntry() async throws {
        let client = try await fireOne()
        #expect(try await eventually {
            try await TestRedis.shared.call(.command(["ZSCORE", SharedRedisKeys.alertsPending, client.rawValue])).string != nil
        }, "the settle that fired it put the client on the pending index")
        let a = try await outbox.take(client, consumer: "a", count: 10, claimIdleMilliseconds: 60_000)
        #expect(a.count == 1)
        #expect(a.first?.claimed == false)
        let alert = try #require(a.first?.alert)
        #expect(alert.client == client && alert.thresholdPercent == 50 && alert.period == .daily && alert.cause == .spent)
        #expect(alert.limit == NanoUSD(1_000_000_000) && alert.spent == NanoUSD(600_000_000))
        #expect(alert.id == "\(client.rawValue)|daily|\(alert.window)|50")
        #expect(try await outbox.take(client, consumer: "b", count: 10, claimIdleMilliseconds: 60_000).isEmpty)
    }

    @Test("an entry left idle by a sender that died is claimed by another, which skips the sinks that already have it")
    func claimAbandoned() async throws {
        let client = try await fireOne()
        let taken = try await outbox.take(client, consumer: "dead", count: 10, claimIdleMilliseconds: 60_000)
        try await outbox.markDelivered(try #require(taken.first), sinks: ["webhook"])
        try await Task.sleep(for: .milliseconds(20))
        let claimed = try await outbox.take(client, consumer: "alive", count: 10, claimIdleMilliseconds: 10)
        #expect(claimed.map(\.id) == taken.map(\.id))
        #expect(claimed.first?.claimed == true)
        #expect(claimed.first?.delivered == ["webhook"])
    }

    @Test("a finished entry leaves the outbox and its JSON heads the recent list")
    func finish() async throws {
        let client = try await fireOne()
        let entry = try #require(try await outbox.take(client, consumer: "a", count: 10, claimIdleMilliseconds: 60_000).first)
        try await outbox.finish(entry)
        #expect(try await TestRedis.shared.call(.command(["XLEN", RedisKeys(client).alerts])).int == 0)
        let recent = try await TestRedis.shared.call(.command(["LRANGE", SharedRedisKeys.alertsRecent, "0", "-1"])).array ?? []
        #expect(recent.contains { $0.string?.contains("\"id\":\"\(client.rawValue)|daily|") == true })
    }

    @Test("a rescan finds an outbox nobody indexed")
    func rescan() async throws {
        let client = try await fireOne()
        #expect(try await eventually {
            try await TestRedis.shared.call(.command(["ZSCORE", SharedRedisKeys.alertsPending, client.rawValue])).string != nil
        })
        _ = try await TestRedis.shared.call(.command(["ZREM", SharedRedisKeys.alertsPending, client.rawValue]))
        try await outbox.rescan()
        #expect(try await eventually {
            try await TestRedis.shared.call(.command(["ZSCORE", SharedRedisKeys.alertsPending, client.rawValue])).string != nil
        })
    }
}
