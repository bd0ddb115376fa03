//! The conversation calls: follow-ups, interrupts, permission answers, and the waits built on them.

use agentstream_wire::{keys, EventType, StoredMessage};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{Fallible, TestServer, TIMEOUT};

impl TestServer {
    /// `POST /api/agents/{id}/messages` with any body; the raw response.
    pub async fn post_message_body(&self, id: Uuid, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/api/agents/{id}/messages")))
            .json(body)
            .send()
            .await
            .expect("POST messages")
    }

    /// Sends a follow-up; `Err` unless it is stored (202), else the stored message.
    pub async fn try_send(&self, id: Uuid, content: &str) -> Fallible<StoredMessage> {
        let response = self
            .client
            .post(self.url(&format!("/api/agents/{id}/messages")))
            .json(&json!({ "content": content }))
            .send()
            .await
            .map_err(|e| format!("send: {e}"))?;
        if response.status() != 202 {
            return Err(format!(
                "send answered {}: {}",
                response.status(),
                response.text().await.unwrap_or_default()
            ));
        }
        response.json().await.map_err(|e| format!("send: {e}"))
    }

    /// Sends a follow-up, which must be stored; the stored message.
    pub async fn send(&self, id: Uuid, content: &str) -> StoredMessage {
        self.try_send(id, content)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `POST /api/agents/{id}/interrupt`; the raw response.
    pub async fn interrupt(&self, id: Uuid) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/api/agents/{id}/interrupt")))
            .send()
            .await
            .expect("POST interrupt")
    }

    /// `POST /api/agents/{id}/permissions/{request}` with `body`; the raw response.
    pub async fn answer_permission(
        &self,
        id: Uuid,
        request: &str,
        body: &Value,
    ) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/api/agents/{id}/permissions/{request}")))
            .json(body)
            .send()
            .await
            .expect("POST permission answer")
    }

    /// Waits until the agent has stored `results` results (one per turn) and its turn has ended;
    /// returns its history.
    pub async fn wait_turns(&self, id: Uuid, results: usize) -> Vec<StoredMessage> {
        self.wait_results(id, 0, results).await
    }

    /// Waits until the turn started by the follow-up stored as `follow_up` has its result and the
    /// agent's run has ended; returns its history. (Whether a turn cut by a signal printed a result
    /// first is up to the agent: this counts only what came after the follow-up.)
    pub async fn wait_answer(&self, id: Uuid, follow_up: &StoredMessage) -> Vec<StoredMessage> {
        self.wait_results(id, follow_up.sequence_number, 1).await
    }

    async fn wait_results(&self, id: Uuid, after: i64, results: usize) -> Vec<StoredMessage> {
        let waited = tokio::time::timeout(TIMEOUT, async {
            loop {
                let history = self.messages(id, Some(after)).await;
                let done = history
                    .iter()
                    .filter(|m| EventType::of(&m.metadata) == Some(EventType::Result))
                    .count();
                assert!(done <= results, "more results than turns: {done}");
                if done == results && self.agent(id).await.status.is_terminal() {
                    // The status is stored after the last message: read the history once more.
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await;
        let history = self.messages(id, None).await;
        if waited.is_err() {
            let agent = self.agent(id).await;
            let tail: Vec<String> = history
                .iter()
                .rev()
                .take(8)
                .rev()
                .map(|m| format!("{} {:?} {:.120}", m.sequence_number, m.metadata, m.content))
                .collect();
            panic!(
                "the turns did not end: {results} result(s) after {after} awaited; the agent is {:?} \
                 ({:?}); the last of its {} messages:\n{}",
                agent.status,
                agent.error,
                history.len(),
                tail.join("\n")
            );
        }
        history
    }

    /// Waits for the agent's next permission request after `since`; returns its message.
    pub async fn wait_permission_request(&self, id: Uuid, since: i64) -> StoredMessage {
        tokio::time::timeout(TIMEOUT, async {
            loop {
                let asked = self
                    .messages(id, Some(since))
                    .await
                    .into_iter()
                    .find(|m| EventType::of(&m.metadata) == Some(EventType::PermissionRequest));
                if let Some(m) = asked {
                    return m;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("permission request wait timed out")
    }
}

/// The session ids an agent's turns reported, in order (one `system/init` per turn).
pub fn sessions(messages: &[StoredMessage]) -> Vec<String> {
    messages
        .iter()
        .filter(|m| m.metadata[keys::SUBTYPE] == "init")
        .map(|m| {
            m.metadata[keys::SESSION_ID]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

/// A permission request message's id.
pub fn request_id(message: &StoredMessage) -> String {
    message.metadata[keys::REQUEST_ID]
        .as_str()
        .expect("a permission request carries its requestId")
        .to_owned()
}
