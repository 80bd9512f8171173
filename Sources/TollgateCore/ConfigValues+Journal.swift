/// `redis.journal.*`: where this replica keeps the settles Redis could not take (the settle
/// journal, docs/operations.md "Redis outages").
extension TollgateConfig.Redis {
    public struct Journal: Sendable {
        /// The directory of this replica's journal file; nil (the default): no journal, and a
        /// settle Redis cannot take is retried in memory only. Not defaulted to a path under the
        /// working directory: every shipped deployment runs with a read-only one, and replicas
        /// started from one directory would share it. It must be a volume that outlives the
        /// process (the journal's point is the crash), one per replica.
        public var directory: String?
        /// The journal's bound; a settle that would pass it is retried in memory instead.
        public var maxBytes = 64 << 20
        public init() {}
    }
}

extension ConfigValues {
    static let journalKeys: Set<String> = ["redis.journal", "redis.journal.dir", "redis.journal.max_bytes"]

    func journal() throws -> TollgateConfig.Redis.Journal {
        var j = TollgateConfig.Redis.Journal()
        if let dir = string("redis.journal.dir") {
            guard !dir.isEmpty, !dir.contains("\0") else {
                throw fail("redis.journal.dir", "must be a directory path such as /var/lib/tollgate/journal, or left out for no journal")
            }
            j.directory = dir
        }
        j.maxBytes = try int("redis.journal.max_bytes", in: 65_536...(1 << 40), "bytes ") ?? j.maxBytes
        return j
    }
}
