import Testing
import TollgateCore

@Suite("server limits in the config")
struct ServerLimitsConfigTests {
    @Test("defaults: 32 MiB bodies, 2 large bodies at once from 4 MiB, 60 s idle timeout")
    func defaults() throws {
        let s = try TollgateConfig.load(yaml: "").server
        #expect(s.maxBodyBytes == 33_554_432)
        #expect(s.largeBodyConcurrency == 2)
        #expect(s.largeBodyBytes == 4_194_304)
        #expect(s.idleTimeoutSeconds == 60)
    }

    @Test("the file and the environment set them")
    func set() throws {
        let s = try TollgateConfig.load(
            yaml: "server: { max_body_bytes: 70000000, large_body_concurrency: 4, large_body_bytes: 1048576 }",
            environment: ["TOLLGATE_IDLE_TIMEOUT_SECONDS": "0"]).server
        #expect(s.maxBodyBytes == 70_000_000)
        #expect(s.largeBodyConcurrency == 4)
        #expect(s.largeBodyBytes == 1_048_576)
        #expect(s.idleTimeoutSeconds == 0)
    }

    @Test("an out-of-range value names its key", arguments: [
        ("server: { max_body_bytes: 10 }", "server.max_body_bytes"),
        ("server: { large_body_concurrency: 0 }", "server.large_body_concurrency"),
        ("server: { idle_timeout_seconds: -1 }", "server.idle_timeout_seconds"),
    ])
    func invalid(yaml: String, key: String) {
        #expect { try TollgateConfig.load(yaml: yaml) } throws: { ($0 as? ConfigError)?.key == key }
    }
}
