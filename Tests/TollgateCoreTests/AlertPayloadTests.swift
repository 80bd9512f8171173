import Foundation
import Testing
@testable import TollgateCore

@Suite("README, Alerts: the documented examples are what Tollgate sends")
struct AlertPayloadTests {
    static let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("README.md")

    @Test("the example body and summary are those of alice's 80 % daily alert")
    func readmeExample() throws {
        let text = try String(contentsOf: Self.readme, encoding: .utf8)
        // 2026-11-30T14:03:27Z = 1_795_996_800 + 14 h 3 min 27 s.
        let alert = BudgetAlert(client: ClientID("alice")!, period: .daily, window: "2026-11-30", thresholdPercent: 80,
                                limit: NanoUSD(usd: "10")!, spent: NanoUSD(usd: "8.25")!, cause: .spent,
                                firedAt: UnixTime(seconds: 1_795_996_800 + 14 * 3_600 + 3 * 60 + 27))
        #expect(text.contains("\n" + alert.json + "\n"))
        #expect(text.contains("`" + alert.summary + "`"))
    }
}
