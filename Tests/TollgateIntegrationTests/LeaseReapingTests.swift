import Testing
import TollgateCore
@testable import TollgateRedis

/// Reaped means charged (lua/reserve_v3.lua): a lease whose replica never settled is charged its
/// reservation, and a late settle corrects that to the actual cost exactly once — also for a
/// lease an old replica's reserve_v2 reaped, and never twice through an old settle_v2.
@Suite("lease reaping on real Redis", .timeLimit(.minutes(2)))
struct LeaseReapingTests {
    @Test("a reaped lease is charged its reservation; a late settle corrects it down exactly once")
    func reapedIsCharged() async throws {
        let client = TestRedis.uniqueClient("reap")
        let store = BudgetStore.forTests(leaseSeconds: 60)
        _ = try await TestRedis.shared.call(.command(["HSET", RedisKeys(client).limits, "daily", "100000"]))
        let crashed = try await store.grant(client, estimate: .fixed(60_000))
        // 61 s later: the reap charges 60 000, which leaves 40 000 of 100 000, so 50 000 is refused.
        let later = store.withClock(61)
        guard case .refused(let refusal) = try await later.reserve(client, .unique(), estimate: .fixed(50_000)) else {
            Issue.record("expected a refusal"); return
        }
        #expect(refusal.leasesReaped == 1, "a refusal reports the leases its call reaped")
        #expect(refusal.spent == NanoUSD(60_000))
        #expect(refusal.reserved == .zero)
        let (day, month) = try await TestRedis.periodKeys(client)
        for key in [day, month] {
            #expect(try await TestRedis.int(key, "spent") == 60_000, "\(key)")
            #expect(try await TestRedis.int(key, "reserved") == 0, "\(key)")
            #expect(try await TestRedis.int(key, "requests") == 0, "\(key)")
        }
        let leases = RedisKeys(client).leases
        let marker = "C" + crashed.lease.member.dropFirst()
        #expect(try await TestRedis.shared.call(.command(["ZSCORE", leases, marker])).string != nil, "remembered as C|…")
        #expect(try await TestRedis.shared.call(.command(["ZSCORE", leases, "R" + crashed.lease.member.dropFirst()])).string == nil)

        #expect(try await later.settle(client, crashed.lease, actual: NanoUSD(45_000)) == .settledAfterReap)
        #expect(try await later.settle(client, crashed.lease, actual: NanoUSD(45_000)) == .unknownLease, "the second settle charges nothing")
        for key in [day, month] {
            #expect(try await TestRedis.int(key, "spent") == 45_000, "\(key)")
            #expect(try await TestRedis.int(key, "reserved") == 0, "\(key)")
            #expect(try await TestRedis.int(key, "requests") == 1, "\(key)")
        }
    }

    @Test("a late settle costing more than the reservation adds the difference")
    func lateSettleAboveReservation() async throws {
        let client = TestRedis.uniqueClient("reap")
        let store = BudgetStore.forTests(leaseSeconds: 60)
        let crashed = try await store.grant(client, estimate: .fixed(10_000))
        _ = try await store.withClock(61).reserve(client, .unique(), estimate: .fixed(0))
        #expect(try await store.settle(client, crashed.lease, actual: NanoUSD(12_500)) == .settledAfterReap)
        let (day, _) = try await TestRedis.periodKeys(client)
        #expect(try await TestRedis.int(day, "spent") == 12_500)
    }

    @Test("an old replica's settle_v2 never charges a lease reserve_v3 reaped")
    func oldSettleCannotDoubleCharge() async throws {
        let settleV2 = try RedisScript.bundled("settle_v2")
        let old = RedisConnection(endpoint: TestRedis.endpoint, timeoutMilliseconds: 2_000, scripts: [settleV2], logger: TestRedis.logger)
        defer { old.shutdown() }
        let client = TestRedis.uniqueClient("reap")
        let store = BudgetStore.forTests(leaseSeconds: 60)
        let crashed = try await store.grant(client, estimate: .fixed(30_000))
        _ = try await store.withClock(61).reserve(client, .unique(), estimate: .fixed(0))
        let reply = try await old.call(.script(settleV2, keys: [RedisKeys(client).leases], args: [crashed.lease.member, "20000"]))
        #expect(reply == .array([.integer(0), .integer(0)]))
        let (day, _) = try await TestRedis.periodKeys(client)
        #expect(try await TestRedis.int(day, "spent") == 30_000, "charged once, by the reaper")
    }

    @Test("a late settle of a lease reaped by an old reserve_v2 (an R|… member) charges the actual cost once")
    func settleOfV2Reaped() async throws {
        let client = TestRedis.uniqueClient("reap")
        let store = BudgetStore.forTests(leaseSeconds: 60)
        let lease = try await store.grant(client, estimate: .fixed(50_000)).lease
        let (day, month) = try await TestRedis.periodKeys(client)
        // What reserve_v2's reaper does: release the reservation, remember the lease as R|….
        let leases = RedisKeys(client).leases
        _ = try await TestRedis.shared.call(.command(["ZREM", leases, lease.member]))
        _ = try await TestRedis.shared.call(.command(["ZADD", leases, "99999999999999", "R" + lease.member.dropFirst()]))
        for key in [day, month] { _ = try await TestRedis.shared.call(.command(["HINCRBY", key, "reserved", "-50000"])) }

        #expect(try await store.settle(client, lease, actual: NanoUSD(30_000)) == .settledAfterReap)
        #expect(try await store.settle(client, lease, actual: NanoUSD(30_000)) == .unknownLease)
        for key in [day, month] {
            #expect(try await TestRedis.int(key, "spent") == 30_000, "\(key)")
            #expect(try await TestRedis.int(key, "reserved") == 0, "\(key)")
            #expect(try await TestRedis.int(key, "requests") == 1, "\(key)")
        }
    }

    @Test("the reaper takes at most 32 leases per call and the rest on later calls")
    func reaperBound() async throws {
        let client = TestRedis.uniqueClient("reap")
        let store = BudgetStore.forTests(leaseSeconds: 60)
        for _ in 0..<40 { _ = try await store.grant(client, estimate: .fixed(1_000)) }
        let later = store.withClock(61)
        guard case .granted(let first) = try await later.reserve(client, .unique(), estimate: .fixed(0)) else { Issue.record("refused"); return }
        #expect(first.leasesReaped == 32)
        let (day, _) = try await TestRedis.periodKeys(client)
        #expect(try await TestRedis.int(day, "spent") == 32_000)
        #expect(try await TestRedis.int(day, "reserved") == 8_000)
        guard case .granted(let second) = try await later.reserve(client, .unique(), estimate: .fixed(0)) else { Issue.record("refused"); return }
        #expect(second.leasesReaped == 8)
        #expect(try await TestRedis.int(day, "spent") == 40_000)
        #expect(try await TestRedis.int(day, "reserved") == 0)
        #expect(try await TestRedis.int(day, "leases_reaped") == 40)
    }

    @Test("a garbled argument fails the reserve before its reaper writes anything")
    func garbledArgumentWritesNothing() async throws {
        let client = TestRedis.uniqueClient("reap")
        let store = BudgetStore.forTests(leaseSeconds: 60)
        let crashed = try await store.grant(client, estimate: .fixed(9_000))
        let keys = RedisKeys(client)
        // The reserve's arguments with the clock 61 s ahead (the lease has expired) and "ten" as the fixed cost.
        var call = store.withClock(61).reserveCall(client, .unique(), estimate: .fixed(1), options: ReserveOptions())
        call.args[1] = "ten"
        await #expect(throws: RedisError.self) {
            _ = try await TestRedis.shared.call(.script(TestRedis.scripts.reserve, keys: call.keys, args: call.args))
        }
        #expect(try await TestRedis.shared.call(.command(["ZSCORE", keys.leases, crashed.lease.member])).string != nil, "not reaped")
        let (day, _) = try await TestRedis.periodKeys(client)
        #expect(try await TestRedis.int(day, "spent") == 0)
        #expect(try await TestRedis.int(day, "reserved") == 9_000)
    }

    @Test("a free lease (cost 0) settles: its release is written 0, not -0")
    func freeLease() async throws {
        let client = TestRedis.uniqueClient("reap")
        let store = BudgetStore.forTests()
        let lease = try await store.grant(client, estimate: .fixed(0)).lease
        #expect(try await store.settle(client, lease, actual: NanoUSD(7)) == .settled)
        let (day, _) = try await TestRedis.periodKeys(client)
        #expect(try await TestRedis.int(day, "spent") == 7)
    }

    // 2027-02-10T23:59:30Z = 1_802_303_970; the 11th begins 30 s later.
    @Test("a settle or a reap after midnight charges the day the reservation was made in")
    func afterMidnight() async throws {
        let client = TestRedis.uniqueClient("reap")
        let keys = RedisKeys(client)
        let (tenth, eleventh, february) = (keys.day("2027-02-10"), keys.day("2027-02-11"), keys.month("2027-02"))
        let offset = try await TestRedis.clockOffset(to: 1_802_303_970)
        let beforeMidnight = BudgetStore.forTests(leaseSeconds: 600).withClock(offset)
        let settled = try await beforeMidnight.grant(client, estimate: .fixed(5_000)).lease
        let crashed = try await BudgetStore.forTests(leaseSeconds: 60).withClock(offset).grant(client, estimate: .fixed(8_000)).lease
        // 00:01:30 on the 11th: this reserve reaps the crashed lease.
        let afterMidnight = beforeMidnight.withClock(offset + 120)
        guard case .granted(let g) = try await afterMidnight.reserve(client, .unique(), estimate: .fixed(100)) else { Issue.record("refused"); return }
        #expect(g.leasesReaped == 1)
        #expect(try await TestRedis.int(tenth, "spent") == 8_000, "the reap charges the 10th")
        #expect(try await TestRedis.int(eleventh, "leases_reaped") == 1, "and is counted on the day it happened")

        #expect(try await afterMidnight.settle(client, settled, actual: NanoUSD(4_000)) == .settled)
        #expect(try await afterMidnight.settle(client, crashed, actual: NanoUSD(6_000)) == .settledAfterReap)
        #expect(try await TestRedis.int(tenth, "spent") == 10_000)
        #expect(try await TestRedis.int(tenth, "reserved") == 0)
        #expect(try await TestRedis.int(tenth, "requests") == 2)
        #expect(try await TestRedis.int(eleventh, "spent") == 0)
        #expect(try await TestRedis.int(eleventh, "reserved") == 100)
        #expect(try await TestRedis.int(february, "spent") == 10_000)
        #expect(try await TestRedis.int(february, "reserved") == 100)
    }
}
