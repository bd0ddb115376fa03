//! Wire types of the agentstream protocol (`PROTOCOL.md`, version 1).
//!
//! One definition of every JSON shape that crosses the network, shared by the backend and the Yew app so
//! the two can never drift apart. Only `serde`, `serde_json` and `uuid`: this crate compiles to wasm32.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// The protocol version this crate describes.
pub const PROTOCOL_VERSION: u32 = 1;

/// Which kind of agent runs: decides the runner the backend starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentType {
    /// Needs no credentials: streams generated tokens through the real pipeline.
    Synthetic,
    /// Claude Code (`claude -p … --output-format stream-json`).
    ClaudeCode,
    /// Gemini CLI (`gemini -o stream-json`).
    GeminiCli,
}

impl AgentType {
    /// Every type, in the order a UI offers them.
    pub const ALL: [AgentType; 3] = [
        AgentType::Synthetic,
        AgentType::ClaudeCode,
        AgentType::GeminiCli,
    ];

    /// The protocol's name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentType::Synthetic => "synthetic",
            AgentType::ClaudeCode => "claude-code",
            AgentType::GeminiCli => "gemini-cli",
        }
    }
}

impl fmt::Display for AgentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AgentType {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AgentType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownName(s.to_owned()))
    }
}

/// A name that is not one of an enum's protocol names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownName(pub String);

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown name {:?}", self.0)
    }
}

impl std::error::Error for UnknownName {}

/// Lifecycle of an agent: `initializing` → `running` → a terminal status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    Initializing,
    Running,
    Completed,
    Failed,
    Terminated,
    /// It was running when its server stopped; set when the server starts again.
    Interrupted,
}

impl AgentStatus {
    /// Every status.
    pub const ALL: [AgentStatus; 6] = [
        AgentStatus::Initializing,
        AgentStatus::Running,
        AgentStatus::Completed,
        AgentStatus::Failed,
        AgentStatus::Terminated,
        AgentStatus::Interrupted,
    ];

    /// The protocol's name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Initializing => "initializing",
            AgentStatus::Running => "running",
            AgentStatus::Completed => "completed",
            AgentStatus::Failed => "failed",
            AgentStatus::Terminated => "terminated",
            AgentStatus::Interrupted => "interrupted",
        }
    }

    /// True once the agent can produce no more messages.
    pub fn is_terminal(self) -> bool {
        !matches!(self, AgentStatus::Initializing | AgentStatus::Running)
    }
}

impl fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AgentStatus {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AgentStatus::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownName(s.to_owned()))
    }
}

/// The kind of a stored message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageType {
    Assistant,
    User,
    System,
    Tool,
    Result,
    Error,
}

impl MessageType {
    /// Every message type.
    pub const ALL: [MessageType; 6] = [
        MessageType::Assistant,
        MessageType::User,
        MessageType::System,
        MessageType::Tool,
        MessageType::Result,
        MessageType::Error,
    ];

    /// The protocol's name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Assistant => "assistant",
            MessageType::User => "user",
            MessageType::System => "system",
            MessageType::Tool => "tool",
            MessageType::Result => "result",
            MessageType::Error => "error",
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MessageType {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MessageType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownName(s.to_owned()))
    }
}

/// An agent as REST returns it and `agent:created` carries it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub agent_type: AgentType,
    pub status: AgentStatus,
    pub prompt: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    /// Extension: the configuration the agent was launched with (`{}` when none).
    #[serde(default)]
    pub configuration: Value,
    /// Extension: the agent CLI's session id, once it reported one (what `resume` takes).
    #[serde(default)]
    pub session_id: Option<String>,
    /// Extension: the model the agent CLI reported.
    #[serde(default)]
    pub model: Option<String>,
    /// Extension: why the agent failed, when it did.
    #[serde(default)]
    pub error: Option<ErrorInfo>,
}

/// One stored message (a row of `agent_messages`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: Uuid,
    pub agent_id: Uuid,
    /// 1, 2, 3… per agent: no holes, no repeats.
    pub sequence_number: i64,
    #[serde(rename = "type")]
    pub message_type: MessageType,
    pub role: Option<String>,
    pub content: String,
    /// The original line the message was parsed from.
    pub raw: Option<String>,
    pub metadata: Value,
    pub created_at: String,
}

/// `{"code", "message"}`: the inner part of every error the protocol carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// A stable snake_case identifier a client can match on.
    pub code: String,
    /// A sentence for humans.
    pub message: String,
}

impl ErrorInfo {
    /// Builds an error from a code and a sentence.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorInfo {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// The body of every REST error: `{"error": {"code", "message"}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorInfo,
}

/// `POST /api/agents` body. `type` stays a string so that an unknown type gets its own error code.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAgentRequest {
    #[serde(rename = "type")]
    pub agent_type: String,
    pub prompt: String,
    #[serde(default)]
    pub configuration: Option<Value>,
}

/// `configuration` of a `synthetic` agent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyntheticConfig {
    /// How many `assistant` tokens to produce.
    pub tokens: Option<u64>,
    /// Pause between two tokens, in milliseconds.
    pub interval_ms: Option<u64>,
    /// Stamp each token line with the emitting moment (`emittedNs`, CLOCK_MONOTONIC nanoseconds) so a
    /// client on the same machine can measure emit-to-receipt latency (the benchmark does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<bool>,
    /// Pause after the `system` line, before the answer starts, in milliseconds: a model's time to the
    /// first token (clients can be subscribed before the tokens come; the fan-out benchmark uses it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_delay_ms: Option<u64>,
}

/// How a `claude-code` agent reaches the Claude CLI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClaudeTransport {
    /// The server spawns the CLI itself.
    Cli,
    /// The server streams from a proxy that spawns it (`POST {proxyUrl}/agent/stream`, SSE).
    Proxy,
}

/// `configuration` of a `claude-code` agent; every field optional.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaudeConfig {
    /// `--model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The folder the agent works in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    /// `--session-id`: start a session with this UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// `--resume`: continue the session with this UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
    /// `--allowedTools`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_tools: Option<Vec<String>>,
    /// `--disallowedTools`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disallowed_tools: Option<Vec<String>>,
    /// `--permission-mode`: `default`, `acceptEdits`, `bypassPermissions` or `plan`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_mode: Option<String>,
    /// `--mcp-config`: a JSON object (or a path to one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_config: Option<Value>,
    /// `--strict-mcp-config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_strict: Option<bool>,
    /// Overrides the server's `claude.transport` setting for this agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<ClaudeTransport>,
}

/// `GET /api/health` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
}

/// `agent:created`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentCreated {
    pub agent: Agent,
    pub timestamp: String,
}

/// `agent:status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatusChanged {
    pub agent_id: Uuid,
    pub status: AgentStatus,
    pub timestamp: String,
}

/// `agent:deleted`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentDeleted {
    pub agent_id: Uuid,
    pub timestamp: String,
    /// Extension: true when the agent and its history were removed (`?purge=true`).
    #[serde(default)]
    pub purged: bool,
}

/// `agent:message`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentMessage {
    pub agent_id: Uuid,
    pub message: Message,
    pub timestamp: String,
}

/// The `result` of `agent:complete`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletionResult {
    /// `completed` or `failed`.
    pub status: AgentStatus,
    /// From the runner's start to its end.
    pub duration_ms: i64,
    /// The sequence number of the agent's last message.
    pub last_sequence: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_turns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Value>,
}

/// `agent:complete`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentComplete {
    pub agent_id: Uuid,
    pub result: CompletionResult,
    pub timestamp: String,
}

/// `agent:error`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentError {
    pub agent_id: Uuid,
    pub error: ErrorInfo,
    pub timestamp: String,
}

/// `subscribed`: the reply to `subscribe`, sent before any replayed message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscribed {
    pub agent_id: Uuid,
    /// The highest sequence number stored when the subscription took effect (0: none yet).
    pub last_sequence: i64,
    /// Extension: the agent's status at that moment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AgentStatus>,
    /// Extension, sent when the subscribe gave `since`: `true` when every message after `since` follows
    /// (the position was recovered); `false` when `since` lies beyond the last stored message, so the
    /// client holds messages this server does not have and must reload the history instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<bool>,
}

/// `unsubscribed` (extension): the reply to `unsubscribe`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Unsubscribed {
    pub agent_id: Uuid,
}

/// `error`: a frame the server could not act on. The connection stays open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FrameError {
    pub code: String,
    pub message: String,
    /// Extension: the agent the failed request named, when it named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Uuid>,
    /// Extension: `false` on a failed `subscribe` that gave `since` — the position cannot be recovered
    /// (the agent is gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<bool>,
}

/// Every frame the server sends: `{"event": "<name>", "data": {…}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", content = "data")]
pub enum ServerEvent {
    #[serde(rename = "agent:created")]
    AgentCreated(AgentCreated),
    #[serde(rename = "agent:status")]
    AgentStatus(AgentStatusChanged),
    #[serde(rename = "agent:deleted")]
    AgentDeleted(AgentDeleted),
    #[serde(rename = "agent:message")]
    AgentMessage(AgentMessage),
    #[serde(rename = "agent:complete")]
    AgentComplete(AgentComplete),
    #[serde(rename = "agent:error")]
    AgentError(AgentError),
    #[serde(rename = "subscribed")]
    Subscribed(Subscribed),
    #[serde(rename = "unsubscribed")]
    Unsubscribed(Unsubscribed),
    #[serde(rename = "error")]
    Error(FrameError),
}

/// `subscribe` data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscribe {
    pub agent_id: Uuid,
    /// Replay every stored message with a greater sequence number first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
}

/// `unsubscribe` data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Unsubscribe {
    pub agent_id: Uuid,
}

/// Every frame a client sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", content = "data")]
pub enum ClientEvent {
    #[serde(rename = "subscribe")]
    Subscribe(Subscribe),
    #[serde(rename = "unsubscribe")]
    Unsubscribe(Unsubscribe),
}

/// Why a client frame was refused; becomes an `error` event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub code: &'static str,
    pub message: String,
    /// The agent the frame named, when it could be read.
    pub agent_id: Option<Uuid>,
}

impl DecodeError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        DecodeError {
            code,
            message: message.into(),
            agent_id: None,
        }
    }
}

impl ClientEvent {
    /// Decodes a text frame, with an error code precise enough for a client to act on.
    pub fn decode(text: &str) -> Result<ClientEvent, DecodeError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| DecodeError::new("invalid_json", format!("the frame is not JSON: {e}")))?;
        let Value::Object(mut object) = value else {
            return Err(DecodeError::new(
                "invalid_frame",
                "a frame must be a JSON object {\"event\": …, \"data\": {…}}",
            ));
        };
        let event = match object.get("event") {
            Some(Value::String(name)) => name.clone(),
            _ => {
                return Err(DecodeError::new(
                    "invalid_frame",
                    "a frame needs a string field \"event\"",
                ))
            }
        };
        let data = object.remove("data").unwrap_or(Value::Null);
        let Value::Object(data) = data else {
            return Err(DecodeError::new(
                "invalid_frame",
                format!("\"{event}\" needs an object in \"data\""),
            ));
        };
        let agent_id = match data.get("agentId") {
            Some(Value::String(id)) => Uuid::parse_str(id).map_err(|_| {
                DecodeError::new("invalid_id", format!("agentId {id:?} is not a UUID"))
            })?,
            Some(_) => {
                return Err(DecodeError::new(
                    "invalid_id",
                    "agentId must be a UUID string",
                ))
            }
            None => {
                return Err(DecodeError::new(
                    "invalid_frame",
                    format!("\"{event}\" needs data.agentId"),
                ))
            }
        };
        let with_agent = |mut e: DecodeError| {
            e.agent_id = Some(agent_id);
            e
        };
        match event.as_str() {
            "subscribe" => {
                let since = match data.get("since") {
                    None | Some(Value::Null) => None,
                    Some(Value::Number(n)) => match n.as_i64() {
                        Some(s) if s >= 0 => Some(s),
                        _ => {
                            return Err(with_agent(DecodeError::new(
                                "invalid_since",
                                format!("since must be an integer >= 0, got {n}"),
                            )))
                        }
                    },
                    Some(other) => {
                        return Err(with_agent(DecodeError::new(
                            "invalid_since",
                            format!("since must be an integer >= 0, got {other}"),
                        )))
                    }
                };
                Ok(ClientEvent::Subscribe(Subscribe { agent_id, since }))
            }
            "unsubscribe" => Ok(ClientEvent::Unsubscribe(Unsubscribe { agent_id })),
            other => Err(with_agent(DecodeError::new(
                "unknown_event",
                format!("unknown event {other:?}: expected \"subscribe\" or \"unsubscribe\""),
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_event_has_protocol_shape() {
        let id = Uuid::nil();
        let event = ServerEvent::AgentStatus(AgentStatusChanged {
            agent_id: id,
            status: AgentStatus::Running,
            timestamp: "2026-11-24T10:30:00.123Z".into(),
        });
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"event": "agent:status", "data": {
                "agentId": id, "status": "running", "timestamp": "2026-11-24T10:30:00.123Z"}})
        );
        let back: ServerEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn message_uses_camel_case_and_type() {
        let m = Message {
            id: Uuid::nil(),
            agent_id: Uuid::nil(),
            sequence_number: 1,
            message_type: MessageType::Assistant,
            role: None,
            content: "Hello".into(),
            raw: Some("{}".into()),
            metadata: serde_json::json!({"eventType": "content_delta"}),
            created_at: "t".into(),
        };
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["sequenceNumber"], 1);
        assert_eq!(json["type"], "assistant");
        assert_eq!(json["agentId"], Uuid::nil().to_string());
        assert_eq!(json["metadata"]["eventType"], "content_delta");
    }

    #[test]
    fn decode_subscribe_with_and_without_since() {
        let id = Uuid::from_u128(7);
        let f = format!(r#"{{"event":"subscribe","data":{{"agentId":"{id}","since":5}}}}"#);
        assert_eq!(
            ClientEvent::decode(&f).unwrap(),
            ClientEvent::Subscribe(Subscribe {
                agent_id: id,
                since: Some(5)
            })
        );
        let f = format!(r#"{{"event":"subscribe","data":{{"agentId":"{id}"}}}}"#);
        assert_eq!(
            ClientEvent::decode(&f).unwrap(),
            ClientEvent::Subscribe(Subscribe {
                agent_id: id,
                since: None
            })
        );
        let f = format!(r#"{{"event":"unsubscribe","data":{{"agentId":"{id}"}}}}"#);
        assert_eq!(
            ClientEvent::decode(&f).unwrap(),
            ClientEvent::Unsubscribe(Unsubscribe { agent_id: id })
        );
    }

    #[test]
    fn decode_errors_are_precise() {
        let id = Uuid::from_u128(7);
        let code = |s: &str| ClientEvent::decode(s).unwrap_err().code;
        assert_eq!(code("not json"), "invalid_json");
        assert_eq!(code("[1,2]"), "invalid_frame");
        assert_eq!(code(r#"{"data":{}}"#), "invalid_frame");
        assert_eq!(code(r#"{"event":"subscribe","data":5}"#), "invalid_frame");
        assert_eq!(code(r#"{"event":"subscribe","data":{}}"#), "invalid_frame");
        assert_eq!(
            code(r#"{"event":"subscribe","data":{"agentId":"x"}}"#),
            "invalid_id"
        );
        let f = format!(r#"{{"event":"subscribe","data":{{"agentId":"{id}","since":-1}}}}"#);
        assert_eq!(code(&f), "invalid_since");
        let f = format!(r#"{{"event":"subscribe","data":{{"agentId":"{id}","since":"3"}}}}"#);
        assert_eq!(code(&f), "invalid_since");
        let f = format!(r#"{{"event":"subscribe","data":{{"agentId":"{id}","since":1.5}}}}"#);
        assert_eq!(code(&f), "invalid_since");
        let f = format!(r#"{{"event":"dance","data":{{"agentId":"{id}"}}}}"#);
        let e = ClientEvent::decode(&f).unwrap_err();
        assert_eq!((e.code, e.agent_id), ("unknown_event", Some(id)));
    }

    #[test]
    fn names_round_trip() {
        for t in AgentType::ALL {
            assert_eq!(t.as_str().parse::<AgentType>().unwrap(), t);
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        for s in AgentStatus::ALL {
            assert_eq!(s.as_str().parse::<AgentStatus>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for m in MessageType::ALL {
            assert_eq!(m.as_str().parse::<MessageType>().unwrap(), m);
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
        }
        assert!("gemini".parse::<AgentType>().is_err());
    }
}
