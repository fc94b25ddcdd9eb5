//! Time parsing and formatting in the forms users and the seeds use (`YYYY-MM-DD`, `START:END`).

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

use super::ParseError;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Seconds since the Unix epoch with a fraction, as the seeds' `timestamp` fields carry.
pub fn unix_seconds_now() -> f64 {
    now_ms() as f64 / 1000.0
}

/// Parses `YYYY-MM-DD` (midnight UTC), `YYYY-MM-DDTHH:MM[:SS]` (UTC, optional `Z`), RFC 3339, or
/// epoch milliseconds.
pub fn parse_date_or_time_ms(s: &str) -> Result<i64, ParseError> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN)).timestamp_millis());
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Ok(dt.timestamp_millis());
    }
    let bare = s.trim_end_matches('Z');
    for fmt in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(bare, fmt) {
            return Ok(Utc.from_utc_datetime(&dt).timestamp_millis());
        }
    }
    Err(ParseError::Time(s.to_owned()))
}

/// Parses the seeds' `time_range` (`2024-08-01:2024-08-02`) into `[start, end)` milliseconds.
/// Either side may also be a full timestamp; the separator is the colon that follows a date.
pub fn parse_time_range(s: &str) -> Result<(i64, i64), ParseError> {
    let bad = || ParseError::TimeRange(s.to_owned());
    // Split on the ':' that is not part of a time of day: try every colon, keep the first split
    // where both halves parse.
    for (idx, _) in s.match_indices(':') {
        let (a, b) = (&s[..idx], &s[idx + 1..]);
        if let (Ok(start), Ok(end)) = (parse_date_or_time_ms(a), parse_date_or_time_ms(b)) {
            return if start < end { Ok((start, end)) } else { Err(bad()) };
        }
    }
    Err(bad())
}

/// Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_ms(ms: i64) -> String {
    match Utc.timestamp_millis_opt(ms) {
        chrono::LocalResult::Single(dt) => dt.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        _ => format!("{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dates_and_ranges() {
        assert_eq!(parse_date_or_time_ms("2021-04-02").unwrap(), 1_617_321_600_000);
        assert_eq!(parse_date_or_time_ms("2021-04-02T00:01Z").unwrap(), 1_617_321_660_000);
        assert_eq!(parse_time_range("2024-08-01:2024-08-02").unwrap(), (1_722_470_400_000, 1_722_556_800_000));
        assert_eq!(
            parse_time_range("2024-08-01T10:00:2024-08-01T11:00").unwrap(),
            (1_722_506_400_000, 1_722_510_000_000)
        );
        assert!(parse_time_range("2024-08-02:2024-08-01").is_err());
        assert!(parse_time_range("yesterday").is_err());
        assert_eq!(format_ms(1_617_321_600_000), "2021-04-02T00:00:00Z");
    }
}
