//! Reading `timestamp,value` CSV files (the Numenta Anomaly Benchmark's layout).
//!
//! Timestamps are `YYYY-MM-DD HH:MM:SS` (UTC, `T` also accepted) or integer epoch
//! milliseconds. A first line that is not data is a header. Every error names the file
//! and the line.

use std::path::Path;

/// One point: event time (epoch ms) and value.
pub type Point = (i64, f64);

/// Why a series file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SeriesCsvError {
    /// The file could not be opened or read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A row is malformed.
    #[error("{file}:{line}: {problem}")]
    Row {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the row.
        problem: String,
    },
}

/// Reads the points of `path`, which must have strictly increasing timestamps.
pub fn read_series(path: &Path) -> Result<Vec<Point>, SeriesCsvError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| SeriesCsvError::Io {
        file: file.clone(),
        source,
    })?;
    let mut points: Vec<Point> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let row = raw.trim();
        if row.is_empty() {
            continue;
        }
        let fail = |problem: String| SeriesCsvError::Row {
            file: file.clone(),
            line,
            problem,
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

/// Parses `YYYY-MM-DD HH:MM:SS[.fff]` (UTC) or epoch milliseconds.
fn parse_timestamp(text: &str) -> Result<i64, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| "epoch milliseconds out of range".to_string());
    }
    let malformed = || "expected YYYY-MM-DD HH:MM:SS or epoch milliseconds".to_string();
    let (date, time) = text.split_once([' ', 'T']).ok_or_else(malformed)?;
    let numbers = |s: &str, sep: char| -> Result<Vec<u64>, String> {
        s.split(sep)
            .map(|p| p.parse::<u64>().map_err(|_| malformed()))
            .collect()
    };
    let (time, millis) = match time.split_once('.') {
        Some((t, fraction)) => {
            let digits: String = fraction.chars().chain("000".chars()).take(3).collect();
            (t, digits.parse::<u64>().map_err(|_| malformed())?)
        }
        None => (time, 0),
    };
    let (d, t) = (numbers(date, '-')?, numbers(time, ':')?);
    let [year, month, day]: [u64; 3] = d.try_into().map_err(|_| malformed())?;
    let [hour, minute, second]: [u64; 3] = t.try_into().map_err(|_| malformed())?;
    if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err("date out of range (years 1970–9999)".into());
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err("time of day out of range".into());
    }
    let days = days_from_civil(year as i64, month as i64, day as i64);
    Ok(((days * 24 + hour as i64) * 60 + minute as i64) * 60_000 + second as i64 * 1000 + millis as i64)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
