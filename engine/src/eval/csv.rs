//! Reading and writing NAB's CSV files: `timestamp,value` data files and
//! `timestamp,value,anomaly_score[,...]` result files.
//!
//! Every error names the file and the line, so a malformed row in a corpus
//! of thousands of files is found at once.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// A CSV file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A row (or the header) is malformed.
    #[error("{path}:{line}: {reason}")]
    Row {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// One row of a NAB data file.
#[derive(Clone, Debug, PartialEq)]
pub struct DataRow {
    /// The timestamp as written in the file (results repeat it verbatim).
    pub timestamp: String,
    /// The timestamp, epoch milliseconds (UTC).
    pub ts_ms: i64,
    /// The value as written in the file (results repeat it verbatim).
    pub value_text: String,
    /// The value. May be NaN or infinite if the file says so; the detector
    /// rejects those with an error naming the row.
    pub value: f64,
}

/// One row of a NAB results file: a timestamp and the detector's score.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoredRow {
    /// The timestamp, epoch milliseconds (UTC).
    pub ts_ms: i64,
    /// The anomaly score in [0, 1].
    pub score: f64,
}

/// Parses `YYYY-MM-DD HH:MM:SS[.ffffff]` (or with a `T`) as UTC epoch milliseconds.
pub fn parse_timestamp(text: &str) -> Result<i64, String> {
    let bad = || format!("timestamp {text:?} is not YYYY-MM-DD HH:MM:SS");
    let text = text.trim();
    let bytes = text.as_bytes();
    if bytes.len() < 19 || bytes[4] != b'-' || bytes[7] != b'-' || !matches!(bytes[10], b' ' | b'T') {
        return Err(bad());
    }
    if bytes[13] != b':' || bytes[16] != b':' {
        return Err(bad());
    }
    let number = |range: std::ops::Range<usize>| -> Result<i64, String> {
        let part = &text[range];
        if part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse::<i64>().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return Err(format!("timestamp {text:?} is out of range"));
    }
    let mut millis = 0;
    if bytes.len() > 19 {
        let fraction = text[19..].strip_prefix('.').ok_or_else(bad)?;
        if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let mut digits = fraction
            .bytes()
            .take(3)
            .map(|b| i64::from(b - b'0'))
            .collect::<Vec<_>>();
        digits.resize(3, 0);
        millis = digits[0] * 100 + digits[1] * 10 + digits[2];
    }
    let days = days_from_civil(year, month, day);
    Ok(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn lines(path: &Path) -> Result<impl Iterator<Item = Result<(usize, String), CsvError>> + '_, CsvError> {
    let file = std::fs::File::open(path).map_err(|source| CsvError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(BufReader::new(file).lines().enumerate().map(move |(index, line)| {
        line.map(|text| (index + 1, text)).map_err(|source| CsvError::Io {
            path: path.to_owned(),
            source,
        })
    }))
}

fn row_error(path: &Path, line: usize, reason: impl Into<String>) -> CsvError {
    CsvError::Row {
        path: path.to_owned(),
        line,
        reason: reason.into(),
    }
}

/// Finds the index of each wanted column in a header line.
fn columns(path: &Path, header: &str, wanted: &[&str]) -> Result<Vec<usize>, CsvError> {
    let names: Vec<&str> = header
        .trim_start_matches('\u{feff}')
        .split(',')
        .map(str::trim)
        .collect();
    wanted
        .iter()
        .map(|want| {
            names
                .iter()
                .position(|name| name == want)
                .ok_or_else(|| row_error(path, 1, format!("header {header:?} has no `{want}` column")))
        })
        .collect()
}

/// Reads a CSV file with a header line: for each non-empty line after it,
/// `row` gets the line's number, its text, its trimmed fields and the
/// positions of the `wanted` columns (each found in the header, else an error).
fn read_rows<T>(
    path: &Path,
    wanted: &[&str],
    mut row: impl FnMut(usize, &str, &[&str], &[usize]) -> Result<T, CsvError>,
) -> Result<Vec<T>, CsvError> {
    let mut lines = lines(path)?;
    let (_, header) = lines
        .next()
        .transpose()?
        .ok_or_else(|| row_error(path, 1, "empty file: no header"))?;
    let at = columns(path, &header, wanted)?;
    let mut rows = Vec::new();
    for line in lines {
        let (number, text) = line?;
        if text.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = text.split(',').map(str::trim).collect();
        rows.push(row(number, &text, &fields, &at)?);
    }
    Ok(rows)
}

/// Reads a NAB data file (`timestamp,value` with a header line).
pub fn read_data(path: &Path) -> Result<Vec<DataRow>, CsvError> {
    read_rows(path, &["timestamp", "value"], |number, text, fields, at| {
        let field = |index: usize, name: &str| {
            fields
                .get(index)
                .copied()
                .ok_or_else(|| row_error(path, number, format!("row {text:?} has no `{name}` field")))
        };
        let timestamp = field(at[0], "timestamp")?;
        let value_text = field(at[1], "value")?;
        let ts_ms = parse_timestamp(timestamp).map_err(|reason| row_error(path, number, reason))?;
        let value = value_text
            .parse::<f64>()
            .map_err(|_| row_error(path, number, format!("value {value_text:?} is not a number")))?;
        Ok(DataRow {
            timestamp: timestamp.to_owned(),
            ts_ms,
            value_text: value_text.to_owned(),
            value,
        })
    })
}

/// Reads a NAB results file: its `timestamp` and `anomaly_score` columns.
pub fn read_scores(path: &Path) -> Result<Vec<ScoredRow>, CsvError> {
    read_rows(path, &["timestamp", "anomaly_score"], |number, text, fields, at| {
        let (Some(timestamp), Some(score)) = (fields.get(at[0]), fields.get(at[1])) else {
            return Err(row_error(path, number, format!("row {text:?} has too few fields")));
        };
        let ts_ms = parse_timestamp(timestamp).map_err(|reason| row_error(path, number, reason))?;
        let score = score
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite())
            .ok_or_else(|| row_error(path, number, format!("anomaly_score {score:?} is not a finite number")))?;
        Ok(ScoredRow { ts_ms, score })
    })
}

/// Writes a NAB results file: `timestamp,value,anomaly_score`, the data's rows in order.
pub fn write_results(path: &Path, rows: &[DataRow], scores: &[f64]) -> Result<(), CsvError> {
    let io = |source| CsvError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let mut text = String::with_capacity(rows.len() * 48 + 32);
    text.push_str("timestamp,value,anomaly_score\n");
    for (row, score) in rows.iter().zip(scores) {
        let _ = writeln!(text, "{},{},{}", row.timestamp, row.value_text, score);
    }
    let mut file = std::fs::File::create(path).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_as_utc_epoch_millis() {
        assert_eq!(parse_timestamp("1970-01-01 00:00:00"), Ok(0));
        assert_eq!(parse_timestamp("2014-04-10 07:15:00.000000"), Ok(1_397_114_100_000));
        assert_eq!(parse_timestamp("2000-02-29T12:00:01.5"), Ok(951_825_601_500));
    }

    #[test]
    fn malformed_timestamps_say_what_is_wrong() {
        assert!(
            parse_timestamp("2014-13-01 00:00:00")
                .unwrap_err()
                .contains("out of range")
        );
        assert!(parse_timestamp("yesterday").unwrap_err().contains("YYYY-MM-DD"));
        assert!(parse_timestamp("2014-04-10 07:15:00x").is_err());
    }

    #[test]
    fn a_malformed_row_names_file_and_line() {
        let dir = std::env::temp_dir().join(format!("pulse-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.csv");
        std::fs::write(
            &path,
            "timestamp,value\n2014-04-01 00:00:00,1.0\n2014-04-01 00:05:00,abc\n",
        )
        .unwrap();
        let error = read_data(&path).unwrap_err().to_string();
        assert!(error.contains("bad.csv:3:") && error.contains("\"abc\""), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
