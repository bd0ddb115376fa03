//! A Server-Sent Events client for the tests of `/api/agents/{id}/events` and `/api/events`: reads the
//! stream as it comes, event by event, as `EventSource` parses it (`event:`, `id:`, `data:`, comments).

use std::time::Duration;

use serde_json::Value;

use crate::{TestServer, TIMEOUT};

/// One event of the stream.
#[derive(Clone, Debug, PartialEq)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: Value,
}

/// What the stream gave next.
#[derive(Clone, Debug, PartialEq)]
pub enum SseItem {
    Event(SseEvent),
    /// A comment line (`: …`), without its colon.
    Comment(String),
    /// The server ended the stream.
    End,
}

/// An open event stream.
pub struct SseStream {
    response: reqwest::Response,
    buffer: String,
}

impl TestServer {
    /// `GET path` with `headers`; the raw response (for statuses and errors).
    pub async fn sse_response(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("GET an event stream")
    }

    /// Opens the event stream at `path`; it must answer 200 `text/event-stream`.
    pub async fn sse(&self, path: &str, headers: &[(&str, &str)]) -> SseStream {
        let response = self.sse_response(path, headers).await;
        assert_eq!(response.status(), 200, "GET {path}");
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert_eq!(kind, "text/event-stream", "GET {path}");
        SseStream {
            response,
            buffer: String::new(),
        }
    }
}

impl SseStream {
    /// The next event or comment, or the end; panics after [`TIMEOUT`] of silence.
    pub async fn next(&mut self) -> SseItem {
        self.next_within(TIMEOUT)
            .await
            .unwrap_or_else(|| panic!("no event within {TIMEOUT:?}"))
    }

    /// [`Self::next`], `None` after `wait` of silence.
    pub async fn next_within(&mut self, wait: Duration) -> Option<SseItem> {
        loop {
            if let Some(item) = self.parse_one() {
                return Some(item);
            }
            match tokio::time::timeout(wait, self.response.chunk()).await {
                Err(_) => return None,
                Ok(Ok(Some(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None)) | Ok(Err(_)) => return Some(SseItem::End),
            }
        }
    }

    /// The next event, skipping comments; panics at the end of the stream.
    pub async fn next_event(&mut self) -> SseEvent {
        loop {
            match self.next().await {
                SseItem::Event(e) => return e,
                SseItem::Comment(_) => {}
                SseItem::End => panic!("the stream ended"),
            }
        }
    }

    /// Events until (and with) the first whose name is `until`.
    pub async fn events_until(&mut self, until: &str) -> Vec<SseEvent> {
        let mut events = Vec::new();
        loop {
            let e = self.next_event().await;
            let done = e.event == until;
            events.push(e);
            if done {
                return events;
            }
        }
    }

    /// One whole event or comment block from the buffer, if there is one.
    fn parse_one(&mut self) -> Option<SseItem> {
        let end = self.buffer.find("\n\n")?;
        let block: String = self.buffer.drain(..end + 2).collect();
        let (mut event, mut id, mut data) = (String::from("message"), None, String::new());
        let mut comment = None;
        for line in block.lines() {
            if let Some(text) = line.strip_prefix(':') {
                comment = Some(text.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("event: ") {
                event = v.to_owned();
            } else if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data.push_str(v);
            }
        }
        if data.is_empty() {
            return Some(match comment {
                Some(c) => SseItem::Comment(c),
                None => return self.parse_one(),
            });
        }
        let data = serde_json::from_str(&data)
            .unwrap_or_else(|e| panic!("data is not JSON ({e}): {data}"));
        Some(SseItem::Event(SseEvent { event, id, data }))
    }
}
