//! Errors as the protocol carries them: `{"code", "message"}` ([`ErrorInfo`]), the REST error body,
//! and every code this server sends ([`ErrorCode`]).

use serde::{Deserialize, Serialize};

use crate::names::protocol_names;

protocol_names! {
    /// Every error code this server sends: in REST error bodies, WebSocket `error` events, and an agent's
    /// `error` (`agent:error`, `Agent.error`). `PROTOCOL.md` says when each is sent. A client reads
    /// codes as text ([`ErrorInfo::code`]): a newer server may send one this enum lacks.
    pub enum ErrorCode {
        // REST
        InvalidId = "invalid_id",
        InvalidSince = "invalid_since",
        InvalidLimit = "invalid_limit",
        InvalidQuery = "invalid_query",
        InvalidPath = "invalid_path",
        InvalidBody = "invalid_body",
        InvalidConfiguration = "invalid_configuration",
        UnknownAgentType = "unknown_agent_type",
        InvalidUpgrade = "invalid_upgrade",
        Unauthorized = "unauthorized",
        OriginNotAllowed = "origin_not_allowed",
        HostNotAllowed = "host_not_allowed",
        AgentNotFound = "agent_not_found",
        NotFound = "not_found",
        MethodNotAllowed = "method_not_allowed",
        PayloadTooLarge = "payload_too_large",
        TooManyAgents = "too_many_agents",
        TooManyLaunches = "too_many_launches",
        TooManyConnections = "too_many_connections",
        StorageError = "storage_error",
        AgentTypeUnavailable = "agent_type_unavailable",
        Unavailable = "unavailable",
        /// 503 (several instances): the instance that owns the agent cannot be reached, or has just
        /// lost it to another; the request can be sent again (to any instance).
        OwnerUnavailable = "owner_unavailable",
        // Conversations (409 unless said otherwise)
        /// The agent's type (or transport) cannot be continued.
        ConversationUnsupported = "conversation_unsupported",
        /// The agent never reported a session (it ended before its first `system/init`): there is
        /// nothing to resume.
        NoSession = "no_session",
        /// Interrupt: no turn is under way.
        NotRunning = "not_running",
        /// The agent is being deleted or the server is shutting down: it takes no input.
        AgentStopping = "agent_stopping",
        /// 404: the agent never asked this permission.
        PermissionNotFound = "permission_not_found",
        /// The permission request was answered already, or its turn ended.
        PermissionNotPending = "permission_not_pending",
        /// 429: the agent has as many follow-ups waiting as it takes.
        InboxFull = "inbox_full",
        // WebSocket `error` events
        InvalidJson = "invalid_json",
        InvalidFrame = "invalid_frame",
        UnknownEvent = "unknown_event",
        UnsupportedFrame = "unsupported_frame",
        TooManySubscriptions = "too_many_subscriptions",
        NotReady = "not_ready",
        // Why an agent failed
        AgentFailed = "agent_failed",
        NoResult = "no_result",
        StreamEnded = "stream_ended",
        AgentDeleted = "agent_deleted",
        CliNotFound = "cli_not_found",
        CliSpawnFailed = "cli_spawn_failed",
        CliExit = "cli_exit",
        CliKilled = "cli_killed",
        /// The CLI printed nothing for its type's `idle_timeout_ms`, and was stopped.
        CliTimeout = "cli_timeout",
        ProcessFailed = "process_failed",
        ProxyUnreachable = "proxy_unreachable",
        ProxyHttpError = "proxy_http_error",
        ProxyTimeout = "proxy_timeout",
        ProxyError = "proxy_error",
        StreamCut = "stream_cut",
        // Webhooks (400 unless said otherwise; each names the field it is about)
        /// `url` is not an http(s) URL, names this server itself, or a host `webhooks.allowed_hosts`
        /// does not list.
        InvalidUrl = "invalid_url",
        /// `secret` is empty or too long.
        InvalidSecret = "invalid_secret",
        /// `agentIds` holds something that is not a UUID, or too many ids.
        InvalidAgentIds = "invalid_agent_ids",
        /// `events` holds a name that is not an agent event.
        InvalidEvents = "invalid_events",
        /// 404: no webhook with this id.
        WebhookNotFound = "webhook_not_found",
        /// 409: `webhooks.max_consumers` webhooks exist already.
        TooManyWebhooks = "too_many_webhooks",
    }
}

/// `{"code", "message"}`: the inner part of every error the protocol carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorInfo {
    /// A stable snake_case identifier a client can match on (an [`ErrorCode`] from this server; text,
    /// so that a client also reads codes it does not know yet).
    #[cfg_attr(feature = "openapi", schema(value_type = ErrorCode))]
    pub code: String,
    /// A sentence for humans.
    pub message: String,
}

impl ErrorInfo {
    /// Builds an error from a code and a sentence.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorInfo {
            code: code.as_str().to_owned(),
            message: message.into(),
        }
    }

    /// Whether the error has this code.
    pub fn is(&self, code: ErrorCode) -> bool {
        self.code == code.as_str()
    }
}

/// The body of every REST error: `{"error": {"code", "message"}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorInfo,
}
