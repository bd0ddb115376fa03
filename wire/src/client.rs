//! What a client sends over the WebSocket ([`ClientEvent`]), and its decoding with an error code
//! precise enough for the client to act on.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::errors::ErrorCode;

/// `subscribe` data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Subscribe {
    pub agent_id: Uuid,
    /// Replay every stored message with a greater sequence number first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
}

/// `unsubscribe` data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Unsubscribe {
    pub agent_id: Uuid,
}

/// Every frame a client sends (`ClientFrame` in the OpenAPI document).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = ClientFrame))]
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
    pub code: ErrorCode,
    pub message: String,
    /// The agent the frame named, when it could be read.
    pub agent_id: Option<Uuid>,
}

impl DecodeError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
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
        let value: Value = serde_json::from_str(text).map_err(|e| {
            DecodeError::new(
                ErrorCode::InvalidJson,
                format!("the frame is not JSON: {e}"),
            )
        })?;
        let Value::Object(mut object) = value else {
            return Err(DecodeError::new(
                ErrorCode::InvalidFrame,
                "a frame must be a JSON object {\"event\": …, \"data\": {…}}",
            ));
        };
        let event = match object.get("event") {
            Some(Value::String(name)) => name.clone(),
            _ => {
                return Err(DecodeError::new(
                    ErrorCode::InvalidFrame,
                    "a frame needs a string field \"event\"",
                ))
            }
        };
        let data = object.remove("data").unwrap_or(Value::Null);
        let Value::Object(data) = data else {
            return Err(DecodeError::new(
                ErrorCode::InvalidFrame,
                format!("\"{event}\" needs an object in \"data\""),
            ));
        };
        let agent_id = match data.get("agentId") {
            Some(Value::String(id)) => Uuid::parse_str(id).map_err(|_| {
                DecodeError::new(
                    ErrorCode::InvalidId,
                    format!("agentId {id:?} is not a UUID"),
                )
            })?,
            Some(_) => {
                return Err(DecodeError::new(
                    ErrorCode::InvalidId,
                    "agentId must be a UUID string",
                ))
            }
            None => {
                return Err(DecodeError::new(
                    ErrorCode::InvalidFrame,
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
                                ErrorCode::InvalidSince,
                                format!("since must be an integer >= 0, got {n}"),
                            )))
                        }
                    },
                    Some(other) => {
                        return Err(with_agent(DecodeError::new(
                            ErrorCode::InvalidSince,
                            format!("since must be an integer >= 0, got {other}"),
                        )))
                    }
                };
                Ok(ClientEvent::Subscribe(Subscribe { agent_id, since }))
            }
            "unsubscribe" => Ok(ClientEvent::Unsubscribe(Unsubscribe { agent_id })),
            other => Err(with_agent(DecodeError::new(
                ErrorCode::UnknownEvent,
                format!("unknown event {other:?}: expected \"subscribe\" or \"unsubscribe\""),
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(code("not json"), ErrorCode::InvalidJson);
        assert_eq!(code("[1,2]"), ErrorCode::InvalidFrame);
        assert_eq!(code(r#"{"data":{}}"#), ErrorCode::InvalidFrame);
        assert_eq!(
            code(r#"{"event":"subscribe","data":5}"#),
            ErrorCode::InvalidFrame
        );
        assert_eq!(
            code(r#"{"event":"subscribe","data":{}}"#),
            ErrorCode::InvalidFrame
        );
        assert_eq!(
            code(r#"{"event":"subscribe","data":{"agentId":"x"}}"#),
            ErrorCode::InvalidId
        );
        let f = format!(r#"{{"event":"subscribe","data":{{"agentId":"{id}","since":-1}}}}"#);
        assert_eq!(code(&f), ErrorCode::InvalidSince);
        let f = format!(r#"{{"event":"subscribe","data":{{"agentId":"{id}","since":"3"}}}}"#);
        assert_eq!(code(&f), ErrorCode::InvalidSince);
        let f = format!(r#"{{"event":"subscribe","data":{{"agentId":"{id}","since":1.5}}}}"#);
        assert_eq!(code(&f), ErrorCode::InvalidSince);
        let f = format!(r#"{{"event":"dance","data":{{"agentId":"{id}"}}}}"#);
        let e = ClientEvent::decode(&f).unwrap_err();
        assert_eq!((e.code, e.agent_id), (ErrorCode::UnknownEvent, Some(id)));
    }
}
