/// A credential read from the environment (a webhook signing secret, an SMTP password, a Slack
/// webhook URL). It prints as `<redacted>` in logs, errors and `dump`, so a config or an error
/// that carries one can be logged whole.
public struct Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public let value: String
    public init(_ value: String) { self.value = value }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
    public var customMirror: Mirror { Mirror(self, children: [:]) }
}
