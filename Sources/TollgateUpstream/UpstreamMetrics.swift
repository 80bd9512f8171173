import Metrics

/// The upstream side's metric names (README and docs/operations.md list them). Declared here
/// because the curl layer is where these bounds are enforced.
public enum UpstreamMetrics {
    /// Gauge: body bytes received from providers and not yet taken by the relay, all transfers.
    public static let bufferedBytes = "tollgate_upstream_buffered_bytes"
    /// Counter: transfers paused because their reader fell behind (`CURL_WRITEFUNC_PAUSE`).
    public static let pauses = "tollgate_upstream_pauses_total"
    /// Counter by `limit`: answers cut or refused by a bound (`UpstreamLimit`).
    public static let limitExceeded = "tollgate_upstream_limit_exceeded_total"

    static let pauseCounter = Counter(label: pauses)

    /// Counts one answer stopped by `limit`.
    public static func exceeded(_ limit: UpstreamLimit) {
        Counter(label: limitExceeded, dimensions: [("limit", limit.rawValue)]).increment()
    }
}
