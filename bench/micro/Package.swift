// swift-tools-version:6.1
// Micro-benchmarks of Tollgate's hot pure functions (request scan + estimate, SSE usage parsing,
// pricing), with allocation counts. A package of its own so that `swift test` of the root never
// builds ordo-one/benchmark. Run: `make bench-micro` (= `swift package benchmark` here).
import PackageDescription

let package = Package(
    name: "TollgateMicro",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Tollgate", path: "../.."),
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "TollgateHotPaths",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                // Needs a library product `TollgateCore` in the root Package.swift (see bench/README.md).
                .product(name: "TollgateCore", package: "Tollgate"),
            ],
            path: "Benchmarks/TollgateHotPaths",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]),
    ]
)
