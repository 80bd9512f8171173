import Testing

/// Suites that load the machine (a six-node Redis Cluster, Sentinel failovers, 30 MB bodies, a
/// 50 MB stream, Redis killed under load) or read the test process's memory. They run one at a
/// time, so neither their timing nor their RSS readings depend on one another; the light
/// suites still run beside them.
@Suite(.serialized) enum HeavySuites {}
