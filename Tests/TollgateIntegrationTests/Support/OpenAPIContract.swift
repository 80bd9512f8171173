import Foundation
import TollgateCore
import Yams

/// Just enough of OpenAPI 3.1 / JSON Schema to check the admin API against docs/admin-openapi.yaml:
/// operations and their documented statuses, $ref, type, required, properties, items, allOf, pattern, enum.
struct OpenAPIContract {
    let root: Node

    init() throws {
        let url = URL(fileURLWithPath: #filePath).appendingPathComponent("../../../../docs/admin-openapi.yaml").standardized
        root = try Yams.compose(yaml: String(contentsOf: url, encoding: .utf8))!
    }

    /// Every (METHOD, template) the document declares.
    var operations: Set<String> {
        var out: Set<String> = []
        for (path, item) in root["paths"]?.mapping ?? [:] {
            for (method, _) in item.mapping ?? [:] where ["get", "post", "delete", "put", "patch"].contains(method.string ?? "") {
                out.insert("\(method.string!.uppercased()) \(path.string!)")
            }
        }
        return out
    }

    /// Problems with a response, or [] when it matches the contract.
    func check(method: String, template: String, status: Int, body: JSONValue?) -> [String] {
        guard let op = root["paths"]?[template]?[method.lowercased()] else { return ["\(method) \(template) is not documented"] }
        // Status keys are quoted in YAML ('200'); compare by string value, not by node.
        guard var response = op["responses"]?.mapping?.first(where: { $0.key.string == String(status) })?.value else {
            return ["status \(status) is not documented for \(method) \(template)"]
        }
        if let ref = response["$ref"]?.string { response = resolve(ref) }
        guard let schema = response["content"]?["application/json"]?["schema"] else { return [] }
        guard let body else { return ["body is not JSON"] }
        return validate(body, schema, at: "$")
    }

    func resolve(_ ref: String) -> Node {
        var node = root
        for part in ref.dropFirst(2).split(separator: "/") { node = node[String(part)]! }
        return node
    }

    func validate(_ value: JSONValue, _ schemaNode: Node, at path: String) -> [String] {
        var schema = schemaNode
        if let ref = schema["$ref"]?.string { schema = resolve(ref) }
        var problems: [String] = []
        for part in schema["allOf"]?.sequence ?? [] { problems += validate(value, part, at: path) }
        if let types = schema["type"] {
            let allowed = types.sequence?.compactMap(\.string) ?? [types.string!]
            if !allowed.contains(where: { Self.matches(value, $0) }) { problems.append("\(path): expected \(allowed), got \(value.serialized.prefix(60))") }
        }
        if let options = schema["enum"]?.sequence?.compactMap(\.string), case .string(let s) = value, !options.contains(s) {
            problems.append("\(path): \(s) not in \(options)")
        }
        if let pattern = schema["pattern"]?.string, case .string(let s) = value, (try? Regex(pattern).wholeMatch(in: s)) == nil {
            problems.append("\(path): '\(s)' does not match \(pattern)")
        }
        if case .object(let members) = value {
            for name in schema["required"]?.sequence?.compactMap(\.string) ?? [] where !members.contains(where: { $0.key == name }) {
                problems.append("\(path): missing required \(name)")
            }
            for (name, sub) in schema["properties"]?.mapping ?? [:] {
                if let v = members.first(where: { $0.key == name.string })?.value { problems += validate(v, sub, at: "\(path).\(name.string!)") }
            }
        }
        if case .array(let items) = value, let itemSchema = schema["items"] {
            for (i, item) in items.enumerated() { problems += validate(item, itemSchema, at: "\(path)[\(i)]") }
        }
        return problems
    }

    static func matches(_ v: JSONValue, _ type: String) -> Bool {
        switch (type, v) {
        case ("object", .object), ("array", .array), ("string", .string), ("boolean", .bool), ("null", .null), ("number", .number): return true
        case ("integer", .number(let n)): return Int64(n) != nil
        default: return false
        }
    }
}
