//! `agentstream watch <agent-id> --sse`: the same watch over Server-Sent Events
//! (`GET /api/agents/{id}/events`) instead of the WebSocket, for a network that does not pass WebSocket
//! upgrades. Each event is the WebSocket frame `{"event": <event:>, "data": <data:>}`, handed to the
//! same [`Follow`], so that the output and the end are the WebSocket mode's.
//!
//! Reconnecting is `reqwest-eventsource`'s: when the stream breaks (the server restarts, or cuts a client
//! that reads too slowly), its `EventSource` waits as [`Backoff`] says and asks again with
//! `Last-Event-ID`, the last sequence number it received, and the server sends what follows. [`Follow`]
//! drops any message at or below the last one shown, so that nothing is printed twice whatever point a
//! reconnect resumes from. This loop handles what the library gives up on: it opens a fresh stream at
//! `?since=<last shown>` after a busy or unavailable answer (429, 5xx), and after the 400 the server
//! gives a reconnect whose `Last-Event-ID` is empty (the library sends the id of the last event it got,
//! and an event without `id:`, such as `subscribed`, has an empty one). The watch stops with an error
//! once the server has been out of reach for [`MAX_OUTAGE`].

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use agentstream_wire::{AgentStatus, ErrorBody};
use futures_util::StreamExt;
use reqwest::header::{HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::{Response, StatusCode};
use reqwest_eventsource::retry::RetryPolicy;
use reqwest_eventsource::{Error as SseError, Event, EventSource, ReadyState};
use uuid::Uuid;

use super::watch::{Follow, WatchError};

/// The pause before the first reconnect of an outage; it doubles with each failed attempt.
const FIRST_RETRY: Duration = Duration::from_millis(250);
/// The longest pause between two attempts: a restarted server is found within this of listening.
const MAX_RETRY: Duration = Duration::from_secs(3);
/// How long the server may stay out of reach (no stream open) before the watch gives up.
pub const MAX_OUTAGE: Duration = Duration::from_secs(60);
/// The longest `Retry-After` honoured before reopening a stream after a 429 or 503.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// A TCP connection that is not up within this is an attempt failed (a host that drops packets would
/// otherwise hold an attempt for the system's minutes-long timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A stream that has said nothing for this long is taken as dead and reopened: the server sends a
/// comment every `websocket.heartbeat_interval_secs` (5 s by default), so only a peer that vanished
/// without closing the connection (a network cut, a machine gone to sleep) is this quiet.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Watches `agent` on the server at `base` (e.g. `http://127.0.0.1:3000`) over its event stream, from
/// after `since`, sending `token` as `Authorization: Bearer` when given. Prints what
/// [`super::watch::watch`] prints and ends as it does.
pub async fn watch(
    base: &str,
    agent: Uuid,
    since: i64,
    raw_json: bool,
    token: Option<&str>,
) -> Result<AgentStatus, WatchError> {
    if !base.starts_with("http://") && !base.starts_with("https://") {
        return Err(WatchError::Url {
            url: base.to_owned(),
            expected: "http:// or https://",
        });
    }
    let url = format!("{}/api/agents/{agent}/events", base.trim_end_matches('/'));
    let auth = match token {
        Some(token) => {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| WatchError::BadToken)?;
            value.set_sensitive(true);
            Some(value)
        }
        None => None,
    };
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .build()
        .map_err(WatchError::Client)?;

    let outage = Outage::default();
    let mut follow = Follow::new(agent, since, raw_json, std::io::stdout().lock());
    // Whether a stream ever opened: a server never reached is an error at once, as over the WebSocket.
    let mut reached = false;
    loop {
        // Where a fresh stream starts (at first `since` as given: a negative one is refused by the
        // server, 400 invalid_since, as over the WebSocket); the library's reconnects add
        // `Last-Event-ID`, which the server takes over `since`.
        let mut request = client.get(&url).query(&[("since", follow.last_seen())]);
        if let Some(auth) = &auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        let mut source = EventSource::new(request).map_err(|_| WatchError::NotRepeatable)?;
        source.set_retry_policy(Box::new(Backoff::new(outage.clone())));
        // Whether this stream opened: a 400 after that is the answer to its own reconnect.
        let mut opened = false;
        let pause = loop {
            let Some(item) = source.next().await else {
                // The library ends the stream only after an error that closed it, answered below.
                return Err(WatchError::Closed);
            };
            let error = match item {
                Ok(Event::Open) => {
                    opened = true;
                    reached = true;
                    outage.end();
                    continue;
                }
                Ok(Event::Message(event)) => {
                    if let Some(status) = follow.frame(&frame_of(&event.event, &event.data))? {
                        source.close();
                        return Ok(status);
                    }
                    continue;
                }
                Err(error) => error,
            };
            match error {
                SseError::InvalidStatusCode(status, response) => {
                    match answer(&url, status, response, opened, reached, &outage).await {
                        Answer::Reopen(pause) => break pause,
                        Answer::Fail(error) => return Err(error),
                    }
                }
                SseError::InvalidContentType(content_type, _) => {
                    return Err(WatchError::NotAnEventStream {
                        url,
                        content_type: String::from_utf8_lossy(content_type.as_bytes()).into(),
                    })
                }
                error if !reached => {
                    source.close();
                    return Err(WatchError::Unreachable { url, source: error });
                }
                // The library reconnects by itself after the pause `Backoff` gives.
                _ if source.ready_state() != ReadyState::Closed => {}
                error if outage.too_long() => {
                    return Err(WatchError::Lost {
                        url,
                        outage: MAX_OUTAGE,
                        source: error,
                    })
                }
                error => return Err(WatchError::Stream(error)),
            }
        };
        tokio::time::sleep(pause).await;
    }
}

/// What to do about an HTTP status other than 200.
enum Answer {
    /// Open a fresh stream at the last message shown, after this pause.
    Reopen(Duration),
    Fail(WatchError),
}

/// The meaning of a refused request: once a stream has been open (`reached`), a busy or unavailable
/// server (429, 5xx: a restart, a proxy whose upstream is away) is waited for like an unreachable one; a
/// 400 to the reconnect of a stream that had `opened` is the empty `Last-Event-ID` the library sends
/// (nothing else in the request changed); anything else is final, with the server's code and message
/// (401 as over the WebSocket), as is every refusal of the first request.
async fn answer(
    url: &str,
    status: StatusCode,
    response: Response,
    opened: bool,
    reached: bool,
    outage: &Outage,
) -> Answer {
    if status == StatusCode::UNAUTHORIZED {
        return Answer::Fail(WatchError::Unauthorized);
    }
    if status == StatusCode::BAD_REQUEST && opened {
        return Answer::Reopen(Duration::ZERO);
    }
    if reached && (status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()) {
        outage.begin();
        if outage.too_long() {
            return Answer::Fail(WatchError::Lost {
                url: url.to_owned(),
                outage: MAX_OUTAGE,
                source: SseError::InvalidStatusCode(status, response),
            });
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .map(Duration::from_secs);
        return Answer::Reopen(retry_after.unwrap_or(MAX_RETRY).min(MAX_RETRY_AFTER));
    }
    let text = response.text().await.unwrap_or_default();
    let (code, message) = match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => (body.error.code, body.error.message),
        // Not this server's error body (a proxy's page, say): the status says what it can.
        Err(_) => (
            format!("http_{}", status.as_u16()),
            status.canonical_reason().unwrap_or("error").to_owned(),
        ),
    };
    Answer::Fail(WatchError::Refused { code, message })
}

/// The WebSocket frame an event stands for: the server writes `event:` and `data:` from the frame's
/// `event` and `data`, so that `--json` prints the same line as over the WebSocket.
fn frame_of(event: &str, data: &str) -> String {
    format!(
        r#"{{"event":{},"data":{data}}}"#,
        serde_json::Value::from(event)
    )
}

/// When the current outage began: at the first failed attempt, until a stream opens again. Shared by
/// the watch's loop and every [`Backoff`] it gives a stream, so that an outage that spans a fresh
/// [`EventSource`] is counted whole.
#[derive(Clone, Default)]
struct Outage(Arc<Mutex<Option<Instant>>>);

impl Outage {
    /// When the outage began; it begins now if none is under way.
    fn begin(&self) -> Instant {
        // A panic elsewhere cannot leave an `Option<Instant>` half written: the value is still good.
        let mut began = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *began.get_or_insert_with(Instant::now)
    }

    fn too_long(&self) -> bool {
        self.begin().elapsed() >= MAX_OUTAGE
    }

    /// A stream opened.
    fn end(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// When the library reconnects: [`FIRST_RETRY`], doubling to at most [`MAX_RETRY`], and never again once
/// the outage has lasted `give_up_after`. By time rather than by a count of attempts: a server restart
/// takes a few seconds whatever the attempts, and the library gives every retry the number 1.
struct Backoff {
    outage: Outage,
    first: Duration,
    give_up_after: Duration,
}

impl Backoff {
    fn new(outage: Outage) -> Backoff {
        Backoff {
            outage,
            first: FIRST_RETRY,
            give_up_after: MAX_OUTAGE,
        }
    }
}

impl RetryPolicy for Backoff {
    fn retry(&self, _error: &SseError, last: Option<(usize, Duration)>) -> Option<Duration> {
        if self.outage.begin().elapsed() >= self.give_up_after {
            return None;
        }
        Some(match last {
            None => self.first,
            Some((_, pause)) => (pause * 2).min(MAX_RETRY),
        })
    }

    /// The server's `retry:` field, bounded like the rest (this server sends none).
    fn set_reconnection_time(&mut self, pause: Duration) {
        self.first = pause.min(MAX_RETRY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_the_websocket_frame_it_came_from() {
        let frame =
            r#"{"event":"agent:message","data":{"agentId":"a","message":{"content":"x\ny"}}}"#;
        assert_eq!(
            frame_of(
                "agent:message",
                r#"{"agentId":"a","message":{"content":"x\ny"}}"#
            ),
            frame
        );
        assert_eq!(frame_of("a\"b", "{}"), r#"{"event":"a\"b","data":{}}"#);
    }

    #[test]
    fn the_backoff_doubles_to_its_cap_and_gives_up_after_the_outage() {
        let error = || SseError::StreamEnded;
        let policy = Backoff::new(Outage::default());
        let mut last = None;
        let mut pauses = Vec::new();
        for _ in 0..6 {
            let pause = policy.retry(&error(), last).expect("within the outage");
            pauses.push(pause.as_millis());
            last = Some((1, pause));
        }
        assert_eq!(pauses, [250, 500, 1000, 2000, 3000, 3000]);

        let outage = Outage::default();
        let mut policy = Backoff::new(outage.clone());
        policy.give_up_after = Duration::ZERO;
        assert_eq!(policy.retry(&error(), None), None);
        // A stream that opens ends the outage; the next one is counted from its own start.
        outage.end();
        policy.give_up_after = Duration::from_secs(60);
        assert_eq!(policy.retry(&error(), None), Some(FIRST_RETRY));
    }
}
