import NIOCore
import TollgateCore
import TollgateRedis

/// Tollgate's budget calls and nothing around them, for the floor's `budget` modes: a request
/// reserves before it goes upstream and settles once its answer is written, with the real
/// scripts on Tollgate's Redis link, in one of two shapes:
/// - `.batched`, as `BudgetTick` sends them: the reserves and settles that reach one event loop in
///   one tick go as one apply_v6 call (one alone as its v5 script); while a client's call is in
///   flight its next operations queue and go together when it returns; a settle waits up to 2 ms
///   for the client's next reserve to take it along. (BudgetTick's group commit spans all loops;
///   this one spans one.)
/// - `.alone`: each reserve and settle is its own v5 call, sent at once, the settle as soon as the
///   answer is written: the shape in which a lone request waits least (only for its reserve),
///   at more Redis work per request under load.
/// No estimate: every request reserves the same, what the bench's chat request would.
///
/// One per event loop, used only on it: the handler's calls and the replies come on that loop.
final class FloorBudget {
    private let store: BudgetStore
    private let loop: any EventLoop
    private struct Pending {
        let client: ClientID
        let operation: BudgetOperation
        let done: (RedisReply?) -> Void
    }
    private var pending: [Pending] = []
    /// Clients with a call in flight from this loop, and the operations queued behind it.
    private var inFlight: [ClientID: [Pending]] = [:]
    /// Settles waiting for a reserve to ride with, and which window they wait in.
    private var parked: [Pending] = []
    private var window = 0
    static let settleWindow = TimeAmount.milliseconds(2)

    /// gpt-4o-mini's prices for the bench request: ~600 input tokens, max_tokens 256.
    static let estimate = CostEstimate(inputTokenBound: 600, fixedCost: NanoUSD(90_000), perOutputToken: NanoUSD(600),
                                       requestedOutputTokens: 256, minimumOutputTokens: 1)
    static let actual = NanoUSD(120_000)
    static let model = "gpt-4o-mini"

    enum Shape {
        case batched, alone
    }
    private let shape: Shape

    init(store: BudgetStore, loop: any EventLoop, shape: Shape) {
        self.store = store
        self.shape = shape
        self.loop = loop
    }

    /// What a reserve came to.
    enum Grant {
        case lease(Lease)
        case refused
        /// Redis failed or answered something the parser did not take.
        case failed
    }

    func reserve(_ client: ClientID, then granted: @escaping (Grant) -> Void) {
        let reservation = ReservationID.unique()
        let call = store.reserveCall(client, reservation, estimate: Self.estimate, options: ReserveOptions(model: Self.model))
        // The client's parked settles go first, so the reserve sees what they give back.
        let riding = parked.filter { $0.client == client }
        if !riding.isEmpty {
            parked.removeAll { $0.client == client }
            riding.forEach(add)
        }
        add(Pending(client: client, operation: .reserve(call)) { [store] reply in
            switch reply.flatMap({ try? store.reserveOutcome($0, client, reservation) }) {
            case .granted(let grant)?: granted(.lease(grant.lease))
            case nil: granted(.failed)
            default: granted(.refused)
            }
        })
    }

    func settle(_ client: ClientID, _ lease: Lease) {
        let call = store.settleCall(client, lease, actual: Self.actual, model: Self.model)
        let entry = Pending(client: client, operation: .settle(call)) { [store] reply in
            if let reply { _ = try? store.settleOutcome(reply, client, lease) }
        }
        guard shape == .batched else { return add(entry) }
        if parked.isEmpty {
            window &+= 1
            let (me, mine) = (NIOLoopBound(self, eventLoop: loop), window)
            loop.scheduleTask(in: Self.settleWindow) { me.value.windowEnded(mine) }
        }
        parked.append(entry)
    }

    /// Settles no reserve took go on their own.
    private func windowEnded(_ ended: Int) {
        guard ended == window else { return }
        let unclaimed = parked
        parked.removeAll()
        unclaimed.forEach(add)
    }

    /// The first operation of a tick sends them all once the tasks already queued on the loop ran.
    private func add(_ entry: Pending) {
        guard shape == .batched else { return send(entry.client, [entry]) }
        if pending.isEmpty {
            let me = NIOLoopBound(self, eventLoop: loop)
            loop.execute { me.value.flush() }
        }
        pending.append(entry)
    }

    /// One call per client (an apply_v6 call's keys are one client's), in the order they came.
    private func flush() {
        let batch = pending
        pending.removeAll(keepingCapacity: true)
        var clients: [ClientID] = []
        var byClient: [ClientID: [Pending]] = [:]
        for entry in batch {
            if byClient[entry.client] == nil { clients.append(entry.client) }
            byClient[entry.client, default: []].append(entry)
        }
        for client in clients {
            if inFlight[client] != nil {
                inFlight[client]!.append(contentsOf: byClient[client]!)
            } else {
                inFlight[client] = []
                send(client, byClient[client]!)
            }
        }
    }

    private func send(_ client: ClientID, _ entries: [Pending]) {
        let command: RedisCommand
        if entries.count == 1 {
            switch entries[0].operation {
            case .reserve(let call): command = .script(store.scripts.reserve, keys: call.keys, args: call.args)
            case .settle(let call): command = .script(store.scripts.settle, keys: call.keys, args: call.args)
            }
        } else {
            let call = store.applyCall(client, entries.map(\.operation))
            command = .script(store.scripts.apply!, keys: call.keys, args: call.args)
        }
        let replies = NIOLoopBound((self, entries.map(\.done)), eventLoop: loop)
        store.redis.send(command) { result in
            let (me, dones) = replies.value
            if me.shape == .batched { me.sendQueued(client) }
            guard case .success(let reply) = result else { return dones.forEach { $0(nil) } }
            guard dones.count > 1 else { return dones[0](reply) }
            guard let parts = reply.array, parts.count == dones.count else { return dones.forEach { $0(nil) } }
            for (done, part) in zip(dones, parts) { done(part) }
        }
    }

    /// The client's call returned: what queued behind it goes now, as one call.
    private func sendQueued(_ client: ClientID) {
        guard let queued = inFlight[client], !queued.isEmpty else {
            inFlight[client] = nil
            return
        }
        inFlight[client] = []
        send(client, queued)
    }
}
