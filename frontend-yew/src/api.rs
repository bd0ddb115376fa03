//! The REST calls the app makes (same origin), with the API token when there is one and the protocol's
//! error form decoded; a 401 asks for the token (`auth`).

use agentstream_wire::{
    Agent, AgentMatch, AgentTypeInfo, CreateAgentRequest, CreateWebhookRequest, ErrorBody,
    ErrorInfo, PermissionAnswer, SendMessageRequest, StoredMessage, UpdateWebhookRequest,
    UsageReport, Webhook,
};
use gloo_net::http::{Method, RequestBuilder, Response};
use uuid::Uuid;

use crate::auth;

/// What a failed call says: the server's error form, or a transport failure.
pub type ApiResult<T> = Result<T, ErrorInfo>;

/// An error of the app's own (no server answer to show): its code is not one of the protocol's.
fn local_error(code: &str, message: String) -> ErrorInfo {
    ErrorInfo {
        code: code.to_owned(),
        message,
    }
}

fn network(e: gloo_net::Error) -> ErrorInfo {
    local_error("network", format!("the server could not be reached: {e}"))
}

async fn decode<T: serde::de::DeserializeOwned>(response: Response) -> ApiResult<T> {
    if response.ok() {
        response
            .json::<T>()
            .await
            .map_err(|e| local_error("bad_response", format!("unexpected answer: {e}")))
    } else {
        Err(error_of(response).await)
    }
}

async fn error_of(response: Response) -> ErrorInfo {
    let status = response.status();
    if status == 401 {
        auth::unauthorized();
    }
    match response.json::<ErrorBody>().await {
        Ok(body) => body.error,
        Err(_) => local_error("http_error", format!("the server answered {status}")),
    }
}

/// A request carrying the token, when there is one.
fn authorized(method: Method, url: &str) -> RequestBuilder {
    let builder = RequestBuilder::new(url).method(method);
    match auth::authorization() {
        Some(value) => builder.header("Authorization", &value),
        None => builder,
    }
}

/// A cheap call whose only use is its 401 when a token is needed: the nil id names no agent, so the
/// answer is a small 404 otherwise.
pub async fn probe() {
    let _ = get_agent(Uuid::nil()).await;
}

/// `GET /api/agent-types`.
pub async fn agent_types() -> ApiResult<Vec<AgentTypeInfo>> {
    decode(
        authorized(Method::GET, "/api/agent-types")
            .send()
            .await
            .map_err(network)?,
    )
    .await
}

/// `GET /api/agents`.
pub async fn list_agents() -> ApiResult<Vec<Agent>> {
    decode(
        authorized(Method::GET, "/api/agents")
            .send()
            .await
            .map_err(network)?,
    )
    .await
}

/// `GET /api/agents?q=…&limit=N[&before=id]`: the agents whose prompt or messages hold the query's
/// words, newest first, the page after `before`.
pub async fn search_agents(
    query: &str,
    limit: usize,
    before: Option<Uuid>,
) -> ApiResult<Vec<AgentMatch>> {
    let q = String::from(js_sys::encode_uri_component(query));
    let after = before.map(|id| format!("&before={id}")).unwrap_or_default();
    decode(
        authorized(
            Method::GET,
            &format!("/api/agents?q={q}&limit={limit}{after}"),
        )
        .send()
        .await
        .map_err(network)?,
    )
    .await
}

/// `GET /api/agents/{id}`.
pub async fn get_agent(id: Uuid) -> ApiResult<Agent> {
    decode(
        authorized(Method::GET, &format!("/api/agents/{id}"))
            .send()
            .await
            .map_err(network)?,
    )
    .await
}

/// `GET /api/agents/{id}/messages?since=N`.
pub async fn messages_since(id: Uuid, since: i64) -> ApiResult<Vec<StoredMessage>> {
    let url = format!("/api/agents/{id}/messages?since={since}");
    decode(
        authorized(Method::GET, &url)
            .send()
            .await
            .map_err(network)?,
    )
    .await
}

/// `POST /api/agents`.
pub async fn launch(request: &CreateAgentRequest) -> ApiResult<Agent> {
    let response = authorized(Method::POST, "/api/agents")
        .json(request)
        .map_err(network)?
        .send()
        .await
        .map_err(network)?;
    decode(response).await
}

/// `DELETE /api/agents/{id}[?purge=true]`.
pub async fn delete(id: Uuid, purge: bool) -> ApiResult<()> {
    let url = format!("/api/agents/{id}{}", if purge { "?purge=true" } else { "" });
    let response = authorized(Method::DELETE, &url)
        .send()
        .await
        .map_err(network)?;
    if response.ok() {
        Ok(())
    } else {
        Err(error_of(response).await)
    }
}

/// `POST /api/agents/{id}/messages`: a follow-up; the stored message.
pub async fn send_message(id: Uuid, content: &str) -> ApiResult<StoredMessage> {
    let body = SendMessageRequest {
        content: content.to_owned(),
    };
    let response = authorized(Method::POST, &format!("/api/agents/{id}/messages"))
        .json(&body)
        .map_err(network)?
        .send()
        .await
        .map_err(network)?;
    decode(response).await
}

/// `POST /api/agents/{id}/interrupt`: ends the current turn; the agent.
pub async fn interrupt(id: Uuid) -> ApiResult<Agent> {
    let response = authorized(Method::POST, &format!("/api/agents/{id}/interrupt"))
        .send()
        .await
        .map_err(network)?;
    decode(response).await
}

/// `POST /api/agents/{id}/permissions/{requestId}`: the stored answer.
pub async fn answer_permission(
    id: Uuid,
    request_id: &str,
    answer: &PermissionAnswer,
) -> ApiResult<StoredMessage> {
    let request_id = String::from(js_sys::encode_uri_component(request_id));
    let response = authorized(
        Method::POST,
        &format!("/api/agents/{id}/permissions/{request_id}"),
    )
    .json(answer)
    .map_err(network)?
    .send()
    .await
    .map_err(network)?;
    decode(response).await
}

/// `GET /api/usage[?from=…&to=…]`: usage per day and agent type (the server's last 30 days without a
/// range).
pub async fn usage(range: Option<(String, String)>) -> ApiResult<UsageReport> {
    let url = match range {
        Some((from, to)) => format!("/api/usage?from={from}&to={to}"),
        None => "/api/usage".to_owned(),
    };
    decode(
        authorized(Method::GET, &url)
            .send()
            .await
            .map_err(network)?,
    )
    .await
}

/// `GET /api/webhooks`.
pub async fn list_webhooks() -> ApiResult<Vec<Webhook>> {
    decode(
        authorized(Method::GET, "/api/webhooks")
            .send()
            .await
            .map_err(network)?,
    )
    .await
}

/// `POST /api/webhooks`.
pub async fn create_webhook(request: &CreateWebhookRequest) -> ApiResult<Webhook> {
    let response = authorized(Method::POST, "/api/webhooks")
        .json(request)
        .map_err(network)?
        .send()
        .await
        .map_err(network)?;
    decode(response).await
}

/// `PATCH /api/webhooks/{id}`.
pub async fn update_webhook(id: Uuid, change: &UpdateWebhookRequest) -> ApiResult<Webhook> {
    let response = authorized(Method::PATCH, &format!("/api/webhooks/{id}"))
        .json(change)
        .map_err(network)?
        .send()
        .await
        .map_err(network)?;
    decode(response).await
}

/// `DELETE /api/webhooks/{id}`.
pub async fn delete_webhook(id: Uuid) -> ApiResult<()> {
    let response = authorized(Method::DELETE, &format!("/api/webhooks/{id}"))
        .send()
        .await
        .map_err(network)?;
    if response.ok() {
        Ok(())
    } else {
        Err(error_of(response).await)
    }
}
