import Crypto
import Hummingbird

/// The dashboard's sign-in cookie. Its value is HMAC-SHA256 keyed with the admin token over
/// "dashboard-session": the server keeps no session state, a copied cookie does not reveal the
/// token, and changing the token signs every browser out.
struct DashboardSession: Sendable {
    static let cookieName = "tollgate_admin"
    /// A browser forgets the sign-in after a working day.
    static let maxAgeSeconds = 12 * 3600
    let value: String

    init(token: String) {
        let mac = HMAC<SHA256>.authenticationCode(for: Array("dashboard-session".utf8), using: SymmetricKey(data: Array(token.utf8)))
        value = mac.map { byte in (byte < 16 ? "0" : "") + String(byte, radix: 16) }.joined()
    }

    func accepts(_ request: Request) -> Bool {
        guard let presented = request.cookies[Self.cookieName]?.value else { return false }
        return AdminGuard.constantTimeEqual(presented, value)
    }

    /// HttpOnly: page scripts cannot read it. SameSite=Strict: other sites cannot make the
    /// browser send it, so a signed-in operator's page cannot be driven from elsewhere.
    var cookie: Cookie {
        Cookie(name: Self.cookieName, value: value, maxAge: Self.maxAgeSeconds, path: "/", httpOnly: true, sameSite: .strict)
    }

    static var signedOut: Cookie {
        Cookie(name: cookieName, value: "", maxAge: 0, path: "/", httpOnly: true, sameSite: .strict)
    }
}

/// Who may use the admin listener. With an admin token: API calls need it as a bearer token;
/// dashboard pages take the token or the session cookie, and send a browser without either to
/// the sign-in form. Without a token (loopback-only mode) everything is open.
struct AdminGuard: RouterMiddleware {
    typealias Context = BasicRequestContext
    let token: String?
    let session: DashboardSession?

    init(token: String?) {
        self.token = token
        session = token.map(DashboardSession.init)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let token, let session, !Dashboard.isOpen(request) {
            let presented = request.headers[.authorization].flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil } ?? ""
            // The cookie opens pages only, never the JSON API, which scripts call with the token.
            let page = Dashboard.isPage(request)
            guard Self.constantTimeEqual(presented, token) || (page && session.accepts(request)) else {
                if page { return .redirect(to: Dashboard.loginPath) }
                return AdminAPI.error(.unauthorized, "unauthorized", "Send the admin token as Authorization: Bearer <token> (see admin.token_env).")
            }
        }
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound || error.status == .methodNotAllowed {
            return AdminAPI.error(.notFound, "not_found", "No admin endpoint \(request.method.rawValue) \(request.uri.path). See docs/admin-openapi.yaml.")
        }
    }

    /// Compares SHA-256 digests (fixed length, compared in constant time by swift-crypto), so
    /// neither the time nor an early exit on a length mismatch tells how long the token is.
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        SHA256.hash(data: Array(a.utf8)) == SHA256.hash(data: Array(b.utf8))
    }
}
