// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Tollgate",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tollgate", targets: ["tollgate"]),
        .executable(name: "tollgate-mock-provider", targets: ["tollgate-mock-provider"]),
        .executable(name: "tollgate-floor", targets: ["tollgate-floor"]),
        // For bench/micro (ordo-one/benchmark), a package of its own that measures the pure core.
        .library(name: "TollgateCore", targets: ["TollgateCore"]),
        // For fuzz/ (libFuzzer targets), a package of its own built with -sanitize=fuzzer.
        .library(name: "TollgateFuzzChecks", targets: ["TollgateFuzzChecks"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        // NIOHTTPTypesHTTP1: the HTTP/1 ↔ HTTPTypes codec of the proxy listener's lean handler.
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
    ],
    targets: [
        // C libraries behind tiny shim modules.
        .systemLibrary(
            name: "CHiredis", pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(
            name: "CCurl", pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]),

        // No I/O: money, pricing, estimation, request scanning, usage + SSE parsing, config model.
        .target(
            name: "TollgateCore",
            dependencies: [.product(name: "Yams", package: "Yams"), .product(name: "Crypto", package: "swift-crypto")],
            resources: [.copy("Resources/pricing.yaml")]),
        .target(
            name: "TollgateRedis",
            dependencies: [
                "CHiredis", "TollgateCore", .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"), .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .target(
            name: "TollgateUpstream",
            dependencies: [
                "CCurl", "TollgateCore", .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                // NIOAsyncSequenceProducer: the bounded, back-pressured buffer between curl and a transfer's reader.
                .product(name: "NIOCore", package: "swift-nio"),
                // NIOThreadPool: the blocking SMTP transfer of e-mail alerts runs there, off every event loop.
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),
        .target(
            name: "TollgateServer",
            dependencies: [
                "TollgateCore", "TollgateRedis", "TollgateUpstream",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            // The dashboard's HTML templates (Dashboard.swift), read through Bundle.module.
            resources: [.copy("Templates")]),
        .target(
            name: "TollgateMockProvider",
            dependencies: [
                "TollgateCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        .executableTarget(
            name: "tollgate",
            dependencies: [
                "TollgateServer", "TollgateCore", "TollgateRedis",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),
        // The floor of Tollgate's parts (NIO's HTTP server + the curl thread, or loops of our own; nothing else), for bench/floor.sh.
        .executableTarget(
            name: "tollgate-floor",
            dependencies: [
                "TollgateUpstream", "TollgateRedis", "TollgateCore", "CCurl", "CHiredis", .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),
        .executableTarget(
            name: "tollgate-mock-provider",
            dependencies: [
                "TollgateMockProvider",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ]),
        // The invariants each fuzz target checks, as plain functions: fuzz/ calls them from
        // libFuzzer, and TollgateCoreTests runs them over the seed corpus without the fuzzer build.
        .target(
            name: "TollgateFuzzChecks",
            dependencies: ["TollgateCore", "TollgateRedis", .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(name: "TollgateCoreTests", dependencies: ["TollgateCore", "TollgateFuzzChecks", "TollgateRedis", .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(
            name: "TollgateIntegrationTests",
            dependencies: [
                "TollgateCore", "TollgateRedis", "TollgateUpstream", "TollgateServer", "TollgateMockProvider",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
    ]
)
