import TollgateCore

/// Target `config`: the bytes as a config file. `tollgate serve` and `check-config` refuse a
/// file that is not UTF-8 before parsing, so only UTF-8 text reaches the parser. Invariant: a
/// `TollgateConfig` or a `ConfigError` (which names the key and says how to fix it), never
/// another error and never a crash.
enum ConfigCheck {
    static func check(_ bytes: [UInt8]) throws(InvariantViolation) {
        guard let yaml = String(validating: bytes, as: UTF8.self) else { return }
        do {
            _ = try TollgateConfig.load(yaml: yaml, environment: [:])
        } catch let error as ConfigError {
            try expect(!error.description.isEmpty, "an empty ConfigError")
        } catch {
            throw InvariantViolation("not a ConfigError: \(type(of: error)): \(error)")
        }
    }
}
