import HTTPTypes
import TollgateCore
import TollgateRedis

/// Who is calling: the trusted `X-Client-ID` header, or a virtual key (`clients.auth: keys`).
struct ClientIdentity: Sendable {
    let clients: TollgateConfig.Clients
    let keys: VirtualKeyStore

    func identify(_ headers: HTTPFields) async throws -> ClientID {
        switch clients.auth {
        case .header:
            let header = clients.idHeader
            guard let raw = headers[HTTPField.Name(header)!] else {
                if clients.unknown == .default { return clients.defaultClient }
                throw ProxyError.missingClientID(header: header)
            }
            guard let id = ClientID(raw) else { throw ProxyError.invalidClientID(header: header) }
            return id
        case .keys:
            guard let secret = VirtualKey.presented(authorization: headers[.authorization], apiKey: headers[HTTPField.Name("x-api-key")!]),
                  !secret.isEmpty else { throw ProxyError.unauthorized(missing: true) }
            let client: ClientID?
            do { client = try await keys.client(forSecret: secret) } catch let error as RedisError { throw ProxyError.budgetUnavailable(error) }
            guard let client else { throw ProxyError.unauthorized(missing: false) }
            return client
        }
    }
}
