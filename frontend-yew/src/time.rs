//! Human-friendly times from the protocol's RFC 3339 timestamps.

/// Milliseconds since the epoch of an RFC 3339 timestamp (via the browser's `Date`).
pub fn millis(timestamp: &str) -> Option<f64> {
    let ms = js_sys::Date::parse(timestamp);
    (!ms.is_nan()).then_some(ms)
}

/// "5s ago", "3m ago", "2h ago", "4d ago".
pub fn age(timestamp: &str) -> String {
    let Some(then) = millis(timestamp) else {
        return String::new();
    };
    ago(((js_sys::Date::now() - then) / 1000.0).max(0.0) as u64)
}

/// Formats an age in seconds.
pub fn ago(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s ago"),
        s if s < 3600 => format!("{}m ago", s / 60),
        s if s < 86_400 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    }
}

/// `HH:MM:SS` of a timestamp (UTC, as stored).
pub fn clock(timestamp: &str) -> &str {
    timestamp.get(11..19).unwrap_or(timestamp)
}

/// A duration in ms as "850 ms", "12.3 s", "4m 05s".
pub fn duration(ms: i64) -> String {
    match ms {
        ms if ms < 1000 => format!("{ms} ms"),
        ms if ms < 60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        ms => format!("{}m {:02}s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(ago(5), "5s ago");
        assert_eq!(ago(125), "2m ago");
        assert_eq!(ago(7300), "2h ago");
        assert_eq!(clock("2026-11-24T10:30:00.123Z"), "10:30:00");
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(12_345), "12.3 s");
        assert_eq!(duration(245_000), "4m 05s");
    }
}
