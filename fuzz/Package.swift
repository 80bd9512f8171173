// swift-tools-version:5.4
// libFuzzer targets for Tollgate (see fuzz/README.md; run them with `make fuzz`). A package of its
// own, built with `-sanitize=fuzzer,address` into .build/fuzz, so the normal build never pays for
// the instrumentation. Each target is a one-line entry point into TollgateFuzzChecks, where the
// invariants live (TollgateCoreTests runs those over fuzz/corpus/ without the fuzzer build).
//
// Tools version 5.4 on purpose: from 5.5 on, SwiftPM links every executable with
// `--defsym main=<Target>_main` (so tests can link it), which leaves no room for libFuzzer's own
// `main`. With 5.4 the libFuzzer runtime's `main` drives `LLVMFuzzerTestOneInput` in
// Sources/tollgate-fuzz.
import PackageDescription

let package = Package(
    name: "TollgateFuzz",
    dependencies: [.package(name: "Tollgate", path: "..")],
    targets: [
        // One binary for all targets (one instrumented link instead of four): `--target=<name>`.
        .executableTarget(
            name: "tollgate-fuzz",
            dependencies: [.product(name: "TollgateFuzzChecks", package: "Tollgate")],
            // No top-level code: libFuzzer's runtime provides `main`.
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
    ]
)
