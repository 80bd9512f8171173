import Foundation
import Testing
import TollgateCore
@testable import TollgateRedis

/// A rolling deploy from v4 to v5: old and new replicas share one Redis, so each settle must
/// settle the other reserve's leases exactly once, and the reaper of either must charge the
/// other's leases (lua/reserve_v5.lua says why names carry a version). The old replica is the
/// v4 scripts called with v4's arguments, as a v4 binary sends them.
@Suite("reserve/settle v4 and v5 side by side on real Redis", .timeLimit(.minutes(2)))
struct ScriptVersionTests {
    static let reserveV4 = try! RedisScript.bundled("reserve_v4")
    static let settleV4 = try! RedisScript.bundled("settle_v4")

    /// An old replica's connection and its calls, arguments as BudgetStore built them in v4.
    struct OldReplica {
        let redis = RedisConnection(endpoint: TestRedis.endpoint, timeoutMilliseconds: 2_000,
                                    scripts: [ScriptVersionTests.reserveV4, ScriptVersionTests.settleV4], logger: TestRedis.logger)
        var clockOffset: Int64 = 0

        func reserve(_ client: ClientID, cost: Int64) async throws -> String {
            let keys = RedisKeys(client)
            let args = [keys.base, String(clockOffset), "0", "253402300800", "0", ReservationID.unique().rawValue, String(cost), "0", "0", "0",
                        "10000000000", "200000000000", "60000", "3600", "3600", "86400",
                        "block", "", "0", "60", "", "", "", "", "", "604800", "gpt-4o-mini", "0", "", "", "0", "0", "0", "0", "50,80,100", "10000"]
            let reply = try await redis.call(.script(ScriptVersionTests.reserveV4, keys: [keys.limits, keys.leases, keys.alerts], args: args))
            guard let r = reply.array, r.first?.int == 1, let member = r[7].string else { throw RedisError.unexpectedReply("\(reply)") }
            return member
        }

        func settle(_ client: ClientID, member: String, actual: Int64) async throws -> RedisReply {
            let keys = RedisKeys(client)
            let args = [member, String(actual), "gpt-4o-mini", "50,80,100", "10000000000", "200000000000", "10000"]
            return try await redis.call(.script(ScriptVersionTests.settleV4, keys: [keys.leases, keys.limits, keys.alerts], args: args))
        }
    }

    @Test("an old replica's settle_v4 settles a lease reserve_v5 made, once")
    func oldSettlesNew() async throws {
        let old = OldReplica()
        defer { old.redis.shutdown() }
        let client = TestRedis.uniqueClient("v5")
        let grant = try await BudgetStore.forTests().grant(client, estimate: .fixed(40_000))
        #expect(try await old.settle(client, member: grant.lease.member, actual: 25_000) == .array([.integer(1), .integer(40_000), .integer(25_000), .integer(0)]))
        #expect(try await old.settle(client, member: grant.lease.member, actual: 25_000).array?.first == .integer(0), "charged once")
        let (day, month) = try await TestRedis.periodKeys(client)
        for key in [day, month] {
            #expect(try await TestRedis.int(key, "spent") == 25_000, "\(key)")
            #expect(try await TestRedis.int(key, "reserved") == 0, "\(key)")
            #expect(try await TestRedis.int(key, "requests") == 1, "\(key)")
        }
        #expect(try await TestRedis.int(day, "model:gpt-4o-mini") == 25_000)
    }

    @Test("settle_v5 settles a lease an old replica's reserve_v4 made, once")
    func newSettlesOld() async throws {
        let old = OldReplica()
        defer { old.redis.shutdown() }
        let client = TestRedis.uniqueClient("v5")
        let member = try await old.reserve(client, cost: 30_000)
        let lease = Lease(reservation: .unique(), member: member)
        let store = BudgetStore.forTests()
        #expect(try await store.settle(client, lease, actual: NanoUSD(35_000), model: "gpt-4o-mini") == .settled)
        #expect(try await store.settle(client, lease, actual: NanoUSD(35_000), model: "gpt-4o-mini") == .unknownLease)
        let (day, month) = try await TestRedis.periodKeys(client)
        for key in [day, month] {
            #expect(try await TestRedis.int(key, "spent") == 35_000, "\(key)")
            #expect(try await TestRedis.int(key, "reserved") == 0, "\(key)")
            #expect(try await TestRedis.int(key, "requests") == 1, "\(key)")
        }
    }

    @Test("reserve_v5 and reserve_v4 count each other's reservations against one limit")
    func sharedLimit() async throws {
        let old = OldReplica()
        defer { old.redis.shutdown() }
        let client = TestRedis.uniqueClient("v5")
        _ = try await TestRedis.shared.call(.command(["HSET", RedisKeys(client).limits, "daily", "100000"]))
        _ = try await old.reserve(client, cost: 60_000)
        let store = BudgetStore.forTests()
        guard case .refused(let refusal) = try await store.reserve(client, .unique(), estimate: .fixed(50_000)) else {
            Issue.record("expected a refusal: 60 000 of 100 000 is reserved by the old replica"); return
        }
        #expect(refusal.reserved == NanoUSD(60_000))
        _ = try await store.grant(client, estimate: .fixed(40_000))
        let (day, _) = try await TestRedis.periodKeys(client)
        #expect(try await TestRedis.int(day, "reserved") == 100_000)
    }

    @Test("each reaper charges the other version's expired lease, and the late settle corrects it once")
    func reapAcrossVersions() async throws {
        var old = OldReplica()
        defer { old.redis.shutdown() }
        let client = TestRedis.uniqueClient("v5")
        let store = BudgetStore.forTests(leaseSeconds: 60)
        // v5 reaps the old replica's lease (60 s lease in v4's arguments) …
        let oldLease = try await old.reserve(client, cost: 10_000)
        guard case .granted(let reaper) = try await store.withClock(61).reserve(client, .unique(), estimate: .fixed(0)) else {
            Issue.record("refused"); return
        }
        #expect(reaper.leasesReaped == 1)
        let (day, _) = try await TestRedis.periodKeys(client)
        #expect(try await TestRedis.int(day, "spent") == 10_000, "reaped means charged")
        #expect(try await old.settle(client, member: oldLease, actual: 7_000).array?.first == .integer(2))
        #expect(try await TestRedis.int(day, "spent") == 7_000)
        // … and v4 reaps a lease of v5.
        let newLease = try await store.grant(client, estimate: .fixed(20_000)).lease
        old.clockOffset = 200
        _ = try await old.reserve(client, cost: 0)
        #expect(try await TestRedis.int(day, "spent") == 27_000)
        #expect(try await store.settle(client, newLease, actual: NanoUSD(5_000)) == .settledAfterReap)
        #expect(try await store.settle(client, newLease, actual: NanoUSD(5_000)) == .unknownLease)
        #expect(try await TestRedis.int(day, "spent") == 12_000)
        #expect(try await TestRedis.int(day, "reserved") == 0)
    }

    @Test("a period passed for another day is not used: the script names the day by Redis TIME")
    func stalePeriod() async throws {
        let client = TestRedis.uniqueClient("v5")
        var store = BudgetStore.forTests()
        store.policy.replicaClock = { UnixTime(seconds: Int64(Date().timeIntervalSince1970) - 86_400) }
        let grant = try await store.grant(client, estimate: .fixed(3_000))
        let (day, month) = try await TestRedis.periodKeys(client)
        #expect(grant.lease.member.hasSuffix("|\(day)|\(month)||"))
        #expect(try await TestRedis.int(day, "reserved") == 3_000)
    }

    @Test("settle_v5 settles apply_v6's leases, and apply_v6 settles v5's and v4's, each once")
    func applySettlesAcrossVersions() async throws {
        let old = OldReplica()
        defer { old.redis.shutdown() }
        let client = TestRedis.uniqueClient("v6")
        let store = BudgetStore.forTests()
        let batched = try await ApplyBatchTests.inOneTick((0..<2).map { _ in { try await store.grant(client, estimate: .fixed(10_000)).lease } })
        #expect(store.tick.batchesSent.load(ordering: .relaxed) == 1)
        // A v5 replica (a call off any event loop goes alone, as reserve_v5/settle_v5).
        #expect(try await store.settle(client, batched[0], actual: NanoUSD(4_000)) == .settled)
        let v5Lease = try await store.grant(client, estimate: .fixed(20_000)).lease
        let v4Lease = Lease(reservation: .unique(), member: try await old.reserve(client, cost: 30_000))
        let settling = [v5Lease, v4Lease, batched[0], batched[1]]
        let outcomes = try await ApplyBatchTests.inOneTick(settling.map { lease in
            { try await store.settle(client, lease, actual: NanoUSD(1_000), model: "gpt-4o-mini") }
        })
        #expect(store.tick.batchesSent.load(ordering: .relaxed) == 2)
        #expect(outcomes == [.settled, .settled, .unknownLease, .settled])
        let (day, month) = try await TestRedis.periodKeys(client)
        for key in [day, month] {
            #expect(try await TestRedis.int(key, "spent") == 7_000, "\(key)")
            #expect(try await TestRedis.int(key, "reserved") == 0, "\(key)")
            #expect(try await TestRedis.int(key, "requests") == 4, "\(key)")
        }
    }

    @Test("apply_v6 reaps v4's and v5's expired leases, and v5 reaps apply_v6's")
    func applyReapsAcrossVersions() async throws {
        let old = OldReplica()
        defer { old.redis.shutdown() }
        let client = TestRedis.uniqueClient("v6")
        let store = BudgetStore.forTests(leaseSeconds: 60)
        _ = try await old.reserve(client, cost: 10_000)
        _ = try await store.grant(client, estimate: .fixed(20_000))
        let late = store.withClock(61)
        let reapers = try await ApplyBatchTests.inOneTick((0..<2).map { _ in { try await late.grant(client, estimate: .fixed(0)) } })
        #expect(late.tick.batchesSent.load(ordering: .relaxed) == 1)
        #expect(reapers.map(\.leasesReaped) == [2, 0], "the batch's first reserve reports what it reaped")
        let (day, _) = try await TestRedis.periodKeys(client)
        #expect(try await TestRedis.int(day, "spent") == 30_000, "reaped means charged")
        #expect(try await TestRedis.int(day, "reserved") == 0)

        let other = TestRedis.uniqueClient("v6")
        let batched = try await ApplyBatchTests.inOneTick((0..<2).map { _ in { try await store.grant(other, estimate: .fixed(5_000)).lease } })
        guard case .granted(let reaper) = try await store.withClock(61).reserve(other, .unique(), estimate: .fixed(0)) else {
            Issue.record("refused"); return
        }
        #expect(reaper.leasesReaped == 2)
        #expect(try await store.settle(other, batched[0], actual: NanoUSD(1_000)) == .settledAfterReap)
        let otherDay = try await TestRedis.periodKeys(other).day
        #expect(try await TestRedis.int(otherDay, "spent") == 6_000)
        #expect(try await TestRedis.int(otherDay, "reserved") == 0)
    }

    @Test("every command the scripts BudgetScripts loads call is granted by the ACL docs/operations.md documents")
    func commandsInDocumentedACL() throws {
        // An upgrade whose script needs a command operators have not granted fails every request.
        let granted = Set(try RedisAuthTLSTests.documentedACL(password: "x").filter { $0.hasPrefix("+") }.map { $0.dropFirst().lowercased() })
        for script in TestRedis.scripts.all {
            let called = script.source.matches(of: /call\('([A-Za-z]+)'/).map { $0.1.lowercased() }
            #expect(!called.isEmpty, "\(script.name) calls Redis through `call('…'` or `redis.call('…'`")
            for command in Set(called) { #expect(granted.contains(command), "\(script.name) calls \(command)") }
        }
    }
}
