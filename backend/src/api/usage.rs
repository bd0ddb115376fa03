//! `GET /api/usage?from=YYYY-MM-DD&to=YYYY-MM-DD`: what agents used, per UTC day and agent type over a
//! range of days (inclusive). Read from the database, so every instance answers the same.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use agentstream_wire::ErrorCode;
use chrono::{Days, NaiveDate, Utc};

use super::AppState;
use crate::error::ApiError;
use crate::store;

/// The range without `from`: this many days, ending with `to`.
pub const DEFAULT_DAYS: u64 = 30;
/// The longest range one request may ask for.
pub const MAX_DAYS: u64 = 366;

/// `GET /api/usage`.
#[utoipa::path(
    get,
    path = "/api/usage",
    operation_id = "usage",
    summary = "Usage and cost, by agent type and by day",
    tag = "server",
    description = "What the agents' turns reported using (tokens, cost, turns, time) over a range of days \
                   (UTC): `to` defaults to today, `from` to the 30 days ending with `to`; at most 366 days.",
    params(crate::openapi::params::UsageRange),
    responses(
        (status = 200, description = "The totals, by type and by day.", body = agentstream_wire::UsageReport),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 500, response = crate::openapi::responses::StorageFailure),
    ),
)]
pub async fn usage(
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let today = Utc::now().date_naive();
    let (from, to) = range(
        query.get("from").map(String::as_str),
        query.get("to").map(String::as_str),
        today,
    )
    .map_err(|message| ApiError::bad_request(ErrorCode::InvalidQuery, message))?;
    Ok(HttpResponse::Ok().json(store::usage::report(&state.db, from, to).await?))
}

/// The range a query asks for: `to` defaults to `today`, `from` to the [`DEFAULT_DAYS`] days ending
/// with `to`; at most [`MAX_DAYS`] days, `from` not after `to`. The error says what is wrong.
pub fn range(
    from: Option<&str>,
    to: Option<&str>,
    today: NaiveDate,
) -> Result<(NaiveDate, NaiveDate), String> {
    let to = match to {
        Some(to) => date("to", to)?,
        None => today,
    };
    let from = match from {
        Some(from) => date("from", from)?,
        None => to
            .checked_sub_days(Days::new(DEFAULT_DAYS - 1))
            .unwrap_or(NaiveDate::MIN),
    };
    if from > to {
        return Err(format!("from ({from}) is after to ({to})"));
    }
    let days = (to - from).num_days() + 1;
    if days > MAX_DAYS as i64 {
        return Err(format!(
            "the range has {days} days; at most {MAX_DAYS} are answered at once"
        ));
    }
    Ok((from, to))
}

/// A `YYYY-MM-DD` date, exactly (no other form, no time).
fn date(name: &str, raw: &str) -> Result<NaiveDate, String> {
    let shaped = raw.len() == 10
        && raw.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    let bad = || format!("{name} must be a date as YYYY-MM-DD (UTC), not {raw:?}");
    if !shaped {
        return Err(bad());
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn the_default_range_is_the_last_thirty_days_through_today() {
        assert_eq!(
            range(None, None, d("2026-12-02")),
            Ok((d("2026-11-03"), d("2026-12-02")))
        );
        assert_eq!(
            range(None, Some("2026-01-10"), d("2026-12-02")),
            Ok((d("2025-12-12"), d("2026-01-10")))
        );
        assert_eq!(
            range(Some("2026-12-01"), None, d("2026-12-02")),
            Ok((d("2026-12-01"), d("2026-12-02")))
        );
        assert_eq!(
            range(Some("2026-12-02"), Some("2026-12-02"), d("2026-12-02")),
            Ok((d("2026-12-02"), d("2026-12-02")))
        );
    }

    #[test]
    fn bad_dates_reversed_and_overlong_ranges_are_refused() {
        let today = d("2026-12-02");
        for bad in [
            "2026-2-01",
            "2026-02-30",
            "20261201",
            "2026-12-01T00:00",
            "",
            "yesterday",
            "２０２６-12-01",
        ] {
            assert!(range(Some(bad), None, today).is_err(), "{bad:?}");
            assert!(range(None, Some(bad), today).is_err(), "{bad:?}");
        }
        let reversed = range(Some("2026-12-02"), Some("2026-12-01"), today);
        assert!(reversed.is_err_and(|e| e.contains("after")));
        assert!(range(Some("2025-01-01"), Some("2026-01-01"), today).is_ok());
        assert!(range(Some("2025-01-01"), Some("2026-01-02"), today)
            .is_err_and(|e| e.contains("367 days")));
        assert!(range(None, Some("0000-01-05"), today).is_ok());
    }
}
