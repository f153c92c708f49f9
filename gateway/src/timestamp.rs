//! Times in requests and responses: Unix milliseconds rendered as RFC 3339,
//! and the instants requests may give — epoch milliseconds or ISO-8601 text.

use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{Date, OffsetDateTime, PrimitiveDateTime};

use crate::store::Millis;

/// `ms` as an RFC 3339 UTC timestamp (`2026-01-02T03:04:05.678Z`).
pub fn rfc3339(ms: Millis) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// A time a request gave as text that is neither epoch milliseconds nor ISO-8601.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is neither epoch milliseconds nor an ISO-8601 time; e.g. 1732345678000, \"2024-11-23T06:00:00Z\", \"2024-11-23T07:00:00+01:00\" or \"2024-11-23\""
)]
pub struct InvalidTime(pub String);

/// Parses a time given as text, in epoch milliseconds (negative before 1970):
/// a string of digits is epoch milliseconds; otherwise ISO-8601 — RFC 3339
/// (`2024-11-23T06:00:00.5Z`, `…+01:00`), the basic format
/// (`20241123T060000Z`), a date and time without offset (taken as UTC), or a
/// date alone (its midnight, UTC).
pub fn parse_instant(text: &str) -> Result<i128, InvalidTime> {
    let invalid = || InvalidTime(text.to_owned());
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<i128>().map_err(|_| invalid());
    }
    let instant = OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(text, &Iso8601::DEFAULT))
        .or_else(|_| PrimitiveDateTime::parse(text, &Iso8601::DEFAULT).map(PrimitiveDateTime::assume_utc))
        .or_else(|_| Date::parse(text, &Iso8601::DEFAULT).map(|date| date.midnight().assume_utc()))
        .map_err(|_| invalid())?;
    Ok(instant.unix_timestamp_nanos() / 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_utc_with_milliseconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn parses_epoch_millis_rfc3339_and_other_iso8601_forms() {
        let six = 1_732_341_600_000; // 2024-11-23T06:00:00Z
        for (text, want) in [
            ("1732341600000", six),
            ("2024-11-23T06:00:00Z", six),
            ("2024-11-23T06:00:00.250Z", six + 250),
            ("2024-11-23T07:00:00+01:00", six),
            ("2024-11-23t06:00:00z", six),
            ("20241123T060000Z", six),
            ("2024-11-23T06:00:00", six),
            ("2024-11-23T06:00", six),
            ("2024-11-23", six - 6 * 3_600_000),
            ("1969-12-31T23:59:59Z", -1000),
        ] {
            assert_eq!(parse_instant(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refuses_anything_else_and_says_what_it_takes() {
        for bad in [
            "",
            "yesterday",
            "-5",
            "1.5",
            "2024-13-01T00:00:00Z",
            "2024-11-23T25:00:00Z",
            " 2024-11-23",
        ] {
            let error = parse_instant(bad).unwrap_err();
            assert!(error.to_string().contains("ISO-8601"), "{bad}: {error}");
        }
    }
}
