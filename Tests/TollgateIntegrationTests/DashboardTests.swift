import Foundation
import Testing
import TollgateCore
import TollgateRedis
@testable import TollgateServer

/// The spend dashboard on the admin listener: who may see it, and what a real browser (Debian's
/// headless Chromium, driven by Tests/browser/dashboard.py) shows from counters seeded in a
/// private Redis, so no other test's clients appear beside them.
@Suite("dashboard", .timeLimit(.minutes(3)))
struct DashboardTests {
    /// HMAC-SHA256 of "dashboard-session" keyed with AdminServer.token (computed with Python's hmac).
    static let sessionCookie = "0c56ad26c15d313e0ce1ba00529d4794da7c0ba8f2e73c99c439ed6c1659cc5f"

    @Test("a browser without the token is sent to the sign-in form; the form sets an HttpOnly, SameSite=Strict cookie that is not the token")
    func signIn() async throws {
        try await AdminServer.with { admin in
            let http = TestClient.shared
            let anonymous = await http.get(admin.url + "/")
            #expect(anonymous.status == 303 && anonymous.header("Location") == "/login")
            let form = await http.get(admin.url + "/login")
            #expect(form.status == 200 && form.text.contains(#"<input id="token" name="token" type="password""#))

            let wrong = await http.send("POST", admin.url + "/login", "token=guess", headers: [("Content-Type", "application/x-www-form-urlencoded")])
            #expect(wrong.status == 401 && wrong.text.contains("That is not the admin token") && wrong.header("Set-Cookie") == nil)
            let right = await http.send("POST", admin.url + "/login", "token=\(AdminServer.token)")
            #expect(right.status == 303 && right.header("Location") == "/")
            let cookie = try #require(right.header("Set-Cookie"))
            #expect(cookie.hasPrefix("tollgate_admin=\(Self.sessionCookie);"), "\(cookie)")
            for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] { #expect(cookie.contains(attribute), "\(cookie)") }
            #expect(!cookie.contains(AdminServer.token))

            let page = await http.get(admin.url + "/", headers: [("Cookie", "tollgate_admin=\(Self.sessionCookie)")])
            #expect(page.status == 200 && page.header("Content-Type") == "text/html; charset=utf-8")
            #expect(page.header("Content-Security-Policy")?.contains("default-src 'none'") == true)
            let bearer = await admin.get("/")
            #expect(bearer.status == 200 && bearer.text.contains("<h1>Tollgate spend</h1>"), "the bearer token opens the page too")
            let forged = await http.get(admin.url + "/", headers: [("Cookie", "tollgate_admin=\(String(Self.sessionCookie.reversed()))")])
            #expect(forged.status == 303 && forged.header("Location") == "/login")
            let api = await http.get(admin.url + "/v1/spend/top", headers: [("Cookie", "tollgate_admin=\(Self.sessionCookie)")])
            #expect(api.status == 401, "the cookie opens pages only; the JSON API takes the bearer token")
            let out = await http.send("POST", admin.url + "/logout")
            #expect(out.status == 303 && out.header("Set-Cookie")?.contains("Max-Age=0") == true)
        }
    }

    @Test("without an admin token (loopback only) the dashboard is open, like the API")
    func openWithoutToken() async throws {
        try await AdminServer.with(token: nil) { admin in
            let page = await TestClient.shared.get(admin.url + "/")
            #expect(page.status == 200 && page.text.contains(#"<meta http-equiv="refresh" content="30">"#))
            #expect(!page.text.contains("Sign out"))
            let login = await TestClient.shared.get(admin.url + "/login")
            #expect(login.status == 303 && login.header("Location") == "/")
        }
    }

    @Test("in headless Chromium the page shows what Redis holds, escapes client text, and fits a phone")
    func inBrowser() async throws {
        guard let chromium = Browser.chromium else {
            Issue.record("Chromium is not installed, so the dashboard cannot be checked in a real browser. Install it with `apt-get install -y chromium` (.ci/run and `make deps` do).")
            return
        }
        let redis = try SpawnedRedis()
        defer { redis.stop() }
        try await AdminServer.with(redisURL: redis.url) { admin in
            let seeded = try await DashboardSeed.write(on: admin.tollgate.redis)
            // The HTML itself carries the model names escaped.
            let html = await admin.get("/").text
            #expect(html.contains("&lt;b&gt;x&lt;/b&gt;") && !html.contains("<b>x</b>"))
            #expect(html.contains("&lt;script&gt;window.__xss=true&lt;/script&gt;") && !html.contains("<script"))

            let result = try await Browser.run(chromium: chromium, url: admin.url, token: AdminServer.token)
            let page = try #require(result["page"])
            #expect(result["firstPath"]?.string == "/login", "the browser was sent to sign in first")
            #expect(page["path"]?.string == "/", "signed in through the form, the browser is back on the dashboard")
            #expect(page["refresh"]?.string == "30" && page["viewport"]?.string?.contains("width=device-width") == true)

            let today = elements(page["today"])
            #expect(today.map { $0["name"]?.string } == ["search-agent", "support-bot@eu", "batch:nightly"], "highest spend first")
            #expect(today.map { $0["attribute"]?.string } == today.map { $0["name"]?.string })
            #expect(today.map { $0["spent"]?.string } == ["4210000000", "1250000000", "600000000"])
            #expect(today.map { $0["spentText"]?.string } == ["$4.21", "$1.25", "$0.60"], "people read cents; the exact nano-USD are in <data value>")
            #expect(today.map { $0["meter"]?.string } == ["4210000000", "1250000000", "600000000"])
            #expect(today.map { $0["limit"]?.string } == ["5000000000", "10000000000", "500000000"])
            #expect(today.map { $0["used"]?.string } == ["84.2%", "12.5%", "120%"])
            #expect(today.map { $0["requests"]?.string } == ["182", "96", "12"])
            #expect(today.map { $0["refused"]?.string } == ["0", "7", "3"])
            #expect(today.map { $0["loopTrips"]?.string } == ["0", "1", "0"])
            #expect(today.map { $0["downgrades"]?.string } == ["12", "0", "0"])
            #expect(today.map { $0["bars"]?.int } == [30, 30, 30], "a bar per day of the last 30")
            let bars = elements(today.first?["barTitles"]).compactMap(\.string)
            #expect(bars.last == "\(seeded.today): $4.21" && bars.dropLast().last == "\(seeded.yesterday): $3.00")
            #expect(bars.first == "\(seeded.day29): $1.00", "the oldest day shown is 29 days ago; the day before is not drawn")
            #expect(page["totals"] == (try JSONValue.parse(#"{"requests":"290","refused":"10","loopTrips":"1","downgrades":"12"}"#)))

            let month = elements(page["month"])
            #expect(month.map { $0["name"]?.string } == ["search-agent", "support-bot@eu", "batch:nightly"])
            #expect(month.map { $0["spent"]?.string } == ["40000000000", "12500000000", "600000000"])
            #expect(month.map { $0["spentText"]?.string } == ["$40.00", "$12.50", "$0.60"])
            #expect(month.map { $0["limit"]?.string } == ["200000000000", "50000000000", "200000000000"])
            #expect(month.map { $0["used"]?.string } == ["20%", "25%", "0.3%"])

            let models = elements(page["modelsToday"])
            #expect(models.map { $0["name"]?.string } == ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "<script>window.__xss=true</script>", "<b>x</b>"],
                    "model names are shown as the text they are")
            #expect(models.map { $0["attribute"]?.string } == models.map { $0["name"]?.string })
            #expect(models.map { $0["spent"]?.string } == ["3100000000", "1110000000", "1000000000", "600000000", "250000000"])
            #expect(page["injectedElements"]?.int == 0 && page["scripts"]?.int == 0 && page["xss"]?.bool == false, "no markup from Redis became an element")

            let alerts = elements(page["alerts"]).map { elements($0).compactMap(\.string) }
            #expect(alerts.count == 2)
            #expect(alerts.first?[1] == "batch:nightly" && alerts.first?[2] == "100% of its daily budget \(seeded.today): $0.60 of $0.50 refused")
            #expect(alerts.last?[1] == "search-agent" && alerts.last?[2] == "80% of its daily budget \(seeded.today): $4.00 of $5.00")

            let desktop = elements(result["desktop"]?["sections"]), phone = try #require(result["phone"])
            #expect(Set(desktop.compactMap { $0["left"]?.int }).count == 2, "two columns on a desktop")
            #expect(Set(elements(phone["sections"]).compactMap { $0["left"]?.int }).count == 1, "one column on a phone")
            #expect((phone["scrollWidth"]?.int ?? .max) <= (phone["innerWidth"]?.int ?? 0), "nothing wider than the phone's screen")
            let screenshot = try #require(result["screenshot"]?.string)
            #expect(FileManager.default.contents(atPath: screenshot)?.prefix(4) == Data([0x89, 0x50, 0x4E, 0x47]), "a PNG at \(screenshot)")
            print("dashboard screenshots: \(screenshot), \(result["phoneScreenshot"]?.string ?? "")")
        }
    }

    @Test("amounts on the page are rounded to the cent in integers, grouped by thousands", arguments: [
        (Int64(0), "$0.00"), (1, "<$0.01"), (4_999_999, "<$0.01"), (5_000_000, "$0.01"), (4_215_000_000, "$4.22"), (4_214_999_999, "$4.21"),
        (1_234_567_890_000, "$1,234.57"), (9_007_199_254_740_991, "$9,007,199.25"), (-2_500_000_000, "-$2.50"),
    ])
    func money(nano: Int64, text: String) {
        #expect(DashboardPage.money(NanoUSD(nano)) == text)
    }
}
