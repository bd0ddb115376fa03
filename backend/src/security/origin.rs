//! Which web pages may talk to the API: the server's own origin, and those of `server.allowed_origins`.
//! A browser names the page's origin in `Origin` (always on a WebSocket upgrade and on a POST or
//! DELETE), so a page of another site cannot drive the API of a server it can reach — launching agents
//! through a `no-cors` POST, or reading events over a hijacked WebSocket. Without a token, the `Host`
//! header must name this machine too, so that DNS rebinding cannot make another site "same-origin".

use std::net::IpAddr;

use super::SecurityError;

/// Where a request comes from, as far as `Origin` tells.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No `Origin`: not a browser page's cross-site request (curl, scripts, same-origin GETs).
    Absent,
    /// The page is this server's own.
    SameOrigin,
    /// A page of an allowed other origin: answered with CORS headers naming it.
    Allowed,
    /// Any other page (including the opaque origin `null`): refused.
    Foreign,
}

/// The allowed origins of the settings, normalized (lower case, no trailing `/`); a malformed one or a
/// wildcard is refused at start-up.
pub fn parse_allowed(origins: &[String]) -> Result<Vec<String>, SecurityError> {
    origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .map(|o| {
            let normalized = o.trim_end_matches('/').to_ascii_lowercase();
            match authority(&normalized) {
                Some(a) if !a.is_empty() && !a.contains(['/', '*', '?', '#', '@']) => {
                    Ok(normalized)
                }
                _ => Err(SecurityError::BadOrigin(o.to_owned())),
            }
        })
        .collect()
}

/// The `host[:port]` of an `http(s)://host[:port]` origin.
fn authority(origin: &str) -> Option<&str> {
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
}

/// Judges an `Origin` value against the request's own `Host` and the allowed list.
pub fn judge(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> Verdict {
    let Some(origin) = origin else {
        return Verdict::Absent;
    };
    let origin = origin.trim().to_ascii_lowercase();
    if let (Some(own), Some(host)) = (authority(&origin), host) {
        if own.eq_ignore_ascii_case(host.trim()) {
            return Verdict::SameOrigin;
        }
    }
    if allowed.contains(&origin) {
        Verdict::Allowed
    } else {
        Verdict::Foreign
    }
}

/// Whether a `Host` header names this machine in a way DNS rebinding cannot fake: an IP literal,
/// `localhost` (or a name under `.localhost`), or the host of an allowed origin. No header (HTTP/1.0):
/// not a browser.
pub fn is_local_host(host: Option<&str>, allowed: &[String]) -> bool {
    let Some(host) = host.map(str::trim) else {
        return true;
    };
    let host = host.to_ascii_lowercase();
    if allowed
        .iter()
        .filter_map(|o| authority(o))
        .any(|a| a == host || a.split(':').next() == Some(host.as_str()))
    {
        return true;
    }
    let name = if let Some(rest) = host.strip_prefix('[') {
        // An IPv6 literal, `[::1]:3000`.
        return rest
            .split(']')
            .next()
            .is_some_and(|ip| ip.parse::<IpAddr>().is_ok());
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host.as_str(), |(name, _)| name)
    };
    name == "localhost" || name.ends_with(".localhost") || name.parse::<IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_judged_against_the_host_and_the_list() {
        let allowed = parse_allowed(&["https://App.example.com/".to_owned()]).unwrap();
        assert_eq!(allowed, vec!["https://app.example.com".to_owned()]);
        let host = Some("127.0.0.1:3000");
        assert_eq!(judge(None, host, &allowed), Verdict::Absent);
        assert_eq!(
            judge(Some("http://127.0.0.1:3000"), host, &allowed),
            Verdict::SameOrigin
        );
        assert_eq!(
            judge(Some("https://app.example.com"), host, &allowed),
            Verdict::Allowed
        );
        for foreign in [
            "http://evil.example",
            "null",
            "http://127.0.0.1:3001",
            "http://127.0.0.1:3000.evil.example",
            "https://app.example.com.evil.example",
            "",
        ] {
            assert_eq!(
                judge(Some(foreign), host, &allowed),
                Verdict::Foreign,
                "{foreign}"
            );
        }
    }

    #[test]
    fn wildcards_and_malformed_origins_are_refused() {
        for bad in [
            "*",
            "https://*.example.com",
            "example.com",
            "https://a.com/path",
            "ftp://a",
        ] {
            assert!(parse_allowed(&[bad.to_owned()]).is_err(), "{bad}");
        }
        assert!(parse_allowed(&[String::new()]).unwrap().is_empty());
    }

    #[test]
    fn only_names_rebinding_cannot_fake_are_local() {
        for ok in [
            "127.0.0.1:3000",
            "localhost:3000",
            "LOCALHOST",
            "[::1]:3000",
            "app.localhost",
            "10.0.0.2:80",
        ] {
            assert!(is_local_host(Some(ok), &[]), "{ok}");
        }
        for bad in [
            "evil.example:3000",
            "localhost.evil.example",
            "127.0.0.1.nip.io:3000",
            "[evil]:1",
        ] {
            assert!(!is_local_host(Some(bad), &[]), "{bad}");
        }
        let allowed = parse_allowed(&["https://agents.example.com".to_owned()]).unwrap();
        assert!(is_local_host(Some("agents.example.com"), &allowed));
    }
}
