import Foundation
import Synchronization

/// A Lua script from `lua/`, loaded with SCRIPT LOAD and run with EVALSHA.
public struct RedisScript: Sendable, Hashable {
    public let name: String
    public let source: String

    public init(name: String, source: String) {
        self.name = name
        self.source = source
    }

    /// Where `lua/` is looked for, first match wins: `$TOLLGATE_LUA_DIR`, `lua/` beside the
    /// executable (container images), the repository the binary was built in (`.build/*/`), and
    /// the source tree this file was compiled from (tests).
    static var searchPath: [URL] {
        let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().deletingLastPathComponent()
        var dirs: [URL] = []
        if let env = ProcessInfo.processInfo.environment["TOLLGATE_LUA_DIR"] { dirs.append(URL(fileURLWithPath: env)) }
        dirs.append(exe.appendingPathComponent("lua"))
        dirs.append(exe.appendingPathComponent("../../../lua").standardized)
        dirs.append(URL(fileURLWithPath: #filePath).appendingPathComponent("../../../lua").standardized)
        return dirs
    }

    public static func bundled(_ name: String) throws -> RedisScript {
        for dir in searchPath {
            let url = dir.appendingPathComponent(name + ".lua")
            if let source = try? String(contentsOf: url, encoding: .utf8) { return RedisScript(name: name, source: source) }
        }
        throw RedisError.unavailable("lua/\(name).lua not found in \(searchPath.map(\.path)); set TOLLGATE_LUA_DIR to the repository's lua/ folder")
    }

}

/// The budget scripts, one per step of a request's life, and the one that runs a tick's
/// reserves and settles of one client together.
public struct BudgetScripts: Sendable {
    public let reserve: RedisScript
    public let settle: RedisScript
    public let renew: RedisScript
    /// Several operations of one client in one call (lua/apply_v6.lua); nil: each goes alone.
    public var apply: RedisScript? = nil
    public var all: [RedisScript] { [reserve, settle, renew] + (apply.map { [$0] } ?? []) }

    public static func load() throws -> BudgetScripts {
        // renew_v2: its contract did not change since (lua/reserve_v4.lua says why the others did).
        // v5 decides and charges as v4 at less Redis CPU (lua/reserve_v5.lua); apply_v6 decides
        // each of its operations as v5 does, sharing what one call can share.
        BudgetScripts(reserve: try .bundled("reserve_v5"), settle: try .bundled("settle_v5"), renew: try .bundled("renew_v2"),
                      apply: try .bundled("apply_v6"))
    }
}

/// One command for the connection thread. Scripts are named, not hashed: the thread fills in
/// the SHA it got from SCRIPT LOAD and reloads on NOSCRIPT.
public enum RedisCommand: Sendable {
    case command([String])
    case script(RedisScript, keys: [String], args: [String])
}
