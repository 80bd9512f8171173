import Foundation
import TollgateFuzzChecks

/// The target this process fuzzes, chosen once by `--target=<name>` before the first input.
/// libFuzzer ignores flags that start with `--` and passes them on to the processes it forks.
var target = FuzzTarget.requestEstimate

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    let arguments = (0..<Int(argc.pointee)).compactMap { argv.pointee?[$0].map { String(cString: $0) } }
    let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
    guard let flag = arguments.first(where: { $0.hasPrefix("--target=") }),
          let chosen = FuzzTarget(rawValue: String(flag.dropFirst("--target=".count))) else {
        FileHandle.standardError.write(Data("usage: tollgate-fuzz --target=<\(names)> [libFuzzer flags] [corpus dirs]\n".utf8))
        exit(2)
    }
    target = chosen
    return 0
}

/// libFuzzer calls this once per input; `FuzzTarget` says what each target checks.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    target.run(data, size)
    return 0
}
