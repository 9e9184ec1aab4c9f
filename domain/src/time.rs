//! Times that come from outside: the bounds of a query (`from`, `to`,
//! `as_of`), a tool's score `timestamp`, a backfill row's timestamp. One
//! rule for all of them, so that every time the engine accepts is one both
//! stores and every later query can hold:
//!
//! * RFC 3339 with an offset (`2026-05-01T10:00:00Z`,
//!   `2026-05-01T12:00:00+02:00`, fractions of a second allowed);
//! * an offset in whole minutes of at most ±15:59 ([`MAX_OFFSET_MINUTES`]):
//!   PostgreSQL refuses a larger one ("time zone displacement out of
//!   range"), and a score keeps the offset the tool sent;
//! * the date as written and the instant in UTC both in the years 0001 to
//!   9999: PostgreSQL has no year 0, and the engine's text forms of a time
//!   (read tables, SQLite, query bounds) have four-digit years, so
//!   `9999-12-31T23:59:59-10:00` (year 10000 in UTC) is refused as well.

use chrono::{DateTime, Datelike, FixedOffset, Utc};
use thiserror::Error;

/// The largest UTC offset accepted, in minutes: 15:59.
pub const MAX_OFFSET_MINUTES: i32 = 15 * 60 + 59;

/// The first and last year accepted, as written and in UTC.
pub const YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// Why a time is refused. The message completes a sentence that starts
/// with the field's name ("from is not ...").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TimeError {
    #[error("is not an RFC 3339 date-time with an offset, such as 2026-05-01T10:00:00Z")]
    NotRfc3339,
    #[error(
        "has a UTC offset beyond ±15:59 or not in whole minutes, which the grade store cannot hold"
    )]
    Offset,
    #[error("is outside the years 0001 to 9999, as written or in UTC")]
    Year,
}

/// Checks a time already parsed (by [`parse`] or by a tool-friendly
/// parser) against the rule of the module doc.
pub fn check(t: DateTime<FixedOffset>) -> Result<DateTime<FixedOffset>, TimeError> {
    let offset = t.offset().local_minus_utc();
    if offset % 60 != 0 || (offset / 60).abs() > MAX_OFFSET_MINUTES {
        return Err(TimeError::Offset);
    }
    if !YEARS.contains(&t.year()) || !YEARS.contains(&t.with_timezone(&Utc).year()) {
        return Err(TimeError::Year);
    }
    Ok(t)
}

/// Parses an RFC 3339 time and checks it, keeping its offset.
pub fn parse(s: &str) -> Result<DateTime<FixedOffset>, TimeError> {
    let t = DateTime::parse_from_rfc3339(s.trim()).map_err(|_| TimeError::NotRfc3339)?;
    check(t)
}

/// [`parse`], as the instant in UTC (for query bounds).
pub fn parse_utc(s: &str) -> Result<DateTime<Utc>, TimeError> {
    parse(s).map(|t| t.with_timezone(&Utc))
}

/// A moment a registrar asks about: an RFC 3339 time (checked as
/// [`parse`] does), or a date alone (`2026-05-01`), which means the end of
/// that day in UTC: the grades "as of 2026-05-01" are those once that day
/// is over.
pub fn parse_moment(s: &str) -> Result<DateTime<Utc>, TimeError> {
    match parse_utc(s) {
        Err(TimeError::NotRfc3339) => {}
        other => return other,
    }
    let day = chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| TimeError::NotRfc3339)?;
    let end = day
        .and_hms_micro_opt(23, 59, 59, 999_999)
        .ok_or(TimeError::NotRfc3339)?;
    check_utc(end.and_utc())
}

/// Checks an instant in UTC (a time given without an offset, taken as UTC).
pub fn check_utc(t: DateTime<Utc>) -> Result<DateTime<Utc>, TimeError> {
    check(t.fixed_offset()).map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_alone_is_the_end_of_that_day_in_utc() {
        assert_eq!(
            parse_moment("2026-05-01").map(|t| t.to_rfc3339()),
            Ok("2026-05-01T23:59:59.999999+00:00".to_string())
        );
        assert_eq!(
            parse_moment("2026-05-01T10:00:00+02:00").map(|t| t.to_rfc3339()),
            Ok("2026-05-01T08:00:00+00:00".to_string())
        );
        assert_eq!(parse_moment("2026-13-01"), Err(TimeError::NotRfc3339));
        assert_eq!(parse_moment("yesterday"), Err(TimeError::NotRfc3339));
    }

    #[test]
    fn ordinary_times_are_accepted_with_their_offset() {
        for s in [
            "2026-05-01T10:00:00Z",
            "2026-05-01T10:00:00.123456Z",
            "2026-05-01T12:00:00+02:00",
            "2026-05-01T00:00:00+15:59",
            "2026-05-01T00:00:00-15:59",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999Z",
            " 2026-05-01T10:00:00Z ",
        ] {
            let t = parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(t, DateTime::parse_from_rfc3339(s.trim()).unwrap());
        }
        assert_eq!(
            parse("2026-05-01T12:00:00+02:00")
                .unwrap()
                .offset()
                .local_minus_utc(),
            7200
        );
    }

    #[test]
    fn offsets_beyond_15_59_are_refused() {
        for s in [
            "9999-12-31T23:59:59-23:59",
            "2026-05-01T00:00:00+16:00",
            "2026-05-01T00:00:00-16:00",
            "2026-05-01T00:00:00+23:59",
        ] {
            assert_eq!(parse(s), Err(TimeError::Offset), "{s}");
        }
    }

    #[test]
    fn years_outside_0001_to_9999_are_refused_as_written_or_in_utc() {
        assert_eq!(parse("0000-01-01T00:00:00Z"), Err(TimeError::Year));
        // Year 10000 in UTC.
        assert_eq!(parse("9999-12-31T23:59:59-10:00"), Err(TimeError::Year));
        // Year 0 in UTC.
        assert_eq!(parse("0001-01-01T00:00:00+01:00"), Err(TimeError::Year));
        assert_eq!(parse("10000-01-01T00:00:00Z"), Err(TimeError::NotRfc3339));
        assert_eq!(parse("-0001-01-01T00:00:00Z"), Err(TimeError::NotRfc3339));
        let far = DateTime::parse_from_rfc3339("2026-05-01T00:00:00Z").unwrap()
            + chrono::TimeDelta::days(365 * 9000);
        assert_eq!(check(far), Err(TimeError::Year));
        assert_eq!(check_utc(far.with_timezone(&Utc)), Err(TimeError::Year));
    }

    #[test]
    fn offsets_with_seconds_are_refused() {
        let t = DateTime::parse_from_rfc3339("2026-05-01T00:00:00Z")
            .unwrap()
            .with_timezone(&FixedOffset::east_opt(3600 + 30).unwrap());
        assert_eq!(check(t), Err(TimeError::Offset));
    }

    #[test]
    fn what_is_not_rfc_3339_is_said_so() {
        for s in ["", "yesterday", "2026-05-01", "2026-05-01T10:00:00"] {
            assert_eq!(parse(s), Err(TimeError::NotRfc3339), "{s:?}");
        }
    }

    #[test]
    fn every_accepted_time_reads_back_from_its_text_forms() {
        for s in [
            "0001-01-01T00:00:00Z",
            "0001-01-01T15:59:00+15:59",
            "9999-12-31T23:59:59.999999Z",
            "9999-12-31T08:00:00-15:59",
        ] {
            let t = parse(s).unwrap();
            // As a score keeps it (with its offset) and as a bound is sent
            // (in UTC): both read back, with four-digit years.
            assert_eq!(DateTime::parse_from_rfc3339(&t.to_rfc3339()).unwrap(), t);
            let utc = t
                .with_timezone(&Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            assert_eq!(utc.find('-'), Some(4), "{utc}");
            assert_eq!(DateTime::parse_from_rfc3339(&utc).unwrap(), t);
        }
    }
}
