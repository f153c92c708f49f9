//! Event time and durations as written in pipeline files.
//!
//! Event time is epoch milliseconds. The dataflow's logical time is event time
//! coarsened down to a *granule* (see [`EventTime::coarsen`]) so that progress
//! tracking stays cheap while window boundaries, which are multiples of the
//! granule, stay exact.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Epoch milliseconds.
pub type EventTime = u64;

/// Rounds `ts` down to a multiple of `granule_ms` (which must be non-zero).
pub fn coarsen(ts: EventTime, granule_ms: u64) -> EventTime {
    ts - ts % granule_ms
}

/// A non-negative duration with millisecond resolution, written `"10s"`,
/// `"250ms"`, `"1m30s"`, `"2h"` or `"1d"` in pipeline files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DurationSpec {
    millis: u64,
}

/// Why a duration string did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "malformed duration {input:?}: {problem}; write a number followed by a unit (ms, s, m, h, d), e.g. \"10s\", \"500ms\" or \"1m30s\""
)]
pub struct DurationError {
    input: String,
    problem: &'static str,
}

impl DurationSpec {
    /// A duration of `millis` milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Self { millis }
    }

    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self { millis: secs * 1000 }
    }

    /// The duration in milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.millis
    }

    /// The duration as a [`std::time::Duration`].
    pub const fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.millis)
    }
}

impl FromStr for DurationSpec {
    type Err = DurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |problem| DurationError {
            input: input.to_owned(),
            problem,
        };
        let text = input.trim();
        if text.is_empty() {
            return Err(fail("it is empty"));
        }
        let mut millis: u64 = 0;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            if digits == 0 {
                return Err(fail("expected a number"));
            }
            let number: u64 = rest[..digits].parse().map_err(|_| fail("the number is too large"))?;
            rest = &rest[digits..];
            let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
            let unit = match &rest[..unit_len] {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "" => return Err(fail("the unit is missing")),
                _ => return Err(fail("unknown unit")),
            };
            rest = &rest[unit_len..];
            millis = number
                .checked_mul(unit)
                .and_then(|m| millis.checked_add(m))
                .ok_or_else(|| fail("the duration is too large"))?;
        }
        Ok(Self { millis })
    }
}

impl fmt::Display for DurationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 5] = [
            (86_400_000, "d"),
            (3_600_000, "h"),
            (60_000, "m"),
            (1_000, "s"),
            (1, "ms"),
        ];
        if self.millis == 0 {
            return f.write_str("0s");
        }
        let mut left = self.millis;
        for (size, unit) in UNITS {
            if left >= size {
                write!(f, "{}{unit}", left / size)?;
                left %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for DurationSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_compounds() {
        let ms = |s: &str| s.parse::<DurationSpec>().unwrap().as_millis();
        assert_eq!(ms("250ms"), 250);
        assert_eq!(ms("10s"), 10_000);
        assert_eq!(ms("1m30s"), 90_000);
        assert_eq!(ms("2h"), 7_200_000);
        assert_eq!(ms("1d"), 86_400_000);
        assert_eq!(ms("0s"), 0);
    }

    #[test]
    fn rejects_malformed_durations_with_a_hint() {
        for bad in ["", "10", "s", "10x", "1.5s", "-1s", "10 s"] {
            let err = bad.parse::<DurationSpec>().unwrap_err().to_string();
            assert!(err.contains("e.g. \"10s\""), "{bad}: {err}");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in ["250ms", "10s", "1m30s", "2h", "1d", "1d1h1m1s1ms", "0s"] {
            let parsed: DurationSpec = text.parse().unwrap();
            assert_eq!(parsed.to_string(), text);
        }
    }

    #[test]
    fn coarsening_rounds_down() {
        assert_eq!(coarsen(1_234, 100), 1_200);
        assert_eq!(coarsen(1_200, 100), 1_200);
    }
}
