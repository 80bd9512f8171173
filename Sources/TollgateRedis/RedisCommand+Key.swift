extension RedisCommand {
    /// The key that decides which cluster node runs the command; nil for commands without keys
    /// (any master can answer those). Tollgate sends no multi-key command across clients: each
    /// script's keys share the client's `{C}` hash tag, so its first key names the slot.
    var routingKey: String? {
        switch self {
        case .script(_, let keys, _): return keys.first
        case .command(let args):
            guard let name = args.first?.uppercased(), args.count > 1 else { return nil }
            switch name {
            case "PING", "TIME", "SCAN", "INFO", "SCRIPT", "CLUSTER", "ROLE", "ASKING", "WAIT", "SENTINEL", "AUTH", "SELECT", "HELLO":
                return nil
            case "EVALSHA", "EVAL":
                // EVALSHA sha numkeys key…
                guard args.count > 3, let n = Int(args[2]), n > 0 else { return nil }
                return args[3]
            case "XGROUP": return args.count > 2 ? args[2] : nil
            case "XREADGROUP", "XREAD":
                guard let streams = args.firstIndex(where: { $0.uppercased() == "STREAMS" }), streams + 1 < args.count else { return nil }
                return args[streams + 1]
            default: return args[1]
            }
        }
    }

    var isScript: Bool {
        if case .script = self { return true }
        return false
    }
}
