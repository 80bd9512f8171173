import TollgateCore

/// Which master serves each of the 16384 slots, as CLUSTER SLOTS reported it. Pure data, so it is
/// tested without a cluster.
struct RedisClusterMap: Sendable, Equatable {
    /// Distinct masters, in the order CLUSTER SLOTS listed them.
    private(set) var masters: [RedisAddress] = []
    /// Healthy replicas per master (CLUSTER SLOTS leaves failed ones out): how many a WAIT can ask for.
    private var replicaCounts: [Int] = []
    /// Index into `masters` per slot; -1: no master known.
    private var owners = [Int16](repeating: -1, count: RedisHashSlot.count)

    init() {}

    var isEmpty: Bool { masters.isEmpty }

    func master(of slot: Int) -> RedisAddress? {
        let i = owners[slot]
        return i < 0 ? nil : masters[Int(i)]
    }

    /// A MOVED reply: `slot` is now served by `address` (learned at once; a full refresh follows).
    mutating func move(_ slot: Int, to address: RedisAddress) {
        owners[slot] = Int16(index(of: address))
    }

    /// 0 for a master learned from MOVED alone, until the next refresh counts its replicas.
    func replicas(of address: RedisAddress) -> Int {
        masters.firstIndex(of: address).map { replicaCounts[$0] } ?? 0
    }

    private mutating func index(of address: RedisAddress) -> Int {
        if let i = masters.firstIndex(of: address) { return i }
        masters.append(address)
        replicaCounts.append(0)
        return masters.count - 1
    }

    /// CLUSTER SLOTS: `[[start, end, [host, port, id, …], replica…], …]`. A host of "" means the
    /// node that answered (Redis 7 `cluster-preferred-endpoint-type unknown-endpoint`). Nil when
    /// the reply does not have that shape.
    init?(clusterSlots reply: RedisReply, askedHost: String) {
        guard let ranges = reply.array else { return nil }
        for range in ranges {
            guard let parts = range.array, parts.count >= 3, let start = parts[0].int, let end = parts[1].int,
                  0 <= start, start <= end, end < RedisHashSlot.count,
                  let master = parts[2].array, master.count >= 2, let host = master[0].string, let port = master[1].int,
                  (1...65535).contains(port) else { return nil }
            let address = RedisAddress(host: host.isEmpty || host == "?" ? askedHost : host, port: Int(port))
            let i = Int16(index(of: address))
            replicaCounts[Int(i)] = max(replicaCounts[Int(i)], parts.count - 3)
            for slot in Int(start)...Int(end) { owners[slot] = i }
        }
    }
}

/// A cluster's answer that the command did not run here and where to send it instead.
enum RedisClusterRedirect: Equatable {
    /// The slot moved for good: remember the new owner.
    case moved(slot: Int, to: RedisAddress)
    /// The slot is migrating: send this one command to `to`, preceded by ASKING.
    case ask(slot: Int, to: RedisAddress)
    /// TRYAGAIN (a multi-key command during resharding) or CLUSTERDOWN (e.g. a master failed and
    /// its replica is not promoted yet): nothing ran; try again shortly.
    case retryLater

    /// `MOVED 3999 127.0.0.1:6381`; an empty host (`:6381`) means the node that answered.
    init?(_ message: String, askedHost: String) {
        if message.hasPrefix("TRYAGAIN") || message.hasPrefix("CLUSTERDOWN") {
            self = .retryLater
            return
        }
        let words = message.split(separator: " ")
        guard words.count == 3, ["MOVED", "ASK"].contains(words[0]), let slot = Int(words[1]), (0..<RedisHashSlot.count).contains(slot),
              var address = RedisAddress(String(words[2])) ?? (words[2].hasPrefix(":") ? RedisAddress(askedHost + words[2]) : nil) else { return nil }
        if address.host.isEmpty { address.host = askedHost }
        self = words[0] == "MOVED" ? .moved(slot: slot, to: address) : .ask(slot: slot, to: address)
    }
}
