import Foundation
import Hummingbird
import Mustache
import NIOCore
import TollgateCore
import TollgateRedis

/// The spend dashboard on the admin listener: `GET /` renders one page from Redis on every load
/// (the page refreshes itself every 30 s) with no JavaScript. `AdminGuard` decides who sees it;
/// with an admin token a browser signs in at `/login` and gets a session cookie.
struct Dashboard: Sendable {
    let analytics: SpendAnalytics
    /// The budget timezone's name, shown beside the day.
    let timezone: String
    let token: String?
    static let loginPath = "/login"
    static let clientsShown = 20
    static let refreshSeconds = 30

    func register(on router: Router<BasicRequestContext>) {
        let dashboard = self
        router.get("/") { _, _ in await dashboard.page() }
        router.get(RouterPath(Self.loginPath)) { _, _ in dashboard.loginForm() }
        router.post(RouterPath(Self.loginPath)) { request, _ in await dashboard.login(request) }
        router.post("/logout") { _, _ in dashboard.logout() }
    }

    /// The sign-in form and the sign-out need no sign-in.
    static func isOpen(_ request: Request) -> Bool {
        request.uri.path == loginPath || (request.uri.path == "/logout" && request.method == .post)
    }

    /// Pages a browser opens: unauthenticated, it is sent to the sign-in form instead of a 401.
    static func isPage(_ request: Request) -> Bool { request.method == .get && request.uri.path == "/" }

    func page() async -> Response {
        do {
            let overview = try await analytics.overview(clients: Self.clientsShown)
            let page = DashboardPage(overview, timezone: timezone, signOut: token != nil, refreshSeconds: Self.refreshSeconds)
            return try Self.html(.ok, Self.render(page, "dashboard"))
        } catch {
            var response = Self.text(.serviceUnavailable, "The dashboard could not be built: \(error). It retries every \(Self.refreshSeconds) s.\n")
            response.headers[.init("Refresh")!] = String(Self.refreshSeconds)
            return response
        }
    }

    func loginForm(failed: Bool = false) -> Response {
        // Without a token the dashboard is open (loopback only): nothing to sign in to.
        guard token != nil else { return .redirect(to: "/") }
        do {
            return try Self.html(failed ? .unauthorized : .ok, Self.render(LoginPage(failed: failed), "login"))
        } catch {
            return Self.text(.internalServerError, "\(error)\n")
        }
    }

    struct LoginForm: Decodable { var token: String? }

    func login(_ request: Request) async -> Response {
        guard let token else { return .redirect(to: "/") }
        let body = (try? await request.body.collect(upTo: 4096)).map { String(buffer: $0) } ?? ""
        let presented = (try? URLEncodedFormDecoder().decode(LoginForm.self, from: body))?.token ?? ""
        guard AdminGuard.constantTimeEqual(presented, token) else { return loginForm(failed: true) }
        var response = Response.redirect(to: "/")
        response.setCookie(DashboardSession(token: token).cookie)
        return response
    }

    func logout() -> Response {
        var response = Response.redirect(to: token == nil ? "/" : Self.loginPath)
        response.setCookie(DashboardSession.signedOut)
        return response
    }

    // MARK: rendering

    struct LoginPage { let failed: Bool }

    /// The templates ship as resources of this module (Sources/TollgateServer/Templates).
    static let templates: Result<MustacheLibrary, any Error> = Result {
        guard let folder = Bundle.module.url(forResource: "Templates", withExtension: nil) else {
            throw TemplateMissing(name: "Templates")
        }
        var library = MustacheLibrary()
        for name in ["head", "dashboard", "chart", "login"] {
            try library.register(String(contentsOf: folder.appendingPathComponent(name + ".mustache"), encoding: .utf8), named: name)
        }
        return library
    }

    struct TemplateMissing: Error, CustomStringConvertible {
        let name: String
        var description: String {
            "the dashboard template \(name) is missing: ship the tollgate_TollgateServer.resources folder beside the tollgate binary"
        }
    }

    static func render(_ context: Any, _ name: String) throws -> String {
        guard let text = try templates.get().render(context, withTemplate: name) else { throw TemplateMissing(name: name) }
        return text
    }

    /// No script may run (the page has none), nothing may frame it, and nothing is cached:
    /// a second line of defence should an escape ever be missed.
    static func html(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(status: status, headers: [
            .contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
            .contentSecurityPolicy: "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            .init("Referrer-Policy")!: "no-referrer", .init("X-Content-Type-Options")!: "nosniff",
        ], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func text(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(status: status, headers: [.contentType: "text/plain; charset=utf-8", .cacheControl: "no-store"],
                 body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
