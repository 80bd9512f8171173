import ArgumentParser
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import TollgateCore
import TollgateServer

@main
struct TollgateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tollgate",
        abstract: "A budget-enforcing proxy for OpenAI and Anthropic APIs.",
        subcommands: [Serve.self, CheckConfig.self, Version.self],
        defaultSubcommand: Serve.self)
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the proxy.")

    @Option(name: .long, help: "YAML config file (see deploy/tollgate.yaml). Without it, defaults plus TOLLGATE_* variables.")
    var config: String?

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let settings: TollgateConfig
        do { settings = try TollgateConfig.load(file: config, environment: environment) } catch let error as ConfigError {
            throw ConfigProblem(error: error)
        }
        var logger = Logger(label: "tollgate")
        logger.logLevel = Logger.Level(rawValue: settings.logLevel) ?? .info
        let tollgate = try Tollgate(config: settings, environment: environment, logger: logger)
        defer { tollgate.shutdown() }
        let group = ServiceGroup(
            configuration: .init(services: [tollgate.application()], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        logger.info("tollgate listening", metadata: ["address": "\(settings.server.host):\(settings.server.port)", "mode": "\(settings.budget.mode.rawValue)"])
        try await group.run()
    }
}

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check-config", abstract: "Validate a config file and exit.")
    @Argument(help: "YAML config file") var file: String

    func run() throws {
        do {
            let c = try TollgateConfig.load(file: file, environment: ProcessInfo.processInfo.environment)
            print("ok: \(file) (mode \(c.budget.mode.rawValue), redis \(c.redis.url), port \(c.server.port))")
        } catch let error as ConfigError {
            throw ConfigProblem(error: error)
        }
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version.")
    func run() { print("tollgate 0.1.0") }
}

/// Printed as "Error: config error at 'key': how to fix", without the usage text: the command
/// line was fine, the file was not.
struct ConfigProblem: Error, CustomStringConvertible {
    let error: ConfigError
    var description: String { error.description }
}
