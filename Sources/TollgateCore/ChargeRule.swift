/// What a finished request is charged: the one rule for every way a request can end.
///
/// The principle (README, "Overshoot guarantee"): when the true cost is unknown, charge the
/// tightest amount that is provably at least what the provider bills. A provider bills what it
/// generated, whether or not the answer reached Tollgate, so an answer that was cut or that
/// carries no usage is never charged less than a bound on what it could have cost.
public enum ChargeRule {
    /// - Parameters:
    ///   - reserved: what the reserve script granted. In strict mode it is an upper bound on the
    ///     bill, because the reply cap written into the request is the one it was priced with.
    public static func charge(_ ending: UpstreamEnding, price: ModelPrice, reserved: NanoUSD, strict: Bool) -> Charge {
        switch ending {
        case .notSent:
            return Charge(cost: .zero, basis: .nothing)
        case .answered(let status, let usage):
            // Providers do not bill requests they answer with an error.
            guard (200..<300).contains(status) else { return Charge(cost: .zero, basis: .nothing) }
            // A success without usage (`background: true`, a provider bug) was or will be billed.
            guard let usage else { return Charge(cost: reserved, basis: .reservation) }
            return Charge(cost: price.cost(of: usage), basis: .usage)
        case .cut(let bound):
            guard let bound else { return Charge(cost: reserved, basis: .reservation) }
            let cost = price.cost(of: bound)
            // In strict mode the reservation is itself a bound: keep the tighter of the two.
            if strict, cost >= reserved { return Charge(cost: reserved, basis: .reservation) }
            return Charge(cost: cost, basis: .bound)
        }
    }
}

/// How a forwarded request ended, as far as the bill is concerned.
public enum UpstreamEnding: Sendable, Equatable {
    /// The provider's whole answer arrived, with this status and the usage it reported (nil: none).
    case answered(status: Int, usage: TokenUsage?)
    /// Nothing reached the provider (the connection was never made): nothing can have been billed.
    case notSent
    /// The request reached the provider but its answer was cut: timeout, reset, client gone, or a
    /// stream that ended before its usage. `bound`: a provable usage bound when one exists (nil:
    /// none below the reservation).
    case cut(bound: TokenUsage?)
}

/// A charge and how it was decided; the access log's `charged` field, so operators and tests can
/// tell a reported usage from a bound.
public struct Charge: Sendable, Equatable {
    public var cost: NanoUSD
    public var basis: ChargeBasis

    public init(cost: NanoUSD, basis: ChargeBasis) {
        self.cost = cost
        self.basis = basis
    }
}

public enum ChargeBasis: String, Sendable {
    /// Priced from the usage the provider reported.
    case usage
    /// Nothing was billed: never sent, or answered with an error.
    case nothing
    /// Usage unknown; a provable bound below the reservation (e.g. a cut stream of a model
    /// without hidden reasoning: input bound + one token per streamed byte).
    case bound
    /// Usage unknown and no tighter bound: the whole reservation.
    case reservation
}

/// A forwarded request's prices and reservation, carried to wherever it ends.
public struct Bill: Sendable {
    public let price: ModelPrice
    public let reserved: NanoUSD
    public let strict: Bool

    public init(price: ModelPrice, reserved: NanoUSD, strict: Bool) {
        self.price = price
        self.reserved = reserved
        self.strict = strict
    }

    public func charge(_ ending: UpstreamEnding) -> Charge {
        ChargeRule.charge(ending, price: price, reserved: reserved, strict: strict)
    }
}
