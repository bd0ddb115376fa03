//! REST bodies: agents and their stored messages as REST returns them, and what a client sends.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::errors::ErrorInfo;
use crate::names::{protocol_names, AgentStatus, AgentType, ClaudeTransport, MessageType};
use crate::usage::UsageTotals;

/// An agent as REST returns it and `agent:created` carries it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub agent_type: AgentType,
    pub status: AgentStatus,
    pub prompt: String,
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub created_at: String,
    #[cfg_attr(feature = "openapi", schema(format = DateTime, required = true))]
    pub started_at: Option<String>,
    #[cfg_attr(feature = "openapi", schema(format = DateTime, required = true))]
    pub completed_at: Option<String>,
    /// Extension: the configuration the agent was launched with (`{}` when none).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub configuration: Value,
    /// Extension: the agent CLI's session id, once it reported one (what `resume` takes).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub session_id: Option<String>,
    /// Extension: the model the agent CLI reported.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub model: Option<String>,
    /// Extension: why the agent failed, when it did.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub error: Option<ErrorInfo>,
    /// Extension: what the agent's turns reported using (tokens, cost, turns, time), summed.
    #[serde(default)]
    pub usage: UsageTotals,
}

/// Extension: one result of `GET /api/agents?q=…`: the agent as the list shows it, and where the query
/// matched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AgentMatch {
    #[serde(flatten)]
    pub agent: Agent,
    /// A short passage of the agent's prompt or messages around a word of the query (`…` where it
    /// was cut), or `null` when none can be shown.
    #[serde(rename = "match", default)]
    pub matched: Option<String>,
}

/// One stored message (a row of `agent_messages`): what REST returns and `agent:message` carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StoredMessage {
    pub id: Uuid,
    pub agent_id: Uuid,
    /// 1, 2, 3… per agent: no holes, no repeats.
    pub sequence_number: i64,
    #[serde(rename = "type")]
    pub message_type: MessageType,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub role: Option<String>,
    pub content: String,
    /// The original line the message was parsed from.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub raw: Option<String>,
    /// `eventType` (an [`EventType`](crate::EventType)) and what the event carries.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: Value,
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub created_at: String,
}

/// `POST /api/agents` body.
// `type` stays a string so that an unknown type gets its own error code.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(example = json!(
    {"type": "synthetic", "prompt": "hello", "configuration": {"tokens": 20, "intervalMs": 5}}
)))]
#[serde(deny_unknown_fields)]
pub struct CreateAgentRequest {
    /// An unknown type: 400 `unknown_agent_type`.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(value_type = AgentType))]
    pub agent_type: String,
    /// What the agent is asked (a `claude-code` agent needs one that is not blank); no NUL, at most
    /// `agents.max_prompt_bytes` bytes.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[^\\u0000]*$"))]
    pub prompt: String,
    /// The type's configuration: `SyntheticConfig`, `ClaudeConfig`, `GeminiConfig` or `CodexConfig`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = configuration_schema))]
    pub configuration: Option<Value>,
}

/// The schema of `CreateAgentRequest.configuration`: one of the types' configurations, or null.
#[cfg(feature = "openapi")]
fn configuration_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Ref, Type};
    let mut any = AnyOfBuilder::new();
    for name in [
        "SyntheticConfig",
        "ClaudeConfig",
        "GeminiConfig",
        "CodexConfig",
    ] {
        any = any.item(Ref::from_schema_name(name));
    }
    any.item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(
            "The type's configuration (`SyntheticConfig`, `ClaudeConfig`, `GeminiConfig`, \
             `CodexConfig`); a key the type does not take: 400 `invalid_configuration`.",
        ))
        .into()
}

/// `POST /api/agents/{id}/messages` body: a follow-up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(example = json!(
    {"content": "now say it in French"}
)))]
#[serde(deny_unknown_fields)]
pub struct SendMessageRequest {
    /// The follow-up: not blank, no NUL, at most `agents.max_prompt_bytes` bytes.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, pattern = "^[^\\u0000]*$"))]
    pub content: String,
}

protocol_names! {
    /// A client's answer to a permission request.
    pub enum PermissionDecision {
        /// The tool runs (with `updatedInput` when given).
        Allow = "allow",
        /// The tool does not run; `message` tells the agent why.
        Deny = "deny",
    }
}

/// `POST /api/agents/{id}/permissions/{requestId}` body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(example = json!(
    {"decision": "allow"}
)))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PermissionAnswer {
    pub decision: PermissionDecision,
    /// A note to the agent (why it was denied); no NUL, at most `agents.max_prompt_bytes` bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[^\\u0000]*$"))]
    pub message: Option<String>,
    /// Allow: the input the tool runs with instead of the requested one (a JSON object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_input: Option<Value>,
    /// Allow: also allow every later call of this tool for the rest of the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always: Option<bool>,
}

/// `configuration` of a `synthetic` agent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyntheticConfig {
    /// How many `assistant` tokens to produce (at most `synthetic.max_tokens`, default 1000000).
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub tokens: Option<u64>,
    /// Pause between two tokens, in milliseconds (at most `synthetic.max_interval_ms`, default 60000).
    pub interval_ms: Option<u64>,
    /// Stamp each token line with the emitting moment (`emittedNs`, CLOCK_MONOTONIC nanoseconds) so a
    /// client on the same machine can measure emit-to-receipt latency (the benchmark does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<bool>,
    /// Pause after the `system` line, before the answer starts, in milliseconds: a model's time to the
    /// first token (clients can be subscribed before the tokens come; the fan-out benchmark uses it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_delay_ms: Option<u64>,
    /// Each turn first asks permission to run a tool (Bash `echo …`), as the Claude CLI does with
    /// `--permission-prompt-tool stdio`, and waits for a client's answer (status `awaiting_permission`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask_permission: Option<bool>,
}

/// `configuration` of a `claude-code` agent; every field optional.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// `configuration` of a `gemini-cli` agent; every field optional.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GeminiConfig {
    /// `--model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `--approval-mode`: `default`, `auto_edit` or `yolo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_mode: Option<String>,
    /// `--include-directories`: more folders the agent may work in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_directories: Option<Vec<String>>,
    /// The folder the agent works in (its sessions are kept per folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    /// `--resume`: continue the session with this UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
}

/// `configuration` of a `codex` agent; every field optional.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CodexConfig {
    /// The model (a slug the CLI knows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// When the agent asks before it runs a command: `never`, `on-request` or `untrusted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_policy: Option<String>,
    /// Where its commands may write: `read-only`, `workspace-write` or `danger-full-access`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// The folder the agent works in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    /// Continue the Codex thread with this id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
}

protocol_names! {
    /// What kind of value an agent type's option takes (`GET /api/agent-types`).
    pub enum OptionKind {
        /// A line of text.
        Text = "text",
        /// A path on the server.
        Path = "path",
        /// A whole number >= 0.
        Number = "number",
        /// One of `choices`.
        Choice = "choice",
        /// `true` or `false`.
        Boolean = "boolean",
        /// A list of text values (given as a JSON array).
        List = "list",
        /// A JSON object, or (where its description says so) text such as a path.
        Json = "json",
    }
}

/// One option of an agent type: a key of its `configuration`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AgentOption {
    /// The key in `configuration`.
    pub name: String,
    /// A short label for a form.
    pub label: String,
    pub kind: OptionKind,
    /// What it does.
    pub description: String,
    /// `choice`: the values it takes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// What applies when it is not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
}

/// `GET /api/agent-types`: one type this server knows, what it takes, and whether it can run here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AgentTypeInfo {
    /// The `type` of `POST /api/agents` (a string: a newer server may know more types).
    #[serde(rename = "type")]
    pub agent_type: String,
    /// A name for people.
    pub label: String,
    pub description: String,
    /// It can run here (its CLI was found); otherwise a launch gets 501 `agent_type_unavailable`.
    pub available: bool,
    /// Why it cannot run here, naming the setting to change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable_reason: Option<String>,
    /// Its agents can be sent follow-ups (`POST /api/agents/{id}/messages`).
    pub conversations: bool,
    /// Whether it needs a prompt.
    pub prompt_required: bool,
    /// The keys its `configuration` takes; any other key is refused with `invalid_configuration`.
    pub options: Vec<AgentOption>,
}

/// `GET /api/health` body: `status` `ok` (200) or `unavailable` (503).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    pub status: String,
    /// Extension: the instance that answered (`instance.id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Extension: `up`, or `down` when the database does not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Extension (several instances on PostgreSQL): `up` while the instance hears the others'
    /// announcements, `down` while it reconnects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<String>,
    /// Extension (several instances on PostgreSQL): `held` while the instance's lease on its agents
    /// was renewed at its last heartbeat, `lost` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_uses_camel_case_and_type() {
        let m = StoredMessage {
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
}
