import Foundation
import TollgateCore

/// Debian's Chromium, headless, driven by Tests/browser/dashboard.py over the DevTools protocol.
enum Browser {
    static let repository = URL(fileURLWithPath: #filePath).appendingPathComponent("../../../..").standardized
    static let script = repository.appendingPathComponent("Tests/browser/dashboard.py")
    /// Kept after the run, for a person to look at.
    static let artifacts = repository.appendingPathComponent(".build/test-artifacts/dashboard")

    static var chromium: String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").flatMap { dir in ["chromium", "chromium-browser"].map { "\(dir)/\($0)" } }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    struct Failed: Error, CustomStringConvertible {
        let description: String
    }

    /// Signs in at `url` through the form, reads the dashboard and takes screenshots; returns
    /// what the script wrote to result.json.
    static func run(chromium: String, url: String, token: String) async throws -> JSONValue {
        let (status, output) = try await ChildProcess.run(
            "python3", [script.path, "--url", url, "--token", token, "--out", artifacts.path, "--chromium", chromium])
        guard status == 0 else { throw Failed(description: "dashboard.py failed (\(status)): \(output)") }
        let result = artifacts.appendingPathComponent("result.json")
        return try JSONValue.parse(Array(try Data(contentsOf: result)))
    }
}
