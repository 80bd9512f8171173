import Foundation
import HTTPTypes
import Hummingbird
import TollgateCore

/// `POST /v1/embeddings` and `GET /v1/models`.
enum OpenAIEmbeddingsAndModels {
    /// The same small vector for every input; only its shape matters to a proxy.
    static let vector: [Float] = [0.0023, -0.0091, 0.0152, -0.0047, 0.0318, -0.0265, 0.0074, 0.0009]

    static let openAIModels = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "o4-mini", "gpt-3.5-turbo-instruct", "text-embedding-3-small"]
    static let anthropicModels = ["claude-sonnet-4-20250514", "claude-3-5-haiku-20241022"]

    static func add(to router: Router<some RequestContext>) {
        router.mockRoute(.post, "/v1/embeddings", family: .openAI) { call in
            let inputs: [JSONValue]
            switch call.body["input"] {
            case .array(let items) where items.allSatisfy({ if case .number = $0 { false } else { true } }): inputs = items
            case let single?: inputs = [single]  // a string, or one prompt given as token ids
            case nil: return call.family.error(.badRequest, type: "invalid_request_error", message: "mock: 'input' is required")
            }
            let prompt = PromptTokens.count(call.body["input"])
            let embedding = call.body["encoding_format"]?.string == "base64" ? base64Vector : "[\(vector.map { "\($0)" }.joined(separator: ","))]"
            let data = inputs.indices.map { #"{"object":"embedding","index":\#($0),"embedding":\#(embedding)}"# }
            return call.family.json("""
                {"object":"list","data":[\(data.joined(separator: ","))],"model":\(jsonQuoted(call.model)),\
                "usage":{"prompt_tokens":\(prompt),"total_tokens":\(prompt)}}
                """)
        }
        router.mockRoute(.get, "/v1/models", family: .openAI) { call in
            // Both providers serve GET /v1/models; Anthropic's SDKs always send anthropic-version.
            call.headers[HTTPField.Name("anthropic-version")!] != nil ? anthropicModelList : openAIModelList
        }
    }

    /// OpenAI's `encoding_format: "base64"`: little-endian float32s, base64-encoded, as a string.
    static var base64Vector: String {
        let bytes = vector.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
        return jsonQuoted(Data(bytes).base64EncodedString())
    }

    static var openAIModelList: Response {
        let models = openAIModels.map { #"{"id":"\#($0)","object":"model","created":1715367049,"owned_by":"openai"}"# }
        return ProviderFamily.openAI.json(#"{"object":"list","data":[\#(models.joined(separator: ","))]}"#)
    }

    static var anthropicModelList: Response {
        let models = anthropicModels.map {
            #"{"type":"model","id":"\#($0)","display_name":"\#($0)","created_at":"2025-05-14T00:00:00Z"}"#
        }
        return ProviderFamily.anthropic.json("""
            {"data":[\(models.joined(separator: ","))],"has_more":false,\
            "first_id":"\(anthropicModels.first!)","last_id":"\(anthropicModels.last!)"}
            """)
    }
}
