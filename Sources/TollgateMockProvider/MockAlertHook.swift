import Foundation
import HTTPTypes
import Hummingbird
import Synchronization

/// `POST /hooks/alerts`: a webhook receiver for Tollgate's alerts, so `make demo` can show the
/// payloads it signed without a third party. Each request is appended to `file` as one JSON line
/// `{"signature":…,"timestamp":…,"body":<the alert>}`.
enum MockAlertHook {
    static let path = "/hooks/alerts"

    static func add(to router: Router<BasicRequestContext>, file: String?) {
        let lock = Mutex(())
        router.post(RouterPath(stringLiteral: path)) { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            if let file {
                let signature = request.headers[HTTPField.Name("X-Tollgate-Signature")!] ?? ""
                let timestamp = request.headers[HTTPField.Name("X-Tollgate-Timestamp")!] ?? ""
                let line = "{\"signature\":\"\(signature)\",\"timestamp\":\"\(timestamp)\",\"body\":\(String(buffer: body))}\n"
                lock.withLock { _ in
                    if !FileManager.default.fileExists(atPath: file) { FileManager.default.createFile(atPath: file, contents: nil) }
                    if let handle = FileHandle(forWritingAtPath: file) {
                        handle.seekToEndOfFile()
                        handle.write(Data(line.utf8))
                        try? handle.close()
                    }
                }
            }
            return Response(status: .ok)
        }
    }
}
