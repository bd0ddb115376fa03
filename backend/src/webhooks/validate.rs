//! What a consumer may be registered with: an http(s) URL on an allowed host that is not this server,
//! a secret of bounded length, agent ids that are UUIDs (bounded in number), and event kinds of the
//! protocol. Each refusal is a 400 whose code and message name the field.

use std::net::IpAddr;

use agentstream_wire::{ErrorCode, WebhookEvent};
use reqwest::Url;
use url::Host;
use uuid::Uuid;

use crate::error::ApiError;

/// Longest URL accepted.
pub const MAX_URL_BYTES: usize = 2048;

/// Longest secret accepted.
pub const MAX_SECRET_BYTES: usize = 512;

/// What a URL is checked against.
#[derive(Clone, Debug)]
pub struct Rules {
    /// `webhooks.allowed_hosts`, lower case, without IPv6 brackets; empty: any host.
    pub allowed_hosts: Vec<String>,
    /// `webhooks.max_agent_ids`.
    pub max_agent_ids: usize,
    /// The address this server listens on (`server.host`) and its port.
    pub own_host: String,
    pub own_port: u16,
}

impl Rules {
    /// The rules of the settings, for a server listening on `own_port`.
    pub fn new(settings: &crate::configuration::Settings, own_port: u16) -> Rules {
        Rules {
            allowed_hosts: settings
                .webhooks
                .allowed_hosts
                .iter()
                .map(|h| bare(h))
                .filter(|h| !h.is_empty())
                .collect(),
            max_agent_ids: settings.webhooks.max_agent_ids,
            own_host: bare(&settings.server.host),
            own_port,
        }
    }

    /// The URL as it will be POSTed to.
    pub fn url(&self, raw: &str) -> Result<String, ApiError> {
        let wrong =
            |why: String| ApiError::bad_request(ErrorCode::InvalidUrl, format!("url: {why}"));
        if raw.len() > MAX_URL_BYTES {
            return Err(wrong(format!("longer than {MAX_URL_BYTES} bytes")));
        }
        let url = Url::parse(raw.trim()).map_err(|e| wrong(format!("not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(wrong(format!(
                "must be http or https, not {:?}",
                url.scheme()
            )));
        }
        let host = url.host().ok_or_else(|| wrong("has no host".to_owned()))?;
        let name = bare(&host.to_string());
        let local = match host {
            Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
            Host::Ipv4(ip) => ip.is_loopback() || ip.is_unspecified(),
            Host::Ipv6(ip) => ip.is_loopback() || ip.is_unspecified(),
        };
        let own = local || name == self.own_host || same_ip(&name, &self.own_host);
        if own && url.port_or_known_default() == Some(self.own_port) {
            return Err(wrong(
                "names this server itself: a consumer must be another program".to_owned(),
            ));
        }
        if !self.allowed_hosts.is_empty() && !self.allowed_hosts.contains(&name) {
            return Err(wrong(format!(
                "the host {name:?} is not in webhooks.allowed_hosts"
            )));
        }
        Ok(url.to_string())
    }

    /// The agent ids a consumer is limited to; `None`: every agent.
    pub fn agent_ids(&self, ids: Option<Vec<String>>) -> Result<Option<Vec<Uuid>>, ApiError> {
        let Some(ids) = ids else {
            return Ok(None);
        };
        let wrong = |why: String| {
            ApiError::bad_request(ErrorCode::InvalidAgentIds, format!("agentIds: {why}"))
        };
        if ids.len() > self.max_agent_ids {
            return Err(wrong(format!(
                "{} ids, at most {} (webhooks.max_agent_ids)",
                ids.len(),
                self.max_agent_ids
            )));
        }
        let mut out: Vec<Uuid> = Vec::with_capacity(ids.len());
        for id in &ids {
            let parsed = Uuid::parse_str(id).map_err(|_| {
                let shown: String = id.chars().take(64).collect();
                wrong(format!("{shown:?} is not a UUID"))
            })?;
            if !out.contains(&parsed) {
                out.push(parsed);
            }
        }
        Ok(Some(out))
    }
}

/// The secret signatures are keyed with.
pub fn secret(raw: String) -> Result<String, ApiError> {
    let wrong =
        |why: &str| ApiError::bad_request(ErrorCode::InvalidSecret, format!("secret: {why}"));
    if raw.is_empty() {
        return Err(wrong("must not be empty"));
    }
    if raw.len() > MAX_SECRET_BYTES {
        return Err(wrong(&format!("longer than {MAX_SECRET_BYTES} bytes")));
    }
    Ok(raw)
}

/// The event kinds a consumer gets; `None`: every kind.
pub fn events(names: Option<Vec<String>>) -> Result<Option<Vec<WebhookEvent>>, ApiError> {
    let Some(names) = names else {
        return Ok(None);
    };
    let mut out: Vec<WebhookEvent> = Vec::new();
    for name in &names {
        let event: WebhookEvent = name.parse().map_err(|_| {
            let shown: String = name.chars().take(64).collect();
            let known: Vec<&str> = WebhookEvent::ALL.iter().map(|e| e.as_str()).collect();
            ApiError::bad_request(
                ErrorCode::InvalidEvents,
                format!("events: {shown:?} is not one of {}", known.join(", ")),
            )
        })?;
        if !out.contains(&event) {
            out.push(event);
        }
    }
    Ok(Some(out))
}

/// A host name as compared: lower case, without IPv6 brackets.
fn bare(host: &str) -> String {
    host.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

/// Whether two host names are the same IP address.
fn same_ip(a: &str, b: &str) -> bool {
    matches!((a.parse::<IpAddr>(), b.parse::<IpAddr>()), (Ok(x), Ok(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allowed: &[&str]) -> Rules {
        Rules {
            allowed_hosts: allowed.iter().map(|h| bare(h)).collect(),
            max_agent_ids: 3,
            own_host: "127.0.0.1".into(),
            own_port: 3000,
        }
    }

    fn code(r: Result<impl std::fmt::Debug, ApiError>) -> String {
        r.expect_err("refused").code.as_str().to_owned()
    }

    #[test]
    fn a_url_must_be_http_on_an_allowed_host_and_not_this_server() {
        let any = rules(&[]);
        assert_eq!(
            any.url("http://127.0.0.1:9000/hook").unwrap(),
            "http://127.0.0.1:9000/hook"
        );
        assert!(any.url("https://hooks.example.com/x").is_ok());
        for bad in [
            "ftp://127.0.0.1:9000/",
            "not a url",
            "http://",
            "file:///etc/passwd",
            "http://127.0.0.1:3000/api/webhooks",
            "http://localhost:3000/",
            "http://LOCALHOST:3000/",
            "http://[::1]:3000/",
            "http://0.0.0.0:3000/",
            "http://127.1.2.3:3000/",
        ] {
            assert_eq!(code(any.url(bad)), "invalid_url", "{bad}");
        }
        assert_eq!(
            code(any.url(&format!("http://a.b/{}", "x".repeat(3000)))),
            "invalid_url"
        );
        let loopback = rules(&["127.0.0.1", "[::1]"]);
        assert!(loopback.url("http://127.0.0.1:9000/").is_ok());
        assert!(loopback.url("http://[::1]:9000/").is_ok());
        let refused = loopback.url("https://hooks.example.com/").unwrap_err();
        assert!(refused.message.starts_with("url:"), "{}", refused.message);
        assert!(refused.message.contains("allowed_hosts"));
    }

    #[test]
    fn secrets_agent_ids_and_events_are_bounded_and_named() {
        assert_eq!(code(secret(String::new())), "invalid_secret");
        assert_eq!(
            code(secret("s".repeat(MAX_SECRET_BYTES + 1))),
            "invalid_secret"
        );
        assert!(secret("s".repeat(MAX_SECRET_BYTES)).is_ok());
        let r = rules(&[]);
        assert_eq!(r.agent_ids(None).unwrap(), None);
        let id = Uuid::now_v7();
        assert_eq!(
            r.agent_ids(Some(vec![id.to_string(), id.to_string().to_uppercase()]))
                .unwrap(),
            Some(vec![id])
        );
        assert_eq!(
            code(r.agent_ids(Some(vec!["x".into()]))),
            "invalid_agent_ids"
        );
        assert_eq!(
            code(r.agent_ids(Some((0..4).map(|_| Uuid::now_v7().to_string()).collect()))),
            "invalid_agent_ids"
        );
        assert_eq!(
            events(Some(vec!["agent:status".into(), "agent:status".into()])).unwrap(),
            Some(vec![WebhookEvent::Status])
        );
        assert_eq!(
            code(events(Some(vec!["subscribed".into()]))),
            "invalid_events"
        );
    }
}
