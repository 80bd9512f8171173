import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Testing
import TollgateCore
import TollgateMockProvider
@testable import TollgateUpstream

/// `UpstreamClient.collect`: a non-streamed answer handed over whole, once, however its transfer
/// ends. Real HTTP to the mock provider over loopback.
@Suite("a whole answer is handed over once", .timeLimit(.minutes(1)))
struct UpstreamCollectTests {
    static let chat = Array(#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#.utf8)

    static func request(_ url: String, headers: [(String, String)] = []) -> UpstreamRequest {
        UpstreamRequest(url: url + "/v1/chat/completions", method: "POST",
                        headers: [(name: "Content-Type", value: "application/json")] + headers.map { (name: $0.0, value: $0.1) },
                        body: chat)
    }

    /// One call to a fresh mock provider, through a fresh client, awaited to its end.
    static func answer(_ headers: [(String, String)] = [], settings: UpstreamClient.Settings = .init()) async throws -> UpstreamAnswer {
        let mock = try await MockProvider.start()
        let curl = try UpstreamClient(settings: settings)
        let answer = await curl.collect(request(mock.baseURL, headers: headers)).answer()
        curl.shutdown()
        await mock.stop()
        return answer
    }

    @Test("a completed answer: its head, its whole body, no failure")
    func completed() async throws {
        let answer = try await Self.answer([(MockHeader.completionTokens, "7")])
        #expect(answer.failure == nil)
        #expect(answer.head?.status == 200)
        #expect(answer.head?.header("content-type")?.hasPrefix("application/json") == true)
        let body = try #require(try? JSONValue.parse(answer.body), "a JSON body: \(String(decoding: answer.body, as: UTF8.self))")
        #expect(body["usage"]?["completion_tokens"]?.int == 7)
    }

    @Test("an error answer is an answer: its status and body, no failure")
    func errorStatus() async throws {
        let answer = try await Self.answer([(MockHeader.status, "429")])
        #expect(answer.failure == nil)
        #expect(answer.head?.status == 429)
        #expect(!answer.body.isEmpty)
    }

    @Test("a provider that cannot be reached: no head, a connect failure that reached nothing")
    func unreachable() async throws {
        let curl = try UpstreamClient()
        defer { curl.shutdown() }
        let answer = await curl.collect(Self.request("http://127.0.0.1:1")).answer()
        #expect(answer.head == nil)
        #expect(answer.failure?.kind == .connect)
        #expect(answer.failure?.mayHaveReachedProvider == false)
    }

    @Test("an answer over maxCollectedBytes fails at that limit and hands over no body")
    func overTheLimit() async throws {
        var settings = UpstreamClient.Settings()
        settings.maxCollectedBytes = 64
        let answer = try await Self.answer(settings: settings)
        #expect(answer.failure?.limit == .responseBody)
        #expect(answer.body.isEmpty)
    }

    @Test("an answer taken by callback arrives once, on the loop that asked, whether it ends before or after the ask")
    func byCallback() async throws {
        let mock = try await MockProvider.start()
        defer { Task { await mock.stop() } }
        let curl = try UpstreamClient()
        defer { curl.shutdown() }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        for endsFirst in [false, true] {
            let call = curl.collect(Self.request(mock.baseURL, headers: [(MockHeader.completionTokens, "5")]))
            if endsFirst { try await Task.sleep(for: .milliseconds(300)) } // the transfer has ended before the ask
            let calls = Atomic<Int>(0)
            let answer: (UpstreamAnswer, onLoop: Bool) = await withCheckedContinuation { done in
                call.whenAnswered(on: loop) { answer in
                    if calls.add(1, ordering: .relaxed).newValue == 1 { done.resume(returning: (answer, loop.inEventLoop)) }
                }
            }
            #expect(answer.onLoop, "called on the loop it was asked for (ended first: \(endsFirst))")
            #expect(answer.0.head?.status == 200)
            #expect(try JSONValue.parse(answer.0.body)["usage"]?["completion_tokens"]?.int == 5)
            try await Task.sleep(for: .milliseconds(50))
            #expect(calls.load(ordering: .relaxed) == 1, "called once")
        }
    }

    @Test("a call cancelled while the provider holds its answer ends as cancelled, once")
    func cancelled() async throws {
        let mock = try await MockProvider.start()
        defer { Task { await mock.stop() } }
        let curl = try UpstreamClient()
        defer { curl.shutdown() }
        let call = curl.collect(Self.request(mock.baseURL, headers: [(MockHeader.hold, "held")]))
        #expect(try await eventually { mock.recorder.count == 1 }, "the request reached the provider")
        call.cancel()
        call.cancel() // a second cancel finds the transfer gone
        let answer = await call.answer()
        #expect(answer.failure?.kind == .cancelled)
        #expect(answer.failure?.mayHaveReachedProvider == true, "its request had gone out")
        mock.recorder.release("held")
    }
}
