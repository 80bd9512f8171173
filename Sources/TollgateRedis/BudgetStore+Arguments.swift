import Foundation
import Synchronization
import TollgateCore

/// The keys and arguments of reserve_v5, settle_v5 and apply_v6, in the order their contract
/// headers (lua/reserve_v5.lua, lua/settle_v5.lua, lua/apply_v6.lua) list them. Every argument
/// costs Redis about as much as an HGET's worth of parsing, so config only a rare path needs
/// travels packed in one.
extension BudgetStore {
    package struct ScriptCall: Sendable {
        package var keys: [String]
        package var args: [String]
    }

    package func reserveCall(_ client: ClientID, _ reservation: ReservationID, estimate: CostEstimate, options: ReserveOptions) -> ScriptCall {
        let period = periodCall(client)
        // Appended one by one into room made once (literals and `+=` of arrays made 4 arrays).
        var args: [String] = []
        args.reserveCapacity(12 + period.args.count)
        args.append(reservation.rawValue)
        args.append(String(estimate.fixedCost.value))
        args.append(String(estimate.perOutputToken.value))
        args.append(String(estimate.requestedOutputTokens))
        args.append(String(estimate.minimumOutputTokens))
        args.append(options.model)
        args.append(options.fingerprint ?? "")
        args.append(contentsOf: period.args)
        args.append(options.run?.id ?? "")
        args.append(capsArgument(options))
        args.append(policy.clientDefaults.downgrade?.models[options.model] ?? "")
        if let fallback = options.fallback {
            let e = fallback.estimate
            args.append(fallback.model)
            args.append("\(e.fixedCost.value) \(e.perOutputToken.value) \(e.requestedOutputTokens) \(e.minimumOutputTokens)")
        } else {
            args.append("")
            args.append("")
        }
        return ScriptCall(keys: period.keys, args: args)
    }

    /// reserve_v5's KEYS and its ARGV[8…19]: the period the replica expects for now and the
    /// config every reserve of this replica shares (apply_v6's KEYS and ARGV[1…12]).
    func periodCall(_ client: ClientID, _ shared: PeriodArguments? = nil) -> ScriptCall {
        let keys = RedisKeys(client)
        let shared = shared ?? periodArguments()
        return ScriptCall(keys: [keys.limits, keys.leases, keys.day(shared.period.day), keys.month(String(shared.period.month))],
                          args: shared.args)
    }

    /// The arguments every call shares while the period lasts: made again only when the
    /// replica's clock leaves the period they were made for, or passes the timezone's next
    /// change (asking the timezone and formatting them was ~2 % of Tollgate's CPU per request).
    /// Tests that move the clock or the offset get fresh ones (a new policy, a new cache).
    func periodArguments() -> PeriodArguments {
        let now = policy.replicaClock()
        // The period for the replica's clock, moved like Redis TIME by the test offset; the
        // script checks it against TIME and derives its own when they disagree.
        let at = UnixTime(seconds: now.seconds + policy.clockOffsetSeconds)
        if let cached = periodCache.current(at: at, now: now) { return cached }
        let zone = policy.timezone()
        let period = zone.period(at: at)
        let defaults = policy.clientDefaults
        let loop = defaults.loopBreaker
        let thresholds = thresholdsArgument
        var args = [String(period.validFrom.seconds), String(period.validUntil.seconds), String(period.dayEnd.seconds),
                    String(period.monthEnd.seconds), String(policy.clockOffsetSeconds)]
        args += [String(policy.defaultDailyLimit.value), String(policy.defaultMonthlyLimit.value),
                 String(policy.leaseSeconds * 1000), String(policy.reapedRetentionSeconds)]
        args += [String(loop?.maxRepeats ?? 0), String(defaults.downgrade?.atPercent ?? 0)]
        let settings: [String] = [String(zone.current), String(zone.nextChange.seconds), String(zone.after),
                                  String(policy.dayGraceSeconds), String(policy.monthGraceSeconds), String(loop?.windowSeconds ?? 60),
                                  String(defaults.runTTLSeconds), String(policy.outboxMaxLength), defaults.onLimit.rawValue, thresholds]
        args.append(settings.joined(separator: " "))
        let made = PeriodArguments(zone: zone, period: period, args: args,
                                   alertDefaults: "\(policy.defaultDailyLimit.value) \(policy.defaultMonthlyLimit.value) \(policy.outboxMaxLength) \(thresholds)")
        periodCache.keep(made)
        return made
    }

    /// '' when the request brings no budget header and no run (nearly always); else its caps and
    /// the default run limit, '-' for none.
    private func capsArgument(_ options: ReserveOptions) -> String {
        guard options.dailyCap != nil || options.monthlyCap != nil || options.run != nil else { return "" }
        func text(_ v: NanoUSD?) -> String { v.map { String($0.value) } ?? "-" }
        return [text(options.dailyCap), text(options.monthlyCap), text(options.run?.cap), text(policy.clientDefaults.runLimit)]
            .joined(separator: " ")
    }

    package func settleCall(_ client: ClientID, _ lease: Lease, actual: NanoUSD, model: String) -> ScriptCall {
        ScriptCall(keys: [RedisKeys(client).leases], args: [lease.member, String(max(0, actual.value)), model, alertDefaults])
    }

    /// settle_v5's ARGV[4], apply_v6's ARGV[13]: read by the scripts only when an alert may be due.
    var alertDefaults: String { periodArguments().alertDefaults }

    /// One apply_v6 call for operations of one client, in order (lua/apply_v6.lua's contract):
    /// each operation is its v5 call's arguments, tagged; a reserve without a loop fingerprint,
    /// run, caps or downgrade ('r', nearly all) leaves those out.
    package func applyCall(_ client: ClientID, _ operations: [BudgetOperation]) -> ScriptCall {
        let shared = periodArguments()
        let period = periodCall(client, shared)
        var args = period.args + [shared.alertDefaults]
        for operation in operations {
            switch operation {
            case .reserve(let call):
                let a = call.args
                if a[6].isEmpty && a[19...].allSatisfy(\.isEmpty) {
                    args.append("r")
                    args += a[0..<6]
                } else {
                    args.append("R")
                    args += a[0..<7]
                    args += a[19..<24]
                }
            case .settle(let call):
                args.append("S")
                args += call.args[0..<3]
            }
        }
        return ScriptCall(keys: period.keys, args: args)
    }

    /// Clients without their own `alerts` field get these; '' when the default is none.
    var thresholdsArgument: String { policy.clientDefaults.alertThresholds.map(String.init).joined(separator: ",") }
}

/// `BudgetStore.periodArguments`: what every call shares for one period, and when it was made for.
struct PeriodArguments: Sendable {
    let zone: TimezoneSchedule
    let period: CalendarPeriod
    /// reserve_v5's ARGV[8…19] (apply_v6's ARGV[1…12]).
    let args: [String]
    /// settle_v5's ARGV[4] (apply_v6's ARGV[13]).
    let alertDefaults: String
}

/// The last `PeriodArguments`, shared by every event loop of a replica (one lock per call).
final class PeriodArgumentsCache: Sendable {
    private let last = Mutex<PeriodArguments?>(nil)

    /// The kept arguments while `at` is in their period and the replica's clock is before the
    /// timezone's next change (after it, the timezone is asked again).
    func current(at: UnixTime, now: UnixTime) -> PeriodArguments? {
        last.withLock { kept in
            guard let kept, kept.period.validFrom <= at, at < kept.period.validUntil, now < kept.zone.nextChange else { return nil }
            return kept
        }
    }

    func keep(_ arguments: PeriodArguments) { last.withLock { $0 = arguments } }
}
