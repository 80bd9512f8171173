import CCurl
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import TollgateCore
import TollgateRedis
import TollgateUpstream

/// The floor of Tollgate's parts (issue 13): a proxy built of what Tollgate is built of — NIO's
/// HTTP/1 server and codec, one lean handler driven by NIO's callbacks (no task, no continuation,
/// no async sequence per request), and Tollgate's curl thread (`UpstreamClient.collect`) — and of
/// nothing else: no identity, no estimate, no usage, no log, no metrics. Given a Redis URL, each
/// request first makes one round trip to Redis on Tollgate's link (a `PING`: less than any budget
/// check can cost). What it costs per request on a box is what no rearrangement of Tollgate's own
/// code can go below while those parts stay. `bench/floor.sh` runs it beside nginx's `proxy_pass`
/// and Tollgate. `own-loop` serves the same with no NIO event loop and no curl thread: one loop
/// per core owns the client sockets, curl's and Redis's (`OwnLoop`, issue 13's item 3). `budget`
/// puts Tollgate's reserve and settle scripts in place of the PING, batched as Tollgate batches
/// them; `budget-alone` sends each as its own call (`FloorBudget`).
///
///     tollgate-floor [own-loop | budget | budget-alone] <port> <upstream base URL> [redis URL]
@main
enum FloorProxy {
    /// What the command line asks for; nil (after saying why) when it cannot be served.
    struct Arguments {
        var ownLoop: Bool
        /// Reserve and settle with the real scripts instead of a PING, in this shape.
        var budget: FloorBudget.Shape?
        var port: Int
        var upstream: String
        var redis: RedisEndpoint?

        init?(_ words: [String]) {
            var words = words
            ownLoop = words.first == "own-loop"
            budget = ["budget": .batched, "budget-alone": .alone][words.first ?? ""]
            if ownLoop || budget != nil { words.removeFirst() }
            guard (2...3).contains(words.count), let port = Int(words[0]), (1...65_535).contains(port) else { return nil }
            self.port = port
            upstream = words[1]
            guard words.count == 3 else {
                if budget != nil { FloorProxy.fail("the budget modes need a Redis URL") }
                return
            }
            // A Redis URL that does not parse must not quietly measure the floor without its PING.
            guard let redis = RedisEndpoint(url: words[2]) else {
                FloorProxy.fail("\(words[2]) is not a Redis URL (redis://host:port/db)")
            }
            guard !ownLoop || redis.host == "127.0.0.1" else { FloorProxy.fail("own-loop connects to Redis on 127.0.0.1 only") }
            self.redis = redis
        }
    }

    static func main() {
        guard let arguments = Arguments(Array(CommandLine.arguments.dropFirst())) else {
            fail("usage: tollgate-floor [own-loop | budget | budget-alone] <port> <upstream base URL, e.g. http://127.0.0.1:8081> [redis URL, e.g. redis://127.0.0.1:6379/0]")
        }
        do {
            if arguments.ownLoop { try ownLoops(arguments) } else { try nioServer(arguments) }
        } catch {
            fail("tollgate-floor: \(error)")
        }
    }

    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data((message + "\n").utf8))
        exit(2)
    }

    static func nioServer(_ arguments: Arguments) throws {
        let upstream = try UpstreamClient()
        let base = arguments.upstream
        let scripts = try BudgetScripts.load()
        let redis = arguments.redis.map {
            RedisConnection(endpoint: $0, timeoutMilliseconds: 1_000, scripts: arguments.budget != nil ? scripts.all : [], logger: Logger(label: "tollgate-floor"))
        }
        let group = MultiThreadedEventLoopGroup.singleton
        // One FloorBudget per loop; a connection's handler takes its loop's.
        let budgets: [ObjectIdentifier: NIOLoopBound<FloorBudget>] = try redis.map { redis in
            guard let shape = arguments.budget else { return [:] }
            let store = BudgetStore(redis: redis, scripts: scripts, policy: floorPolicy)
            // Made on their loops: a loop-bound value is born on its loop.
            return try Dictionary(uniqueKeysWithValues: group.makeIterator().map { loop in
                (ObjectIdentifier(loop), try loop.submit {
                    NIOLoopBound(FloorBudget(store: store, loop: loop, shape: shape), eventLoop: loop)
                }.wait())
            })
        } ?? [:]
        let server = try ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: true)
                    let budget = budgets[ObjectIdentifier(channel.eventLoop)]?.value
                    try channel.pipeline.syncOperations.addHandler(FloorHandler(upstream: upstream, base: base, redis: redis, budget: budget))
                }
            }
            .bind(host: "127.0.0.1", port: arguments.port).wait()
        let perRequest = arguments.budget.map { "a reserve and a settle (\($0))" } ?? "a PING"
        print("tollgate-floor on 127.0.0.1:\(arguments.port) → \(base)\(redis.map { ", \(perRequest) on \($0.endpoint) per request" } ?? "")")
        try server.closeFuture.wait()
    }

    /// Tollgate's defaults as `Tollgate.init` makes them (a 600 s lease; the periods' hashes kept
    /// for the 35 days of analytics; UTC), with default limits that never refuse a bench.
    static let floorPolicy = BudgetStore.Policy(defaultDailyLimit: NanoUSD(1 << 60), defaultMonthlyLimit: NanoUSD(1 << 60),
                                                leaseSeconds: 600, dayGraceSeconds: 35 * 86_400, monthGraceSeconds: 35 * 86_400,
                                                timezone: { .utc })

    /// One `OwnLoop` per core, each with its own listener on the port (SO_REUSEPORT).
    static func ownLoops(_ arguments: Arguments) throws {
        curl_global_init(Int(CURL_GLOBAL_ALL))
        let redisPort = arguments.redis?.port
        let loops = try (0..<System.coreCount).map { _ in try OwnLoop(port: arguments.port, base: arguments.upstream, redisPort: redisPort) }
        for loop in loops.dropFirst() { Thread { loop.run() }.start() }
        print("tollgate-floor own-loop: \(loops.count) loops on 127.0.0.1:\(arguments.port) → \(arguments.upstream)\(redisPort.map { ", a PING to Redis port \($0) per request" } ?? "")")
        loops[0].run()
    }
}

/// One connection: a request's head and body are gathered, sent upstream whole, and the answer
/// written back in one flush when curl hands it over on this loop.
final class FloorHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let upstream: UpstreamClient
    private let base: String
    private let redis: RedisConnection?
    private let budget: FloorBudget?
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []

    init(upstream: UpstreamClient, base: String, redis: RedisConnection?, budget: FloorBudget?) {
        self.upstream = upstream
        self.base = base
        self.redis = redis
        self.budget = budget
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body.removeAll(keepingCapacity: true)
        case .body(let chunk):
            body.append(contentsOf: chunk.readableBytesView)
        case .end:
            guard let head else { return }
            self.head = nil
            if let budget {
                let client = head.headers.first(name: "x-client-id").flatMap(ClientID.init) ?? ClientID("anonymous")!
                budget.reserve(client) { grant in
                    switch grant {
                    case .lease(let lease): self.forward(head, context: context) { budget.settle(client, lease) }
                    case .refused: Self.write(status: .paymentRequired, headers: [], body: ByteBuffer(string: "refused\n"), context: context)
                    case .failed: Self.write(status: .serviceUnavailable, headers: [], body: ByteBuffer(string: "Redis failed\n"), context: context)
                    }
                }
                return
            }
            guard let redis else { return forward(head, context: context) }
            let handler = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            redis.send(.command(["PING"])) { _ in
                let (handler, context) = handler.value
                handler.forward(head, context: context)
            }
        }
    }

    /// Hop-by-hop and framing headers are curl's and NIO's to write.
    static let notForwarded: Set<String> = ["host", "content-length", "connection", "keep-alive", "transfer-encoding"]

    /// `written` runs once the answer is written (the settle's place).
    private func forward(_ head: HTTPRequestHead, context: ChannelHandlerContext, written: @escaping () -> Void = {}) {
        let headers = head.headers.filter { !Self.notForwarded.contains($0.name.lowercased()) }.map { (name: $0.name, value: $0.value) }
        let call = upstream.collect(UpstreamRequest(url: base + head.uri, method: head.method.rawValue, headers: headers, body: body,
                                                    collectBody: true))
        let connection = NIOLoopBound((context, written), eventLoop: context.eventLoop)
        call.whenAnswered(on: context.eventLoop) { answer in
            let (context, written) = connection.value
            defer { written() }
            guard let upstreamHead = answer.head, answer.failure == nil else {
                Self.write(status: .badGateway, headers: [], body: ByteBuffer(string: "upstream failed\n"), context: context)
                return
            }
            let headers = upstreamHead.headers.filter { !Self.notForwarded.contains($0.name.lowercased()) }
            Self.write(status: HTTPResponseStatus(statusCode: upstreamHead.status), headers: headers,
                       body: context.channel.allocator.buffer(bytes: answer.body), context: context)
        }
    }

    private static func write(status: HTTPResponseStatus, headers: [(name: String, value: String)], body: ByteBuffer,
                              context: ChannelHandlerContext) {
        var fields = HTTPHeaders(headers)
        fields.replaceOrAdd(name: "content-length", value: String(body.readableBytes))
        context.write(NIOAny(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: status, headers: fields))), promise: nil)
        context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)), promise: nil)
    }
}
