//! Standard output sink: JSON lines, or a table for people watching a demo.

use std::io::{self, Write};

use serde_json::Value;

use crate::writer::LineSink;

/// How stdout renders records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StdoutFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// An aligned table per batch of results; epoch-ms window bounds as UTC times.
    Table,
}

/// Writes records to standard output.
pub struct Stdout {
    format: StdoutFormat,
    title: String,
}

impl Stdout {
    /// A stdout sink called `title` (shown above each table).
    pub fn new(title: &str, format: StdoutFormat) -> Self {
        Self {
            format,
            title: title.to_owned(),
        }
    }
}

impl LineSink for Stdout {
    fn write_batch(&mut self, lines: &[String]) -> io::Result<()> {
        let mut out = io::stdout().lock();
        match self.format {
            StdoutFormat::Json => {
                for line in lines {
                    writeln!(out, "{line}")?;
                }
            }
            StdoutFormat::Table => out.write_all(render_table(&self.title, lines).as_bytes())?,
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().flush()
    }
}

/// Renders JSON-object lines as an aligned text table.
pub fn render_table(title: &str, lines: &[String]) -> String {
    let rows: Vec<serde_json::Map<String, Value>> = lines
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let mut columns: Vec<String> = Vec::new();
    for row in &rows {
        for name in row.keys() {
            if !columns.contains(name) {
                columns.push(name.clone());
            }
        }
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| row.get(c).map_or(String::new(), |v| cell(c, v)))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| cells.iter().map(|r| r[i].len()).chain([c.len()]).max().unwrap_or(0))
        .collect();
    let mut out = format!("── {title} ── {} rows\n", rows.len());
    let line = |values: &mut dyn Iterator<Item = &String>| -> String {
        let padded: Vec<String> = values.zip(&widths).map(|(v, w)| format!("{v:>w$}")).collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    out += &line(&mut columns.iter());
    for row in &cells {
        out += &line(&mut row.iter());
    }
    out
}

fn cell(column: &str, value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Number(n) if column.starts_with("window_") || column == "ts" => {
            n.as_u64().map_or_else(|| n.to_string(), utc_time)
        }
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or_default();
            if x != 0.0 && (x.abs() >= 1e7 || x.abs() < 1e-3) {
                format!("{x:.3e}")
            } else {
                format!("{x:.3}")
            }
        }
        other => other.to_string(),
    }
}

/// `HH:MM:SS.mmm` of an epoch-ms time, UTC, prefixed by the date.
fn utc_time(ms: u64) -> String {
    let (days, ms_of_day) = (ms / 86_400_000, ms % 86_400_000);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, milli) = (
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000,
    );
    format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02}.{milli:03}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_epoch_milliseconds_as_utc() {
        assert_eq!(utc_time(0), "1970-01-01 00:00:00.000");
        assert_eq!(utc_time(1_700_000_000_000), "2023-11-14 22:13:20.000");
        assert_eq!(utc_time(951_782_400_123), "2000-02-29 00:00:00.123");
    }

    #[test]
    fn renders_aligned_columns() {
        let lines = vec![
            r#"{"window_start":0,"tenant":"acme","count":3,"avg":1.5}"#.to_owned(),
            r#"{"window_start":0,"tenant":"globex","count":12,"avg":null}"#.to_owned(),
        ];
        let table = render_table("cpu", &lines);
        let rows: Vec<&str> = table.lines().collect();
        assert_eq!(rows[0], "── cpu ── 2 rows");
        assert!(rows[1].ends_with("avg") && rows[1].contains("tenant"));
        assert!(rows[2].contains("1970-01-01 00:00:00.000") && rows[2].ends_with("1.500"));
        assert!(rows[3].contains("globex") && rows[3].ends_with("-"));
        assert_eq!(rows[2].len(), rows[3].len());
    }
}
