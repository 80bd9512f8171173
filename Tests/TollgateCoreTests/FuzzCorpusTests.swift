import Foundation
import Testing
import TollgateFuzzChecks

/// The fuzz harness without the fuzzer build: every seed in fuzz/corpus/<target>/ passes its
/// target's checks (`make fuzz` mutates these seeds; a seed that already fails would make every
/// fuzz run report it). Crashes the fuzzer found are regression tests of their own, elsewhere.
@Suite("Fuzz targets over their seed corpus", .timeLimit(.minutes(1)))
struct FuzzCorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fuzz/corpus")

    static func seeds(_ target: FuzzTarget) throws -> [URL] {
        let directory = corpus.appendingPathComponent(target.rawValue)
        return try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    @Test("every seed passes its target's checks", arguments: FuzzTarget.allCases)
    func seedsPass(target: FuzzTarget) throws {
        let seeds = try Self.seeds(target)
        #expect(seeds.count >= 5, "fuzz/corpus/\(target.rawValue) should hold real inputs to start from")
        for seed in seeds {
            do { try target.check(Array(try Data(contentsOf: seed))) } catch {
                Issue.record("\(target.rawValue)/\(seed.lastPathComponent): \(error)")
            }
        }
    }

    @Test("the empty input and a lone byte pass every target", arguments: FuzzTarget.allCases)
    func tinyInputs(target: FuzzTarget) throws {
        for input in [[], [0], [0xFF], Array("\r\n".utf8)] as [[UInt8]] { try target.check(input) }
    }
}
