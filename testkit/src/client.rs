//! The REST calls tests and the benchmark make, and the waits built on them.

use std::time::Duration;

use agentstream_wire::{Agent, AgentStatus, StoredMessage, SyntheticConfig};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{Fallible, TestServer, TIMEOUT};

impl TestServer {
    /// GETs `path` and decodes its JSON body (panics, failing the test, on any error).
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON body")
    }

    /// POST /api/agents with any body; returns the raw response.
    pub async fn post_agent(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/agents"))
            .json(body)
            .send()
            .await
            .expect("POST /api/agents")
    }

    /// `DELETE /api/agents/{id}` (with `?purge=true` when `purge`).
    pub async fn delete_agent(&self, id: Uuid, purge: bool) -> reqwest::Response {
        let query = if purge { "?purge=true" } else { "" };
        self.client
            .delete(self.url(&format!("/api/agents/{id}{query}")))
            .send()
            .await
            .expect("DELETE")
    }

    /// Launches a synthetic agent with this prompt and configuration; `Err` unless it is created (201).
    pub async fn try_launch_synthetic(
        &self,
        prompt: &str,
        configuration: &SyntheticConfig,
    ) -> Fallible<Agent> {
        let body = json!({"type": "synthetic", "prompt": prompt, "configuration": configuration});
        let response = self
            .client
            .post(self.url("/api/agents"))
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("launch: {e}"))?;
        if response.status() != 201 {
            return Err(format!(
                "launch answered {}: {}",
                response.status(),
                response.text().await.unwrap_or_default()
            ));
        }
        response.json().await.map_err(|e| format!("launch: {e}"))
    }

    /// Launches a synthetic agent of `tokens` tokens `interval_ms` apart and returns it.
    pub async fn launch(&self, tokens: u64, interval_ms: u64) -> Agent {
        let configuration = SyntheticConfig {
            tokens: Some(tokens),
            interval_ms: Some(interval_ms),
            ..SyntheticConfig::default()
        };
        self.try_launch_synthetic("test", &configuration)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `GET /api/agents/{id}`, which must answer 200.
    pub async fn agent(&self, id: Uuid) -> Agent {
        let response = self
            .client
            .get(self.url(&format!("/api/agents/{id}")))
            .send()
            .await
            .expect("GET agent");
        assert_eq!(response.status(), 200);
        response.json().await.expect("agent json")
    }

    /// `GET /api/agents/{id}/messages`, optionally `?since=`, as the bytes of the answer read to the
    /// last one (a server's response time, as HTTP load generators count it; the caller parses after).
    pub async fn try_messages_body(&self, id: Uuid, since: Option<i64>) -> Fallible<bytes::Bytes> {
        let path = match since {
            Some(s) => format!("/api/agents/{id}/messages?since={s}"),
            None => format!("/api/agents/{id}/messages"),
        };
        let response = self
            .client
            .get(self.url(&path))
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        if response.status() != 200 {
            return Err(format!("GET {path} answered {}", response.status()));
        }
        response
            .bytes()
            .await
            .map_err(|e| format!("GET {path}: {e}"))
    }

    /// `GET /api/agents/{id}/messages`, optionally `?since=`, decoded.
    pub async fn try_messages(&self, id: Uuid, since: Option<i64>) -> Fallible<Vec<StoredMessage>> {
        let body = self.try_messages_body(id, since).await?;
        serde_json::from_slice(&body).map_err(|e| format!("messages of {id}: {e}"))
    }

    /// `GET /api/agents/{id}/messages`, optionally `?since=`; panics unless it answers 200 with messages.
    pub async fn messages(&self, id: Uuid, since: Option<i64>) -> Vec<StoredMessage> {
        self.try_messages(id, since)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Whether `GET /api/health` answers with success.
    pub async fn is_healthy(&self) -> bool {
        self.client
            .get(self.url("/api/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// Asserts `GET /api/health` answers with success.
    pub async fn assert_healthy(&self) {
        assert!(self.is_healthy().await, "GET /api/health failed");
    }

    /// Waits until the agent's status is terminal.
    pub async fn wait_finished(&self, id: Uuid) -> Agent {
        self.wait_status(id, |s| s.is_terminal()).await
    }

    /// Waits until the agent's status satisfies `pred`.
    pub async fn wait_status(&self, id: Uuid, pred: impl Fn(AgentStatus) -> bool) -> Agent {
        tokio::time::timeout(TIMEOUT, async {
            loop {
                let agent = self.agent(id).await;
                if pred(agent.status) {
                    return agent;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("agent status wait timed out")
    }

    /// Waits until at least `n` messages are stored.
    pub async fn wait_messages(&self, id: Uuid, n: usize) {
        tokio::time::timeout(TIMEOUT, async {
            while self.messages(id, None).await.len() < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("message wait timed out");
    }

    /// Launches `body` (`POST /api/agents`, which must take it) watched from a WebSocket, and runs it
    /// to its end: the agent, what the socket delivered (equal to REST's history, numbered from 1), and
    /// every event.
    pub async fn run_watched(
        &self,
        body: &Value,
    ) -> (
        Agent,
        Vec<StoredMessage>,
        Vec<agentstream_wire::ServerEvent>,
    ) {
        let mut ws = self.ws().await;
        let r = self.post_agent(body).await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
        let agent: Agent = r.json().await.expect("an agent");
        ws.subscribe(agent.id, Some(0)).await;
        let (messages, events) = ws.collect_until_complete(agent.id).await;
        let agent = self.wait_finished(agent.id).await;
        assert_eq!(
            self.messages(agent.id, None).await,
            messages,
            "REST and WebSocket agree"
        );
        crate::assert_contiguous(&messages, 1);
        (agent, messages, events)
    }

    /// Launches a `claude-code` agent with `prompt` and waits for its end (the server's
    /// `claude.cli_path` is usually a [`crate::fake_cli`]).
    pub async fn run_claude_to_end(&self, prompt: &str) -> Agent {
        let r = self
            .post_agent(&json!({"type": "claude-code", "prompt": prompt}))
            .await;
        assert_eq!(r.status(), 201);
        let agent: Agent = r.json().await.expect("agent json");
        self.wait_finished(agent.id).await
    }
}
