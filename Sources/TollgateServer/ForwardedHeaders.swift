import HTTPTypes
import TollgateCore
import TollgateUpstream

/// Which headers cross Tollgate, in each direction.
enum ForwardedHeaders {
    /// Hop-by-hop or recomputed by curl. `accept-encoding` is dropped so the provider answers
    /// uncompressed: Tollgate must read `usage` out of the body.
    static let requestSkip: Set<String> = [
        "host", "content-length", "connection", "keep-alive", "transfer-encoding", "te", "upgrade",
        "expect", "accept-encoding", "proxy-connection", "proxy-authorization",
    ]
    static let responseSkip: Set<String> = ["connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"]

    /// The client's headers minus the identity header and hop-by-hop ones; the provider key
    /// replaces the client's credentials when one is configured.
    /// `strip`: Tollgate's own request headers (the budget headers), lowercased.
    static func upstream(from fields: HTTPFields, idHeader: String, family: APIFamily, providerKey: String?,
                         dropClientCredentials: Bool = false, strip: Set<String> = []) -> [(name: String, value: String)] {
        let id = idHeader.lowercased()
        var out: [(name: String, value: String)] = []
        for field in fields {
            let name = field.name.canonicalName
            if name == id || requestSkip.contains(name) || strip.contains(name) { continue }
            if providerKey != nil || dropClientCredentials, name == "authorization" || name == "x-api-key" { continue }
            out.append((field.name.rawName, field.value))
        }
        if let key = providerKey {
            out.append(family == .anthropic ? ("x-api-key", key) : ("Authorization", "Bearer \(key)"))
        }
        return out
    }

    static func client(from head: UpstreamResponseHead, adding extra: [(HTTPField.Name, String)] = []) -> HTTPFields {
        let passed = head.headers.filter { !responseSkip.contains($0.name.lowercased()) }
        var fields = HTTPFields()
        // Sized once: a stream's response head is held while the stream is open.
        fields.reserveCapacity(passed.count + extra.count)
        for (name, value) in passed {
            if let n = HTTPField.Name(name) { fields.append(HTTPField(name: n, value: value)) }
        }
        for (name, value) in extra { fields[name] = value }
        return fields
    }

    /// The binding limit after this request; `X-Budget-Exceeded` when `on_limit: warn` let it
    /// through, `X-Budget-Downgraded-From` when the policy moved it to a cheaper model.
    static func budget(_ grant: BudgetGrant, requestedModel: String) -> [(HTTPField.Name, String)] {
        var fields: [(HTTPField.Name, String)] = [(.budgetLimit, grant.limit.usdString), (.budgetRemaining, max(.zero, grant.remaining).usdString)]
        if let resets = grant.resetsAt { fields.append((.budgetResetsAt, resets.rfc3339)) }
        if grant.overLimit { fields += [(.budgetExceeded, "true"), (.budgetOnLimit, "warn")] }
        if grant.downgradedTo != nil { fields.append((.budgetDowngradedFrom, requestedModel)) }
        return fields
    }
}

extension HTTPField.Name {
    static let budgetLimit = HTTPField.Name("X-Budget-Limit-USD")!
    static let budgetRemaining = HTTPField.Name("X-Budget-Remaining-USD")!
    static let budgetResetsAt = HTTPField.Name("X-Budget-Resets-At")!
    static let budgetExceeded = HTTPField.Name("X-Budget-Exceeded")!
    /// Which on-limit mode acted: `warn` or `stop`.
    static let budgetOnLimit = HTTPField.Name("X-Budget-On-Limit")!
    static let budgetDowngradedFrom = HTTPField.Name("X-Budget-Downgraded-From")!
    static let anthropicBeta = HTTPField.Name("anthropic-beta")!
}

extension BudgetHeaderNames {
    /// Each configured name as an `HTTPField.Name`, made once (`BudgetHeaderCaps.init`).
    var fields: [String: HTTPField.Name] {
        Dictionary(all.compactMap { name in HTTPField.Name(name).map { (name, $0) } }, uniquingKeysWith: { a, _ in a })
    }
}

extension BudgetHeaderCaps {
    /// A request's budget headers (`clients.budget_headers`); a malformed one is a 400 that shows
    /// a valid value. A repeated header arrives joined with ", ", which the parser refuses.
    /// `fields`: the names already made as `HTTPField.Name`s (making one lowercases and checks
    /// it, a new string per name per request); a name not among them is made here.
    init(_ headers: HTTPFields, names: BudgetHeaderNames, fields: [String: HTTPField.Name] = [:]) throws(ProxyError) {
        do {
            try self.init(names: names) { name in
                (fields[name] ?? HTTPField.Name(name)).flatMap { headers[values: $0].isEmpty ? nil : headers[values: $0].joined(separator: ", ") }
            }
        } catch {
            throw ProxyError.badRequest(.invalidHeader(error.header, error.message))
        }
    }
}
