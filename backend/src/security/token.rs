//! The API token: loaded and checked once at start-up (too short or unprintable is refused), kept only as
//! a SHA-256 digest, compared in constant time, and found in a request where each surface allows it.

use std::path::Path;

use actix_web::dev::ServiceRequest;
use actix_web::http::header;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::SecurityError;

/// Fewer characters than this is a token that can be guessed.
pub const MIN_TOKEN_CHARS: usize = 16;
/// More than this is not a token but a mistake (a whole file, say).
const MAX_TOKEN_CHARS: usize = 512;

/// The server's token. Holds its digest only, so that the secret is in memory once (in the settings)
/// and a comparison takes the same time whatever the length or content of what a client sent.
#[derive(Clone)]
pub struct ApiToken {
    digest: [u8; 32],
}

/// Written by hand: never print anything derived from the secret.
impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(<set>)")
    }
}

impl ApiToken {
    /// The token of the settings (`auth.token`, or the content of `auth.token_file`); `None` when both
    /// are empty.
    pub fn load(token: &str, token_file: &Path) -> Result<Option<ApiToken>, SecurityError> {
        let from_file = !token_file.as_os_str().is_empty();
        let secret = match (token.is_empty(), from_file) {
            (true, false) => return Ok(None),
            (false, true) => return Err(SecurityError::TwoTokens),
            (false, false) => token.to_owned(),
            (true, true) => std::fs::read_to_string(token_file)
                .map_err(|source| SecurityError::TokenFile {
                    path: token_file.to_path_buf(),
                    source,
                })?
                .trim()
                .to_owned(),
        };
        Self::new(&secret).map(Some)
    }

    /// A token from its text, if it is strong enough and can travel in a header and a URL unchanged.
    pub fn new(secret: &str) -> Result<ApiToken, SecurityError> {
        let chars = secret.chars().count();
        if chars < MIN_TOKEN_CHARS {
            return Err(SecurityError::WeakToken { chars });
        }
        if chars > MAX_TOKEN_CHARS || !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(SecurityError::BadTokenCharacters);
        }
        Ok(ApiToken {
            digest: Sha256::digest(secret.as_bytes()).into(),
        })
    }

    /// Whether `presented` is the token, in time independent of where they differ.
    pub fn verify(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest.ct_eq(&self.digest).into()
    }
}

/// What a request carries as a credential.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented {
    /// Nothing.
    Missing,
    /// `Authorization: Bearer <token>` (or, where allowed, `?token=`).
    Token(String),
    /// An `Authorization` header of another scheme (Basic, Token, …) or malformed.
    WrongScheme,
    /// `?token=` on a surface that does not take it (REST: URLs end up in logs and histories).
    QueryNotAccepted,
}

/// The credential of `req`. The header wins; the `token` query parameter counts only when
/// `query_allowed` (the WebSocket, whose browser API cannot set headers).
pub fn presented(req: &ServiceRequest, query_allowed: bool) -> Presented {
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let Ok(value) = value.to_str() else {
            return Presented::WrongScheme;
        };
        return match value.trim().split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                Presented::Token(token.trim().to_owned())
            }
            _ => Presented::WrongScheme,
        };
    }
    let query = actix_web::web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default();
    match query.into_iter().find(|(k, _)| k == "token") {
        Some((_, token)) if query_allowed => Presented::Token(token),
        Some(_) => Presented::QueryNotAccepted,
        None => Presented::Missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    const GOOD: &str = "0123456789abcdef0123";

    #[test]
    fn weak_and_unprintable_tokens_are_refused() {
        assert!(matches!(
            ApiToken::new("short"),
            Err(SecurityError::WeakToken { chars: 5 })
        ));
        assert!(matches!(
            ApiToken::new("with a space inside it"),
            Err(SecurityError::BadTokenCharacters)
        ));
        assert!(matches!(
            ApiToken::new("ümläüt-ümläüt-ümläüt"),
            Err(SecurityError::BadTokenCharacters)
        ));
        assert!(ApiToken::new(GOOD).is_ok());
    }

    #[test]
    fn only_the_exact_token_verifies() {
        let token = ApiToken::new(GOOD).unwrap();
        assert!(token.verify(GOOD));
        for wrong in [
            "",
            "0123456789abcdef012",
            "0123456789abcdef0124",
            "0123456789ABCDEF0123",
        ] {
            assert!(!token.verify(wrong), "{wrong}");
        }
        assert!(!format!("{token:?}").contains("0123"));
    }

    #[test]
    fn token_file_and_token_are_exclusive() {
        let file = std::env::temp_dir().join(format!("agentstream-token-{}", std::process::id()));
        std::fs::write(&file, format!("  {GOOD}\n")).unwrap();
        let loaded = ApiToken::load("", &file).unwrap().unwrap();
        assert!(loaded.verify(GOOD));
        assert!(matches!(
            ApiToken::load(GOOD, &file),
            Err(SecurityError::TwoTokens)
        ));
        let _ = std::fs::remove_file(&file);
        assert!(ApiToken::load("", Path::new("")).unwrap().is_none());
    }

    #[test]
    fn credentials_are_found_where_each_surface_allows_them() {
        let bearer = TestRequest::default()
            .insert_header(("authorization", "bearer abc"))
            .to_srv_request();
        assert_eq!(presented(&bearer, false), Presented::Token("abc".into()));
        let basic = TestRequest::default()
            .insert_header(("authorization", "Basic YWJjOmRlZg=="))
            .to_srv_request();
        assert_eq!(presented(&basic, true), Presented::WrongScheme);
        let query = TestRequest::with_uri("/ws?token=a%2Bb").to_srv_request();
        assert_eq!(presented(&query, true), Presented::Token("a+b".into()));
        assert_eq!(presented(&query, false), Presented::QueryNotAccepted);
        let none = TestRequest::default().to_srv_request();
        assert_eq!(presented(&none, true), Presented::Missing);
    }
}
