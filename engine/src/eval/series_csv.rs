//! Reading `timestamp,value` CSV files for the forecast backtest.
//!
//! Timestamps are `YYYY-MM-DD HH:MM:SS` (UTC, `T` also accepted; parsed as NAB's
//! files are, by [`csv::parse_timestamp`]) or integer epoch milliseconds. A first
//! line that is not data is a header. Every error names the file and the line
//! ([`CsvError`]).

use std::path::Path;

use super::csv::{self, CsvError};

/// One point: event time (epoch ms) and value.
pub type Point = (i64, f64);

/// Reads the points of `path`, which must have strictly increasing timestamps.
pub fn read_series(path: &Path) -> Result<Vec<Point>, CsvError> {
    let text = std::fs::read_to_string(path).map_err(|source| CsvError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut points: Vec<Point> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let row = raw.trim();
        if row.is_empty() {
            continue;
        }
        let fail = |reason: String| CsvError::Row {
            path: path.to_owned(),
            line,
            reason,
        };
        let Some((ts_text, value_text)) = row.split_once(',') else {
            return Err(fail(format!("expected `timestamp,value`, found {row:?}")));
        };
        if index == 0 && value_text.trim().parse::<f64>().is_err() {
            continue; // the header
        }
        let ts = parse_timestamp(ts_text.trim()).map_err(|p| fail(format!("timestamp {ts_text:?}: {p}")))?;
        let value: f64 = value_text
            .trim()
            .parse()
            .map_err(|_| fail(format!("value {value_text:?} is not a number")))?;
        if !value.is_finite() {
            return Err(fail(format!("value {value_text:?} is not finite")));
        }
        if let Some(&(previous, _)) = points.last()
            && ts <= previous
        {
            return Err(fail(format!("timestamp {ts_text:?} is not after the previous row's")));
        }
        points.push((ts, value));
    }
    Ok(points)
}

/// Parses epoch milliseconds, or `YYYY-MM-DD HH:MM:SS[.fff]` (UTC) as NAB's files write it.
fn parse_timestamp(text: &str) -> Result<i64, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| "epoch milliseconds out of range".to_string());
    }
    csv::parse_timestamp(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_both_forms() {
        assert_eq!(parse_timestamp("1970-01-01 00:00:00"), Ok(0));
        assert_eq!(parse_timestamp("2014-04-01 00:05:00"), Ok(1_396_310_700_000));
        assert_eq!(parse_timestamp("2000-02-29T12:00:00.5"), Ok(951_825_600_500));
        assert_eq!(parse_timestamp("1396310700000"), Ok(1_396_310_700_000));
        assert!(parse_timestamp("2014-13-01 00:00:00").is_err());
        assert!(parse_timestamp("yesterday").is_err());
    }

    #[test]
    fn errors_name_file_and_line() {
        let dir = std::env::temp_dir().join(format!("pulse-series-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases = [
            (
                "timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,abc\n",
                ":3: value",
            ),
            ("timestamp,value\n2014-04-01 00:00:00,NaN\n", ":2: value"),
            (
                "timestamp,value\n2014-04-01 00:05:00,1\n2014-04-01 00:00:00,2\n",
                ":3: timestamp",
            ),
            ("timestamp,value\n2014-04-01,1\n", ":2: timestamp"),
            ("timestamp,value\n2014-04-01 00:00:00;1\n", ":2: expected"),
        ];
        for (i, (text, expected)) in cases.iter().enumerate() {
            let path = dir.join(format!("case{i}.csv"));
            std::fs::write(&path, text).unwrap();
            let error = read_series(&path).unwrap_err().to_string();
            assert!(error.contains(&format!("case{i}.csv{expected}")), "{error}");
        }
        let good = dir.join("good.csv");
        std::fs::write(&good, "timestamp,value\n1970-01-01 00:00:01,2.5\n").unwrap();
        assert_eq!(read_series(&good).unwrap(), vec![(1000, 2.5)]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
