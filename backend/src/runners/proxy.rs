//! The proxy runner: `POST {proxyUrl}/agent/stream` and read its
//! Server-Sent Events — each default event's data is one line of the CLI's stream-json, `event: complete`
//! ends the run, `event: error` carries `{"error": "…"}`. The `X-Agent-Id` response header names the
//! proxy's process, stopped with `POST /agent/stop/{id}`.
//!
//! The POST is never retried: a retry would run the agent twice. That is also why this is not
//! `reqwest-eventsource`'s `EventSource` (which reconnects by design and hides the response headers):
//! it reads the response with `eventsource-stream`, the SSE parser that crate is built on.

use std::time::Duration;

use agentstream_wire::{ErrorCode, ErrorInfo};
use eventsource_stream::Eventsource;
use futures_util::future::{BoxFuture, FutureExt, LocalBoxFuture, Shared};
use futures_util::{Stream, StreamExt};
use serde_json::Value;

use super::{RunnerControl, RunnerEvent, RunnerExit, Started};

/// The longest error body of a failed POST that is quoted.
const MAX_QUOTED_BODY: usize = 2048;

/// What to ask the proxy for.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxySpec {
    /// `http://127.0.0.1:8000`, without a trailing slash.
    pub base_url: String,
    /// The original proxy's body (`runners::claude::proxy_body`).
    pub body: Value,
    /// A data line longer than this is cut and reported.
    pub max_line_bytes: usize,
    /// The run fails when the proxy sends nothing (no headers, no event) for this long.
    pub read_timeout: Duration,
}

/// Starts the run. Fails when the proxy cannot be reached or does not answer 2xx.
pub async fn start(spec: ProxySpec) -> Result<Started, ErrorInfo> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| {
            ErrorInfo::new(
                ErrorCode::ProxyUnreachable,
                format!("cannot build an HTTP client: {e}"),
            )
        })?;
    let url = format!("{}/agent/stream", spec.base_url);
    let request = client
        .post(&url)
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .json(&spec.body)
        .send();
    let response = tokio::time::timeout(spec.read_timeout, request)
        .await
        .map_err(|_| silent(&url, spec.read_timeout))?
        .map_err(|e| {
            ErrorInfo::new(
                ErrorCode::ProxyUnreachable,
                format!("cannot reach the Claude proxy at {url} (setting claude.proxy_url): {e}"),
            )
        })?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        let quoted: String = body.chars().take(MAX_QUOTED_BODY).collect();
        return Err(ErrorInfo::new(
            ErrorCode::ProxyHttpError,
            format!(
                "the Claude proxy at {url} answered {status}: {}",
                quoted.trim()
            ),
        ));
    }
    let agent_id = response
        .headers()
        .get("x-agent-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let events = events(
        response.bytes_stream().eventsource(),
        spec.max_line_bytes,
        spec.read_timeout,
        url,
    );
    Ok(Started {
        events: Box::pin(events),
        control: Some(Box::new(ProxyControl {
            stopping: None,
            client,
            base_url: spec.base_url,
            agent_id,
        })),
    })
}

/// The error of a proxy that stopped talking.
fn silent(url: &str, read_timeout: Duration) -> ErrorInfo {
    ErrorInfo::new(
        ErrorCode::ProxyTimeout,
        format!(
            "the Claude proxy at {url} sent nothing for {} ms (setting claude.proxy_read_timeout_ms)",
            read_timeout.as_millis()
        ),
    )
}

/// Maps SSE events to runner events; the run ends at `complete`, `error`, a broken stream, an end
/// without `complete` (a failure: the proxy was cut off), or `read_timeout` without an event.
fn events<S, E>(
    sse: S,
    max_line_bytes: usize,
    read_timeout: Duration,
    url: String,
) -> impl Stream<Item = RunnerEvent>
where
    S: Stream<Item = Result<eventsource_stream::Event, E>> + Unpin,
    E: std::fmt::Display,
{
    futures_util::stream::unfold(Some(sse), move |state| {
        let url = url.clone();
        async move {
            let mut sse = state?;
            loop {
                let exit = |error: Option<ErrorInfo>| {
                    Some((RunnerEvent::Exited(RunnerExit { error }), None))
                };
                let Ok(next) = tokio::time::timeout(read_timeout, sse.next()).await else {
                    return exit(Some(silent(&url, read_timeout)));
                };
                match next {
                    None => {
                        return exit(Some(ErrorInfo::new(
                            ErrorCode::StreamCut,
                            "the Claude proxy's stream ended before its `complete` event",
                        )))
                    }
                    Some(Err(e)) => {
                        return exit(Some(ErrorInfo::new(
                            ErrorCode::StreamCut,
                            format!("the Claude proxy's stream broke: {e}"),
                        )))
                    }
                    Some(Ok(event)) => match event.event.as_str() {
                        "complete" => return exit(None),
                        "error" => {
                            let message = serde_json::from_str::<Value>(&event.data)
                                .ok()
                                .and_then(|v| {
                                    v.get("error").and_then(Value::as_str).map(str::to_owned)
                                })
                                .unwrap_or(event.data);
                            return exit(Some(ErrorInfo::new(ErrorCode::ProxyError, message)));
                        }
                        "" | "message" if !event.data.is_empty() => {
                            let line = if event.data.len() > max_line_bytes {
                                let mut cut = max_line_bytes;
                                while !event.data.is_char_boundary(cut) {
                                    cut -= 1;
                                }
                                RunnerEvent::Oversized {
                                    len: event.data.len(),
                                    head: event.data[..cut].to_owned(),
                                }
                            } else {
                                RunnerEvent::Line(event.data)
                            };
                            return Some((line, Some(sse)));
                        }
                        _ => continue,
                    },
                }
            }
        }
    })
}

/// Stops a proxy run: asks the proxy to stop its process; dropping the stream closes the connection.
struct ProxyControl {
    client: reqwest::Client,
    base_url: String,
    agent_id: Option<String>,
    /// The stop under way: a second stop (an interrupt's, then the run's end) waits for the same one,
    /// which the proxy confirms once its CLI has exited — the next run must not resume the session
    /// while that CLI still writes to it.
    stopping: Option<Shared<BoxFuture<'static, ()>>>,
}

impl RunnerControl for ProxyControl {
    fn stop(&mut self) -> LocalBoxFuture<'static, ()> {
        if let Some(stopping) = &self.stopping {
            return Box::pin(stopping.clone());
        }
        let request = self.agent_id.as_ref().map(|id| {
            self.client
                .post(format!("{}/agent/stop/{id}", self.base_url))
                .timeout(Duration::from_secs(10))
                .send()
        });
        let stopping = async move {
            if let Some(request) = request {
                if let Err(e) = request.await {
                    tracing::warn!(error = %e, "the Claude proxy did not confirm the stop");
                }
            }
        }
        .boxed()
        .shared();
        self.stopping = Some(stopping.clone());
        Box::pin(stopping)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(body: &'static str) -> Vec<RunnerEvent> {
        let chunks = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(
            bytes::Bytes::from(body),
        )]);
        events(
            chunks.eventsource(),
            10,
            Duration::from_secs(5),
            "http://proxy".into(),
        )
        .collect()
        .await
    }

    #[tokio::test]
    async fn default_events_are_lines_and_complete_ends() {
        let got = run("data: {\"a\":1}\n\nevent: message\ndata: {\"b\":2}\n\nevent: ping\ndata: x\n\nevent: complete\ndata: {\"status\":\"success\"}\n\ndata: late\n\n").await;
        assert_eq!(
            got,
            vec![
                RunnerEvent::Line("{\"a\":1}".into()),
                RunnerEvent::Line("{\"b\":2}".into()),
                RunnerEvent::Exited(RunnerExit { error: None }),
            ]
        );
    }

    #[tokio::test]
    async fn error_event_and_cut_stream_fail() {
        let got = run("data: {}\n\nevent: error\ndata: {\"error\": \"CLI crashed\"}\n\n").await;
        assert_eq!(
            got[1],
            RunnerEvent::Exited(RunnerExit {
                error: Some(ErrorInfo::new(ErrorCode::ProxyError, "CLI crashed"))
            })
        );
        let got = run("data: {}\n\n").await;
        let RunnerEvent::Exited(RunnerExit { error: Some(e) }) = &got[1] else {
            panic!("{got:?}")
        };
        assert_eq!(e.code, "stream_cut");
    }

    #[tokio::test]
    async fn a_proxy_that_goes_silent_fails_the_run_after_the_read_timeout() {
        let first = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(
            bytes::Bytes::from("data: {}\n\n"),
        )]);
        let silent = first.chain(futures_util::stream::pending());
        let got: Vec<RunnerEvent> = events(
            Box::pin(silent).eventsource(),
            10,
            Duration::from_millis(50),
            "http://proxy".into(),
        )
        .collect()
        .await;
        let RunnerEvent::Exited(RunnerExit { error: Some(e) }) = &got[1] else {
            panic!("{got:?}")
        };
        assert_eq!(e.code, "proxy_timeout");
        assert!(e.message.contains("claude.proxy_read_timeout_ms"), "{e:?}");
    }

    #[tokio::test]
    async fn long_data_is_cut() {
        let got = run("data: 0123456789abcdef\n\nevent: complete\ndata: {}\n\n").await;
        assert_eq!(
            got[0],
            RunnerEvent::Oversized {
                len: 16,
                head: "0123456789".into()
            }
        );
    }

    #[tokio::test]
    async fn an_unreachable_proxy_names_the_setting() {
        let spec = ProxySpec {
            base_url: "http://127.0.0.1:9".into(),
            body: serde_json::json!({}),
            max_line_bytes: 10,
            read_timeout: Duration::from_secs(5),
        };
        let e = start(spec).await.err().unwrap();
        assert_eq!(e.code, "proxy_unreachable");
        assert!(e.message.contains("claude.proxy_url"));
    }
}
