import Foundation
import Synchronization
import Testing
import TollgateCore
import TollgateMockProvider
import TollgateRedis

extension Tag {
    /// Needs nginx (installed by `make test`); skipped where it is missing.
    @Tag static var cluster: Self
}

/// Real processes: three `tollgate serve` replicas behind nginx, one Redis, the mock provider.
@Suite("cluster behind nginx", .tags(.cluster), .timeLimit(.minutes(3)),
       .enabled(if: ReplicaProcess.nginx != nil && ReplicaProcess.binaryExists, "needs nginx and a built tollgate binary"))
struct ClusterTests {
    @Test("the budget is shared across replicas behind nginx, and killing a replica mid-load loses no settled spend")
    func sharedBudgetAndReplicaKill() async throws {
        let mock = try await MockProvider.start()
        var started: [ReplicaProcess] = []
        // A short lease, so the killed replica's unsettled leases are reaped within the test.
        for _ in 0..<3 { started.append(try await ReplicaProcess.start(upstream: mock.baseURL, environment: ["TOLLGATE_BUDGET_LEASE_SECONDS": "5"])) }
        let replicas = started
        let nginx = try NginxProcess(upstreams: replicas.map(\.port))
        defer { nginx.stop(); replicas.forEach { $0.kill() } }
        try await nginx.waitUntilServing()

        let client = TestRedis.uniqueClient("cluster")
        // ~150 requests' worth, shared by all replicas; 32 callers make ~240 attempts.
        let limit = NanoUSD(1_200_000)
        _ = try await TestRedis.shared.call(.command(["HSET", RedisKeys(client).limits, "daily", String(limit.value)]))
        let price = try #require(bundledPrices.price(for: "gpt-4o-mini"))
        let chat = #"{"model":"gpt-4o-mini","max_tokens":10,"messages":[{"role":"user","content":"cluster"}]}"#
        let stream = #"{"model":"gpt-4o-mini","max_tokens":10,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"cluster"}]}"#
        let tally = Tally()

        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<32 {
                group.addTask {
                    for i in 0..<8 {
                        let streamed = (worker + i) % 2 == 0
                        let reply = await TestClient.shared.post(nginx.baseURL + "/v1/chat/completions", streamed ? stream : chat, headers: [
                            ("X-Client-ID", client.rawValue), ("X-Mock-Chunk-Delay-Ms", "20"),
                        ])
                        tally.record(reply, streamed: streamed, price: price)
                    }
                }
            }
            // Kill one replica (SIGKILL: a crash, not a drain) while the load runs.
            group.addTask {
                try await Task.sleep(nanoseconds: 400_000_000)
                replicas[1].kill()
            }
            try await group.waitForAll()
        }

        // A whole answer is settled after it goes out, so the killed replica may have delivered
        // answers it never settled. Their leases must be reaped and charged their reservations:
        // once they are due, the next reserve (refused or not) reaps them.
        try await Task.sleep(for: .seconds(6))
        tally.record(await TestClient.shared.post("http://127.0.0.1:\(replicas[0].port)/v1/chat/completions", chat, headers: [("X-Client-ID", client.rawValue)]),
                     streamed: false, price: price)
        let leases = RedisKeys(client).leases
        _ = try await eventually {
            let members = try await TestRedis.shared.call(.command(["ZRANGE", leases, "0", "-1"])).array ?? []
            return !members.contains { $0.string?.hasPrefix("A|") == true }
        }
        let (day, _) = try await TestRedis.periodKeys(client)
        let spent = try await TestRedis.int(day, "spent")
        let reaped = try await TestRedis.int(day, "leases_reaped")
        let t = tally.snapshot
        print("cluster: \(t.ok) ok, \(t.refused) refused, \(t.failed) failed; client-seen cost \(t.cost) nano, Redis spent \(spent) nano, \(reaped) leases reaped, limit \(limit.value)")
        #expect(t.ok > 50)
        #expect(t.refused > 0, "the shared limit was reached")
        #expect(spent <= limit.value, "no overshoot across replicas")
        #expect(spent >= t.cost, "every response a client received in full was charged (settled, or reaped)")
        // Requests the killed replica settled but never delivered, and reaped leases (charged their
        // reservation, this small request's worst case) may add a little, never more than one each.
        let worstCase = price.cost(of: TokenUsage(input: 100, output: 10)).value
        #expect(spent - t.cost <= (Int64(t.failed) + reaped) * worstCase)
        await mock.stop()
    }
}

/// What the clients saw.
final class Tally: Sendable {
    struct Counts: Sendable { var ok = 0, refused = 0, failed = 0, cost: Int64 = 0 }
    private let counts = Mutex(Counts())
    var snapshot: Counts { counts.withLock { $0 } }

    func record(_ reply: TestClient.Reply, streamed: Bool, price: ModelPrice) {
        var usage: TokenUsage?
        if reply.status == 200 {
            if streamed, reply.text.hasSuffix("data: [DONE]\n\n") {
                var parser = SSEParser()
                usage = parser.feed(reply.body).compactMap { try? JSONValue.parse($0.data) }
                    .compactMap { ProxyRoute.chatCompletions.usage(inResponse: $0) }.last
            } else if !streamed {
                usage = reply.json.flatMap { ProxyRoute.chatCompletions.usage(inResponse: $0) }
            }
        }
        counts.withLock { c in
            if let usage { c.ok += 1; c.cost += price.cost(of: usage).value }
            else if reply.status == 402 { c.refused += 1 }
            else { c.failed += 1 }
        }
    }
}

/// A `tollgate serve` process from this build.
struct ReplicaProcess: Sendable {
    let process: ChildProcess
    let port: Int

    static let repository = URL(fileURLWithPath: #filePath).appendingPathComponent("../../..").standardized
    static let binary = repository.appendingPathComponent(".build/debug/tollgate")
    static var binaryExists: Bool { FileManager.default.isExecutableFile(atPath: binary.path) }
    static let nginx: String? = ["/usr/sbin/nginx", "/usr/bin/nginx"].first { FileManager.default.isExecutableFile(atPath: $0) }

    static func start(upstream: String, environment: [String: String] = [:]) async throws -> ReplicaProcess {
        let port = try SpawnedRedis.freePort()
        let p = try ChildProcess(binary.path, ["serve"], environment: ChildProcess.environment([
            "TOLLGATE_HOST": "127.0.0.1", "TOLLGATE_PORT": String(port), "TOLLGATE_ADMIN_PORT": String(try SpawnedRedis.freePort()),
            "TOLLGATE_REDIS_URL": TestRedis.url, "TOLLGATE_OPENAI_BASE_URL": upstream, "TOLLGATE_ANTHROPIC_BASE_URL": upstream,
            "TOLLGATE_LOG_LEVEL": "error", "TOLLGATE_LUA_DIR": repository.appendingPathComponent("lua").path,
        ].merging(environment) { $1 }))
        let replica = ReplicaProcess(process: p, port: port)
        _ = try await eventually { await TestClient.shared.get("http://127.0.0.1:\(port)/readyz").status == 200 }
        return replica
    }

    func kill() {
        process.kill()
    }
}

/// nginx in front of the replicas, with the streaming-safe settings of deploy/nginx.
final class NginxProcess: Sendable {
    let port: Int
    let directory: URL
    let process: ChildProcess
    var baseURL: String { "http://127.0.0.1:\(port)" }

    init(upstreams: [Int]) throws {
        port = try SpawnedRedis.freePort()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-nginx-\(port)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let servers = upstreams.map { "server 127.0.0.1:\($0) max_fails=1 fail_timeout=5s;" }.joined(separator: "\n    ")
        let conf = """
        worker_processes 1;
        pid \(directory.path)/nginx.pid;
        error_log \(directory.path)/error.log;
        events { worker_connections 1024; }
        http {
          access_log off;
          client_body_temp_path \(directory.path)/body;
          proxy_temp_path \(directory.path)/proxy;
          upstream tollgate {
            \(servers)
            keepalive 32;
          }
          server {
            listen 127.0.0.1:\(port);
            client_max_body_size 64m;
            location / {
              proxy_pass http://tollgate;
              proxy_http_version 1.1;
              proxy_set_header Connection "";
              proxy_buffering off;
              proxy_request_buffering off;
              proxy_read_timeout 900s;
              # Retry only when a replica could not be reached: a POST that reached one is never resent.
              proxy_next_upstream error timeout;
              proxy_next_upstream_tries 3;
            }
          }
        }
        """
        try conf.write(to: directory.appendingPathComponent("nginx.conf"), atomically: true, encoding: .utf8)
        process = try ChildProcess(ReplicaProcess.nginx!, ["-p", directory.path, "-c", directory.appendingPathComponent("nginx.conf").path,
                                                            "-g", "daemon off;"])
    }

    func waitUntilServing() async throws {
        _ = try await eventually { await TestClient.shared.get(baseURL + "/healthz").status == 200 }
    }

    func stop() {
        process.signal(SIGQUIT)
    }
}
