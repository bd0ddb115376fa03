//! The start-up rule on where the server may listen: a non-loopback address without an API token would
//! let anyone who reaches the port run agents — and through them commands — on this machine, so it is
//! refused unless `server.allow_public_without_token` says the network is trusted.

use std::net::ToSocketAddrs;

use super::SecurityError;

/// Whether `host` (an IP, `localhost`, a name) resolves to loopback addresses only. A name that does not
/// resolve is not loopback (binding it fails later anyway).
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match (host, 0).to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<_> = addrs.collect();
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
        }
        Err(_) => false,
    }
}

/// Refuses to expose the API without a token, unless told to.
pub fn check(host: &str, has_token: bool, allow_public: bool) -> Result<(), SecurityError> {
    if has_token || is_loopback(host) {
        return Ok(());
    }
    if allow_public {
        tracing::warn!(
            %host,
            "listening on a non-loopback address WITHOUT an API token \
             (server.allow_public_without_token): anyone who can reach the port can run agents here"
        );
        return Ok(());
    }
    Err(SecurityError::PublicWithoutToken {
        host: host.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_and_addresses() {
        for local in ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"] {
            assert!(is_loopback(local), "{local}");
        }
        for public in ["0.0.0.0", "::", "192.168.1.10", "8.8.8.8"] {
            assert!(!is_loopback(public), "{public}");
        }
    }

    #[test]
    fn public_needs_a_token_or_the_override() {
        assert!(check("127.0.0.1", false, false).is_ok());
        assert!(check("0.0.0.0", true, false).is_ok());
        assert!(check("0.0.0.0", false, true).is_ok());
        let err = check("0.0.0.0", false, false).unwrap_err().to_string();
        assert!(err.contains("AGENTSTREAM__AUTH__TOKEN"), "{err}");
    }
}
