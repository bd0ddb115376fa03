//! Scenarios: what a marker asks the server to do, as a typed [`Scenario`] with validated
//! parameters.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::marker::Marker;

/// Largest `n=` accepted; the answer is built in memory before it is sent.
const MAX_DELTAS: usize = 1_000_000;

/// Why a marker's parameters could not be used; answered as an HTTP 400 so the test sees it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScenarioError {
    /// A numeric parameter was not a number in the accepted range.
    #[error("scenario parameter {key}={value} is not valid: {reason}")]
    BadParam {
        /// Parameter name.
        key: String,
        /// The value as written.
        value: String,
        /// What was expected.
        reason: &'static str,
    },
}

/// The HTTP error scenarios, with the status and Anthropic error type each one answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpErrorKind {
    /// 500 `api_error`.
    Internal,
    /// 529 `overloaded_error`.
    Overloaded,
    /// 401 `authentication_error`.
    Authentication,
    /// 429 `rate_limit_error`.
    RateLimit,
    /// 400 `invalid_request_error`.
    InvalidRequest,
}

impl HttpErrorKind {
    /// Maps a scenario name (`err500`, ...) to its kind.
    fn from_name(name: &str) -> Option<HttpErrorKind> {
        Some(match name {
            "err500" => HttpErrorKind::Internal,
            "err529" => HttpErrorKind::Overloaded,
            "err401" => HttpErrorKind::Authentication,
            "err429" => HttpErrorKind::RateLimit,
            "err400" => HttpErrorKind::InvalidRequest,
            _ => return None,
        })
    }

    /// HTTP status code the real API uses for this error.
    pub fn status(self) -> u16 {
        match self {
            HttpErrorKind::Internal => 500,
            HttpErrorKind::Overloaded => 529,
            HttpErrorKind::Authentication => 401,
            HttpErrorKind::RateLimit => 429,
            HttpErrorKind::InvalidRequest => 400,
        }
    }

    /// The `error.type` of the JSON body.
    pub fn error_type(self) -> &'static str {
        match self {
            HttpErrorKind::Internal => "api_error",
            HttpErrorKind::Overloaded => "overloaded_error",
            HttpErrorKind::Authentication => "authentication_error",
            HttpErrorKind::RateLimit => "rate_limit_error",
            HttpErrorKind::InvalidRequest => "invalid_request_error",
        }
    }

    /// The `error.message` of the JSON body (the CLI shows it in its result line).
    pub fn message(self) -> &'static str {
        match self {
            HttpErrorKind::Internal => "Internal server error",
            HttpErrorKind::Overloaded => "Overloaded",
            HttpErrorKind::Authentication => "invalid x-api-key",
            HttpErrorKind::RateLimit => {
                "Number of request tokens has exceeded your per-minute rate limit"
            }
            HttpErrorKind::InvalidRequest => "messages: fake invalid request",
        }
    }
}

/// What the server should do for one request, decided from the marker.
#[derive(Debug, Clone, PartialEq)]
pub enum Scenario {
    /// A short text answer split into deltas of `chunk` characters. Also used for unknown names.
    Hello {
        /// Characters per text delta.
        chunk: usize,
    },
    /// `n` one-word text deltas (`long`, and `slow` with other defaults).
    Long {
        /// Number of deltas.
        n: usize,
    },
    /// Turn 1 calls Bash with `cmd`; after the tool result, a short answer quoting it.
    Tool {
        /// The shell command to request.
        cmd: String,
    },
    /// Like `Tool`, but the Read tool on `file`.
    Read {
        /// Absolute path to read.
        file: String,
    },
    /// Turn 1 calls the Agent tool, whose prompt carries `[[scenario:hello chunk=4]]`.
    Subagent,
    /// A thinking block (thinking + signature deltas), then text.
    Thinking,
    /// Text, then `stop_reason: max_tokens`.
    MaxTokens,
    /// A message with no content blocks.
    Empty,
    /// Short text, then `stop_reason: refusal`.
    Refusal,
    /// An HTTP error for the first `fail_first` attempts (all attempts when `None`), then hello.
    HttpError {
        /// Which error.
        kind: HttpErrorKind,
        /// How many attempts fail before the scenario answers like hello.
        fail_first: Option<u32>,
        /// Value of the `retry-after` header, if any.
        retry_after: Option<String>,
    },
    /// `n` text deltas, of which half are sent before an SSE `error` event.
    MidstreamError {
        /// Number of deltas the full answer would have.
        n: usize,
    },
    /// `n` text deltas, of which half are sent before the connection is cut.
    Drop {
        /// Number of deltas the full answer would have.
        n: usize,
    },
}

/// A scenario plus the pacing that applies to any of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    /// The scenario name in effect (`hello` once a `fail_first` error has failed enough).
    pub name: String,
    /// What to answer.
    pub scenario: Scenario,
    /// Pause after each text delta (`delay_ms=`), so tests can interrupt a stream.
    pub delay: Duration,
}

impl Script {
    /// Interprets a marker; fails when a parameter cannot be parsed.
    pub fn from_marker(marker: &Marker) -> Result<Script, ScenarioError> {
        let p = Params(&marker.params);
        let scenario = match marker.name.as_str() {
            "long" => Scenario::Long { n: p.count(2000)? },
            "slow" => Scenario::Long { n: p.count(2000)? },
            "tool" => Scenario::Tool {
                cmd: p.string_or("cmd", "echo hi"),
            },
            "read" => Scenario::Read {
                file: p.string_or("file", "/etc/os-release"),
            },
            "subagent" => Scenario::Subagent,
            "thinking" => Scenario::Thinking,
            "max_tokens" => Scenario::MaxTokens,
            "empty" => Scenario::Empty,
            "refusal" => Scenario::Refusal,
            "midstream_error" => Scenario::MidstreamError { n: p.count(50)? },
            "drop" => Scenario::Drop { n: p.count(50)? },
            name => match HttpErrorKind::from_name(name) {
                Some(kind) => Scenario::HttpError {
                    kind,
                    fail_first: match p.u32_or("fail_first", 0)? {
                        0 => None,
                        k => Some(k),
                    },
                    retry_after: marker.params.get("retry_after").cloned(),
                },
                None => Scenario::Hello { chunk: p.chunk()? },
            },
        };
        let default_delay = if marker.name == "slow" { 10.0 } else { 0.0 };
        Ok(Script {
            name: marker.name.clone(),
            scenario,
            delay: p.delay_or(default_delay)?,
        })
    }

    /// The plain hello answer, used once a `fail_first` error scenario has failed enough times.
    pub fn hello_from(marker: &Marker) -> Result<Script, ScenarioError> {
        let p = Params(&marker.params);
        Ok(Script {
            name: "hello".to_owned(),
            scenario: Scenario::Hello { chunk: p.chunk()? },
            delay: p.delay_or(0.0)?,
        })
    }
}

/// Typed access to marker parameters, reporting bad values as [`ScenarioError`]; shared with the
/// Responses API (`openai.rs`), whose scenarios differ but whose parameters read the same.
pub(crate) struct Params<'a>(pub(crate) &'a BTreeMap<String, String>);

impl Params<'_> {
    /// A string parameter with a default.
    pub(crate) fn string_or(&self, key: &str, default: &str) -> String {
        self.0
            .get(key)
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    }

    /// A non-negative integer parameter with a default.
    pub(crate) fn usize_or(&self, key: &str, default: usize) -> Result<usize, ScenarioError> {
        match self.0.get(key) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| bad(key, v, "a whole number")),
        }
    }

    /// `n=`: a number of deltas, capped so a typo cannot exhaust memory.
    pub(crate) fn count(&self, default: usize) -> Result<usize, ScenarioError> {
        let n = self.usize_or("n", default)?;
        if n > MAX_DELTAS {
            let v = self.0.get("n").map(String::as_str).unwrap_or_default();
            return Err(bad("n", v, "at most 1000000"));
        }
        Ok(n)
    }

    /// A non-negative 32-bit integer parameter with a default.
    pub(crate) fn u32_or(&self, key: &str, default: u32) -> Result<u32, ScenarioError> {
        match self.0.get(key) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| bad(key, v, "a whole number")),
        }
    }

    /// `chunk=`: characters per hello delta, at least 1.
    pub(crate) fn chunk(&self) -> Result<usize, ScenarioError> {
        let chunk = self.usize_or("chunk", 6)?;
        if chunk == 0 {
            let v = self.0.get("chunk").map(String::as_str).unwrap_or("0");
            return Err(bad("chunk", v, "at least 1"));
        }
        Ok(chunk)
    }

    /// `delay_ms=`: milliseconds (fractions allowed) between deltas.
    pub(crate) fn delay_or(&self, default_ms: f64) -> Result<Duration, ScenarioError> {
        let ms = match self.0.get("delay_ms") {
            None => default_ms,
            Some(v) => v
                .trim()
                .parse::<f64>()
                .map_err(|_| bad("delay_ms", v, "a number of milliseconds"))?,
        };
        Duration::try_from_secs_f64(ms / 1000.0)
            .map_err(|_| bad("delay_ms", &ms.to_string(), "between 0 and a sane maximum"))
    }

    /// A duration in seconds (fractions allowed), e.g. the silence of the Responses `stall`.
    pub(crate) fn secs_or(&self, key: &str, default_s: f64) -> Result<Duration, ScenarioError> {
        let s = match self.0.get(key) {
            None => default_s,
            Some(v) => v
                .trim()
                .parse::<f64>()
                .map_err(|_| bad(key, v, "a number of seconds"))?,
        };
        Duration::try_from_secs_f64(s)
            .map_err(|_| bad(key, &s.to_string(), "between 0 and a sane maximum"))
    }
}

/// Builds a [`ScenarioError::BadParam`].
fn bad(key: &str, value: &str, reason: &'static str) -> ScenarioError {
    ScenarioError::BadParam {
        key: key.to_owned(),
        value: value.to_owned(),
        reason,
    }
}

/// Unit tests of this module's pure functions.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::marker::parse_marker;

    /// Unusable parameters are reported rather than guessed.
    #[test]
    fn bad_params_are_errors() {
        let m = parse_marker("[[scenario:long n=lots]]").unwrap();
        assert!(Script::from_marker(&m).is_err());
        let m = parse_marker("[[scenario:hello chunk=0]]").unwrap();
        assert!(Script::from_marker(&m).is_err());
        let m = parse_marker("[[scenario:long n=1000001]]").unwrap();
        assert!(Script::from_marker(&m).is_err());
        let m = parse_marker("[[scenario:long delay_ms=-3]]").unwrap();
        assert!(Script::from_marker(&m).is_err());
    }

    /// `slow` is `long` with a 10 ms delay.
    #[test]
    fn slow_is_long_with_a_delay() {
        let s = Script::from_marker(&parse_marker("[[scenario:slow n=5]]").unwrap()).unwrap();
        assert_eq!(s.scenario, Scenario::Long { n: 5 });
        assert_eq!(s.delay, Duration::from_millis(10));
    }
}
