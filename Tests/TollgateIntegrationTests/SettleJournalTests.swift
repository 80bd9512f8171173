import Foundation
import Prometheus
import Testing
import TollgateCore
import TollgateMockProvider
import TollgateRedis
import TollgateServer
import TollgateUpstream

extension HeavySuites {
/// No spend lost in a Redis outage: a settle Redis cannot take is journaled on disk before the
/// client sees its response end, and replayed, once, when Redis is back. Every test here uses a
/// redis-server of its own that it kills and restarts (append-only, so the counters survive, as
/// in production), or the shared one when Redis stays up.
@Suite("settle journal: no spend lost in a Redis outage", .timeLimit(.minutes(2)))
struct SettleJournalTests {
    /// The metrics registry of this test process (swift-metrics is bootstrapped once).
    var registry: PrometheusCollectorRegistry { MetricsTests.registry }

    static func temporaryDirectory(_ label: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-\(label)-\(UUID().uuidString.prefix(8))").path
    }

    /// A redis-server that keeps its data across a kill: every write is in its append-only file.
    static func durableRedis() throws -> SpawnedRedis {
        try SpawnedRedis(["--appendonly", "yes", "--appendfsync", "always"])
    }

    static func journalRecords(_ directory: String) -> SettleJournalFormat.Scan {
        SettleJournalFormat.scan(Array(FileManager.default.contents(atPath: directory + "/" + SettleJournal.fileName) ?? Data()))
    }

    struct Totals: Equatable { var spent: Int64; var reserved: Int64 }

    static func totals(_ client: ClientID, on redis: RedisConnection) async throws -> Totals {
        let (day, _) = try await TestRedis.periodKeys(client)
        let h = try await redis.call(.command(["HGETALL", day])).hash
        return Totals(spent: Int64(h["spent"] ?? "0")!, reserved: Int64(h["reserved"] ?? "0")!)
    }

    /// Leases the client holds; nil while Redis does not answer (or still loads its data).
    static func leases(_ client: ClientID, on redis: RedisConnection) async -> Int64? {
        try? await redis.call(.command(["ZCARD", RedisKeys(client).leases])).int
    }

    /// The sum of a metric's samples (all label sets), read from /metrics' text.
    func metric(_ name: String, _ labels: String = "") -> Int64 {
        let text = String(decoding: registry.emitToBuffer(), as: UTF8.self)
        return text.split(separator: "\n").filter { $0.hasPrefix(name + labels + " ") || (labels.isEmpty && $0.hasPrefix(name + "{")) }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0) { $0 + Int64($1) }
    }

    static func settles(_ store: BudgetStore, _ client: ClientID, costs: [Int64], reserve: Int64 = 10_000) async throws -> [JournaledSettle] {
        var settles: [JournaledSettle] = []
        for cost in costs {
            let grant = try await store.grant(client, estimate: .fixed(reserve))
            settles.append(JournaledSettle(client: client, lease: grant.lease, cost: NanoUSD(cost), model: "gpt-4o-mini", endedAtMilliseconds: 0))
        }
        return settles
    }

    // MARK: (a) An outage under load

    static let chat = #"{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"what does an outage cost?"}]}"#
    static let streamedChat = #"{"model":"gpt-4o-mini","max_tokens":50,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"what does an outage cost?"}]}"#

    /// The provider's bill for a reply, from the usage it reported (list prices written in
    /// `ExactnessTests.ListPrice`, not the code under test).
    static func billed(_ usage: JSONValue?) -> Int64? {
        guard let prompt = usage?["prompt_tokens"]?.int, let completion = usage?["completion_tokens"]?.int else { return nil }
        return prompt * ExactnessTests.ListPrice.gpt4oMiniInput + completion * ExactnessTests.ListPrice.gpt4oMiniOutput
    }

    /// The usage a streamed reply reported in its last data event (`stream_options.include_usage`).
    static func streamedUsage(_ text: String) -> JSONValue? {
        text.split(separator: "\n").filter { $0.hasPrefix("data: {") }
            .compactMap { try? JSONValue.parse(String($0.dropFirst(6))) }
            .last { $0["usage"]?["prompt_tokens"] != nil }?["usage"]
    }

    @Test("Redis killed under load (streamed and not): every response ends, and once Redis is back the counters equal the provider's bill, 0 settles lost")
    func outageUnderLoad() async throws {
        let bench = try await OutageBench.start(metrics: registry)
        let (redis, directory, replica, admin) = (bench.redis, bench.directory, bench.replica, bench.admin)
        let client = TestRedis.uniqueClient("outage")
        let journaledBefore = metric("tollgate_settle_journaled_total")
        let replayedBefore = metric("tollgate_settle_replayed_total")

        let perKind = 4
        let replies = Task {
            await withTaskGroup(of: (streamed: Bool, reply: TestClient.Reply).self) { group in
                for i in 0..<(2 * perKind) {
                    let streamed = i % 2 == 0
                    group.addTask {
                        let knob = streamed ? ("X-Mock-Chunk-Delay-Ms", "120") : ("X-Mock-Latency-Ms", "1500")
                        let reply = await TestClient.shared.post(replica.baseURL + "/v1/chat/completions", streamed ? Self.streamedChat : Self.chat,
                                                                 headers: [("X-Client-ID", client.rawValue), knob])
                        return (streamed, reply)
                    }
                }
                var all: [(streamed: Bool, reply: TestClient.Reply)] = []
                for await done in group { all.append(done) }
                return all
            }
        }
        // Every request holds its reservation (so it was forwarded); then Redis dies.
        #expect(try await eventually { await Self.leases(client, on: admin) == Int64(2 * perKind) })
        redis.stop()

        let done = await replies.value
        #expect(done.count == 2 * perKind)
        var bill: Int64 = 0
        for (streamed, reply) in done {
            #expect(reply.status == 200, "\(reply.text)")
            if streamed { #expect(reply.text.contains("data: [DONE]"), "the stream ended for the client") }
            let cost = try #require(Self.billed(streamed ? Self.streamedUsage(reply.text) : reply.json?["usage"]), "usage in \(reply.text)")
            bill += cost
        }
        // Every settle came after Redis died: each is on disk now, before Redis is back.
        let journaled = Self.journalRecords(directory).settles.filter { $0.client == client }
        #expect(journaled.count == 2 * perKind)
        #expect(journaled.reduce(0) { $0 + $1.cost.value } == bill)
        #expect(metric("tollgate_settle_journaled_total") - journaledBefore >= Int64(2 * perKind))

        try redis.start()
        let store = RedisRecoveryTests.connection(redis, scripts: [])
        defer { store.shutdown() }
        var totals = Totals(spent: -1, reserved: -1)
        _ = try await eventually {
            totals = (try? await Self.totals(client, on: store)) ?? totals
            return totals == Totals(spent: bill, reserved: 0) && replica.tollgate.settleRetrier.journal?.bytes == 0
        }
        #expect(totals == Totals(spent: bill, reserved: 0), "the counters are the provider's bill")
        #expect(replica.tollgate.settleRetrier.journal?.bytes == 0, "the journal is emptied once replayed")
        #expect(await Self.leases(client, on: store) == 0, "no lease left to reap")
        #expect(metric("tollgate_settle_replayed_total") - replayedBefore >= Int64(2 * perKind))
        await bench.stop()
    }

    // MARK: (d) A stream's end during the outage

    @Test("a stream that ends while Redis is down: the client gets [DONE] only once its charge is in the journal")
    func streamEndHeldForJournal() async throws {
        let bench = try await OutageBench.start()
        let (redis, directory, replica, admin) = (bench.redis, bench.directory, bench.replica, bench.admin)
        let client = TestRedis.uniqueClient("done")

        let transfer = TestClient.shared.start(replica.baseURL + "/v1/chat/completions", Self.streamedChat,
                                               headers: [("X-Client-ID", client.rawValue), ("X-Mock-Chunk-Delay-Ms", "100")])
        #expect(try await eventually { await Self.leases(client, on: admin) == 1 })
        redis.stop()
        var text = ""
        var journaledAtDone: [JournaledSettle]?
        for await part in transfer.parts {
            guard case .body(let bytes) = part else { continue }
            text += String(decoding: bytes, as: UTF8.self)
            if journaledAtDone == nil, text.contains("data: [DONE]") {
                journaledAtDone = Self.journalRecords(directory).settles.filter { $0.client == client }
            }
        }
        let atDone = try #require(journaledAtDone, "the stream ended: \(text)")
        let bill = try #require(Self.billed(Self.streamedUsage(text)))
        #expect(atDone.map(\.cost.value) == [bill], "when [DONE] arrived, the journal held this stream's charge")

        try redis.start()
        let store = RedisRecoveryTests.connection(redis, scripts: [])
        defer { store.shutdown() }
        #expect(try await eventually { (try? await Self.totals(client, on: store)) == Totals(spent: bill, reserved: 0) })
        await bench.stop()
    }

    // MARK: Shutdown and the next start

    @Test("SIGTERM during an outage: the stream in flight drains and journals its charge before the journal closes; the next start replays it")
    func shutdownThenStartupReplay() async throws {
        let bench = try await OutageBench.start()
        let client = TestRedis.uniqueClient("restart")
        let transfer = TestClient.shared.start(bench.replica.baseURL + "/v1/chat/completions", Self.streamedChat,
                                               headers: [("X-Client-ID", client.rawValue), ("X-Mock-Chunk-Delay-Ms", "50")])
        // The stream's head is here, so the replica has read its reserve's reply (a lease seen in
        // Redis alone may still have its reply on the way: stopping Redis then fails the request).
        var parts = transfer.parts.makeAsyncIterator()
        let first = await parts.next()
        let head: UpstreamResponseHead? = if case .head(let h)? = first { h } else { nil }
        #expect(head?.status == 200, "the stream started: \(String(describing: first))")
        bench.redis.stop()
        // Graceful shutdown at once: the HTTP server drains first, so the stream still ends (and
        // journals its charge) before the settle retrier and the journal stop.
        async let stopped: Void = bench.replica.stop()
        var text = ""
        while let part = await parts.next() {
            if case .body(let bytes) = part { text += String(decoding: bytes, as: UTF8.self) }
        }
        await stopped
        #expect(text.contains("data: [DONE]"))
        let bill = try #require(Self.billed(Self.streamedUsage(text)))
        #expect(Self.journalRecords(bench.directory).settles.map(\.cost.value) == [bill])

        try bench.redis.start()
        let next = try await Replica.start(upstream: bench.mock.baseURL, redisURL: bench.redis.url,
                                           configure: { $0.redis.journal.directory = bench.directory })
        #expect(try await eventually { (try? await Self.totals(client, on: bench.admin)) == Totals(spent: bill, reserved: 0) })
        #expect(try await eventually { next.tollgate.settleRetrier.journal?.bytes == 0 })
        await next.stop()
        await bench.stop()
    }

    @Test("SIGTERM with Redis up: the stream in flight drains and is charged in Redis, not journaled; then Redis closes")
    func shutdownOrder() async throws {
        let bench = try await OutageBench.start()
        let client = TestRedis.uniqueClient("drain")
        let transfer = TestClient.shared.start(bench.replica.baseURL + "/v1/chat/completions", Self.streamedChat,
                                               headers: [("X-Client-ID", client.rawValue), ("X-Mock-Chunk-Delay-Ms", "50")])
        #expect(try await eventually { await Self.leases(client, on: bench.admin) == 1 })
        // The services alone, as SIGTERM stops them (no `Tollgate.shutdown()` after).
        bench.replica.server.cancel()
        let reply = await TestClient.shared.collect(transfer)
        _ = try? await bench.replica.server.value
        #expect(reply.text.contains("data: [DONE]"))
        let bill = try #require(Self.billed(Self.streamedUsage(reply.text)))
        #expect(try await Self.totals(client, on: bench.admin) == Totals(spent: bill, reserved: 0))
        #expect(Self.journalRecords(bench.directory).settles.isEmpty)
        // Redis closed last: once the services have stopped, the replica's connection is shut.
        await #expect(throws: RedisError.self) { try await bench.replica.tollgate.redis.call(.command(["PING"])) }
        await bench.stop()
    }

    @Test("a non-streamed answer goes out before its settle; SIGTERM right after still waits for that settle, which lands in Redis")
    func settleAfterResponse() async throws {
        let bench = try await OutageBench.start { $0.redis.timeoutMilliseconds = 6_000 }
        let client = TestRedis.uniqueClient("after")
        let transfer = TestClient.shared.start(bench.replica.baseURL + "/v1/chat/completions", Self.chat,
                                               headers: [("X-Client-ID", client.rawValue), ("X-Mock-Latency-Ms", "200")])
        #expect(try await eventually { await Self.leases(client, on: bench.admin) == 1 }, "reserved")
        // Writes (scripts included) wait 1.5 s from here, inside the test server's 2 s graceful
        // shutdown bound; reads like ZCARD are still answered.
        _ = try await bench.admin.call(.command(["CLIENT", "PAUSE", "1500", "WRITE"]))
        let reply = await TestClient.shared.collect(transfer)
        #expect(reply.status == 200)
        #expect(await Self.leases(client, on: bench.admin) == 1, "the answer did not wait for its settle")
        // SIGTERM's path (the services alone): the HTTP server has nothing left to drain, the
        // settle is still waiting on Redis, and the replica must not close Redis before it lands.
        bench.replica.server.cancel()
        _ = try? await bench.replica.server.value
        let bill = try #require(Self.billed(reply.json?["usage"]))
        #expect(try await Self.totals(client, on: bench.admin) == Totals(spent: bill, reserved: 0))
        #expect(await Self.leases(client, on: bench.admin) == 0)
        #expect(Self.journalRecords(bench.directory).settles.isEmpty, "charged in Redis, not journaled")
        // The top-spender increment, summed for 50 ms after that settle, went out before Redis closed.
        let (day, _) = try await TestRedis.periodKeys(client)
        let topDay = SharedRedisKeys.topDay(String(day.suffix(10)))
        #expect(try await bench.admin.call(.command(["ZSCORE", topDay, client.rawValue])).string == String(bill))
        await bench.stop()
    }

    // MARK: (b) Exactly once

    @Test("replaying the same journal twice charges once: the counters do not move after the first replay")
    func replayExactlyOnce() async throws {
        let store = BudgetStore.forTests()
        let client = TestRedis.uniqueClient("twice")
        let settles = try await Self.settles(store, client, costs: [1_000, 2_000, 3_500])
        let directory = Self.temporaryDirectory("journal")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let journal = try SettleJournal(directory: directory, maxBytes: 1 << 20, logger: TestRedis.logger)
        defer { journal.close() }
        for s in settles { #expect(await journal.append(s) == .durable) }
        let retrier = SettleRetrier(budget: store, journal: journal, logger: TestRedis.logger)

        #expect(await retrier.replayJournal())
        let once = try await Self.totals(client, on: TestRedis.shared)
        #expect(once == Totals(spent: 6_500, reserved: 0))
        #expect(journal.bytes == 0)

        // The same records again, as if the first replay's compaction had been lost in a crash.
        for s in settles { #expect(await journal.append(s) == .durable) }
        #expect(await retrier.replayJournal())
        #expect(try await Self.totals(client, on: TestRedis.shared) == once)
        #expect(journal.bytes == 0)
    }

    // MARK: (c) A torn or corrupt journal

    @Test("a journal left by a crash, with a corrupt record and a torn tail: the good records are replayed at start, the others skipped with a log")
    func tornTailSkipped() async throws {
        let store = BudgetStore.forTests()
        let client = TestRedis.uniqueClient("torn")
        let settles = try await Self.settles(store, client, costs: [1_000, 2_000, 4_000, 8_000])
        let directory = Self.temporaryDirectory("journal")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var corrupt = SettleJournalFormat.encode(settles[1])
        corrupt[30] ^= 0x20
        let torn = SettleJournalFormat.encode(settles[3]).prefix(40)
        let bytes = SettleJournalFormat.encode(settles[0]) + corrupt + SettleJournalFormat.encode(settles[2]) + torn
        FileManager.default.createFile(atPath: directory + "/" + SettleJournal.fileName, contents: Data(bytes))

        let log = CapturedLog()
        let journal = try SettleJournal(directory: directory, maxBytes: 1 << 20, logger: log.logger())
        defer { journal.close() }
        let retrier = SettleRetrier(budget: store, journal: journal, logger: log.logger())
        #expect(await retrier.pass(), "everything that could be replayed was")
        // Records 0 and 2 charged their cost; 1 and 3 still hold their reservations (reaped later).
        #expect(try await Self.totals(client, on: TestRedis.shared) == Totals(spent: 5_000, reserved: 20_000))
        #expect(log.contains("reason=checksum mismatch"))
        #expect(log.contains("reason=torn tail"))
        #expect(journal.bytes == 0, "the unreadable records are dropped with the replayed ones")
    }

    // MARK: (e) A full journal

    @Test("a full journal: the settle is retried in memory, with a log and a metric, and still reaches Redis when it is back")
    func journalFull() async throws {
        let redis = try Self.durableRedis()
        let connection = RedisRecoveryTests.connection(redis)
        defer { connection.shutdown() }
        let store = BudgetStore.forTests(redis: connection)
        // Started moments ago, it may still be loading its (empty) append-only file.
        #expect(try await eventually { (try? await connection.call(.command(["SET", "tollgate:ready", "1"]))) != nil })
        let client = TestRedis.uniqueClient("full")
        let settles = try await Self.settles(store, client, costs: [1_000, 2_000, 4_000])
        let directory = Self.temporaryDirectory("journal")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let recordSize = SettleJournalFormat.encode(settles[0]).count
        let journal = try SettleJournal(directory: directory, maxBytes: 2 * recordSize + recordSize / 2, logger: TestRedis.logger)
        defer { journal.close() }
        let log = CapturedLog()
        let retrier = SettleRetrier(budget: store, journal: journal, logger: log.logger())
        let fullBefore = metric("tollgate_settle_failed_total", #"{reason="journal_full"}"#)

        redis.stop()
        #expect(await retrier.settle(settles[0]) == .journaled)
        #expect(await retrier.settle(settles[1]) == .journaled)
        #expect(await retrier.settle(settles[2]) == .retrying)
        #expect(log.contains("settle journal full"))
        #expect(metric("tollgate_settle_failed_total", #"{reason="journal_full"}"#) - fullBefore >= 1)
        #expect(Self.journalRecords(directory).settles == Array(settles[0..<2]))

        try redis.start()
        #expect(try await eventually { await retrier.pass() })
        let admin = RedisRecoveryTests.connection(redis, scripts: [])
        defer { admin.shutdown() }
        #expect(try await Self.totals(client, on: admin) == Totals(spent: 7_000, reserved: 0))
        #expect(journal.bytes == 0)
    }
}
}

/// A replica with a settle journal, its own append-only Redis (to kill and restart) and a mock
/// provider: what the outage tests share.
struct OutageBench {
    let redis: SpawnedRedis
    let directory: String
    let mock: RunningMockProvider
    let replica: Replica
    /// A connection of the test's own to `redis`, to watch leases while requests run.
    let admin: RedisConnection

    static func start(metrics: PrometheusCollectorRegistry? = nil, configure: (inout TollgateConfig) -> Void = { _ in }) async throws -> OutageBench {
        let redis = try HeavySuites.SettleJournalTests.durableRedis()
        let directory = HeavySuites.SettleJournalTests.temporaryDirectory("journal")
        let mock = try await MockProvider.start()
        let replica = try await Replica.start(upstream: mock.baseURL, redisURL: redis.url,
                                              configure: { $0.redis.journal.directory = directory; configure(&$0) }, metrics: metrics)
        return OutageBench(redis: redis, directory: directory, mock: mock, replica: replica,
                           admin: RedisRecoveryTests.connection(redis, scripts: []))
    }

    func stop() async {
        await replica.stop()
        await mock.stop()
        admin.shutdown()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
