// TEMPORARY until the sinks branch merges (it defines these in TollgateUpstream).
import TollgateCore
public protocol AlertSink: Sendable {
    var name: String { get }
    func deliver(_ alert: BudgetAlert) async throws
}
public struct AlertDeliveryError: Error, Sendable {
    public var isRetriable: Bool
    public var message: String
}
