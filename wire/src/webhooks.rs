//! Webhooks (`/api/webhooks`): what a client sends to register, change and see a consumer, and the
//! event kinds a consumer can ask for. Each delivery's body is a WebSocket frame (`events`), signed in
//! [`SIGNATURE_HEADER`].

use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::names::protocol_names;

/// The header that carries a delivery's signature: `sha256=` and the lowercase hex HMAC-SHA256 of the
/// raw body, keyed with the consumer's secret.
pub const SIGNATURE_HEADER: &str = "X-Agentstream-Signature";

protocol_names! {
    /// The event kinds a consumer may ask for: the WebSocket events of agents.
    pub enum WebhookEvent {
        Message = "agent:message",
        Complete = "agent:complete",
        Error = "agent:error",
        Status = "agent:status",
        Created = "agent:created",
        Deleted = "agent:deleted",
    }
}

/// `POST /api/webhooks` body. Ids and event names stay text, so that a wrong one gets its own error
/// code naming the field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWebhookRequest {
    pub url: String,
    pub secret: String,
    /// The agents whose events it gets; absent or `null`: every agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_ids: Option<Vec<String>>,
    /// The event kinds it gets; absent or `null`: every kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
}

/// `PATCH /api/webhooks/{id}` body: each field present is changed; `agentIds` or `events` set to
/// `null` mean every agent or every kind again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateWebhookRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub agent_ids: Option<Option<Vec<String>>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub events: Option<Option<Vec<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

/// A field that is present, `null` included (absent stays `None` by `default`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// The last failed attempt of a consumer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WebhookFailure {
    /// What went wrong: the receiver's status, a timeout, a connection refused…
    pub message: String,
    pub at: String,
}

/// A consumer as the API shows it (never its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    /// `null`: every agent.
    pub agent_ids: Option<Vec<Uuid>>,
    /// `null`: every kind.
    pub events: Option<Vec<WebhookEvent>>,
    pub paused: bool,
    pub created_at: String,
    /// Stored messages and lifecycle events it asked for and the receiver has not acknowledged yet.
    pub lag: i64,
    /// The last failed attempt, kept after later successes (compare its `at` with `lastDeliveredAt`).
    pub last_error: Option<WebhookFailure>,
    /// When a delivery last succeeded.
    pub last_delivered_at: Option<String>,
    /// Failed attempts of the delivery now due (0 when none failed).
    pub attempts: i64,
    /// When the delivery that failed is tried again.
    pub next_retry_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_tells_a_null_filter_from_an_absent_one() {
        let absent: UpdateWebhookRequest = serde_json::from_str(r#"{"paused": true}"#).unwrap();
        assert_eq!(absent.agent_ids, None);
        assert_eq!(absent.paused, Some(true));
        let null: UpdateWebhookRequest =
            serde_json::from_str(r#"{"agentIds": null, "events": ["agent:status"]}"#).unwrap();
        assert_eq!(null.agent_ids, Some(None));
        assert_eq!(null.events, Some(Some(vec!["agent:status".to_owned()])));
        assert!(serde_json::from_str::<UpdateWebhookRequest>(r#"{"secrett": "x"}"#).is_err());
    }

    #[test]
    fn event_kinds_are_the_websocket_event_names() {
        let names: Vec<&str> = WebhookEvent::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(
            names,
            [
                "agent:message",
                "agent:complete",
                "agent:error",
                "agent:status",
                "agent:created",
                "agent:deleted"
            ]
        );
    }
}
