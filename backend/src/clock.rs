//! Timestamps in the protocol's one format: RFC 3339, UTC, milliseconds, `Z` (`2026-11-24T10:30:00.123Z`).
//! Fixed width, so they also sort correctly as text in the database.

use chrono::{SecondsFormat, Utc};

/// Now, in the protocol's format.
pub fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn format_is_rfc3339_millis_utc() {
        let t = super::now();
        assert_eq!(t.len(), "2026-11-24T10:30:00.123Z".len(), "{t}");
        assert!(t.ends_with('Z'));
        assert_eq!(&t[19..20], ".");
    }
}
