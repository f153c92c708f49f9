//! Unix milliseconds rendered as RFC 3339 for responses.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::store::Millis;

/// `ms` as an RFC 3339 UTC timestamp (`2026-01-02T03:04:05.678Z`).
pub fn rfc3339(ms: Millis) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_utc_with_milliseconds() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
