//! The report of a run: `report.json` (every series' percentiles, rates,
//! errors by kind and timeline, and the machine it ran on) and three SVG
//! charts beside it ([`chart`]); [`compare`] reads two reports back and says
//! what changed.

pub mod chart;
pub mod compare;
pub mod machine;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use machine::Machine;

use crate::record::{CURVE_QUANTILES, SecondSummary, SeriesSnapshot};

/// The file name of the JSON report inside `--out`.
pub const REPORT_FILE: &str = "report.json";

/// Why a report could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A file is not a report.
    #[error("{path}: not a pulse-loadtest report: {source}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What did not parse.
        source: serde_json::Error,
    },
    /// A chart could not be drawn.
    #[error("{path}: drawing the chart failed: {reason}")]
    Chart {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// What a run measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `events`, `ws`, `api` or `mixed`.
    pub scenario: String,
    /// The gateway loaded.
    pub target: String,
    /// When the run started, Unix milliseconds.
    pub started_at_ms: u64,
    /// Seconds from the first operation to the last answer (the drain included).
    pub duration_seconds: f64,
    /// The target rate of operations per second (`None`: as fast as possible).
    pub target_rate: Option<f64>,
    /// Where it ran.
    pub machine: Machine,
    /// One entry per measured operation.
    pub series: Vec<SeriesReport>,
    /// What a reader should know: skipped parts, scenario settings.
    pub notes: Vec<String>,
}

/// One measured operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesReport {
    /// Such as `api.kv_get` or `events.window_e2e`.
    pub name: String,
    /// Operations that succeeded (and were timed).
    pub ok: u64,
    /// Operations that failed.
    pub errors_total: u64,
    /// Failures by kind (`http_429`, `timeout`, `connection`, …).
    pub errors: BTreeMap<String, u64>,
    /// Operations completed (ok or not) per second of sending (`--duration`,
    /// or the whole run when it ended sooner).
    pub rate_per_second: f64,
    /// Successes per second of sending.
    pub ok_per_second: f64,
    /// Latency of the successes.
    pub latency_ms: LatencyReport,
    /// Latency at each of [`CURVE_QUANTILES`].
    pub percentile_curve: Vec<CurvePoint>,
    /// One summary per second.
    pub timeline: Vec<SecondSummary>,
}

/// Latency statistics in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyReport {
    /// Operations timed.
    pub samples: u64,
    /// Smallest.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub stddev: f64,
    /// Median.
    pub p50: f64,
    /// 75th percentile.
    pub p75: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// 99.99th percentile.
    pub p9999: f64,
    /// Largest.
    pub max: f64,
}

/// A point of a percentile curve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// The quantile, 0 to 1.
    pub quantile: f64,
    /// The latency at it, in milliseconds.
    pub ms: f64,
}

impl SeriesReport {
    /// The report of `snapshot`, its rates over `seconds` of sending.
    pub fn of(snapshot: &SeriesSnapshot, seconds: f64) -> Self {
        let histogram = &snapshot.histogram;
        let ms = |micros: u64| micros as f64 / 1000.0;
        let at = |q: f64| {
            if histogram.is_empty() {
                0.0
            } else {
                ms(histogram.value_at_quantile(q))
            }
        };
        let latency_ms = if histogram.is_empty() {
            LatencyReport::default()
        } else {
            LatencyReport {
                samples: histogram.len(),
                min: ms(histogram.min()),
                mean: histogram.mean() / 1000.0,
                stddev: histogram.stdev() / 1000.0,
                p50: at(0.5),
                p75: at(0.75),
                p90: at(0.9),
                p95: at(0.95),
                p99: at(0.99),
                p999: at(0.999),
                p9999: at(0.9999),
                max: ms(histogram.max()),
            }
        };
        let errors_total = snapshot.errors.values().sum();
        let per_second = |n: u64| if seconds > 0.0 { n as f64 / seconds } else { 0.0 };
        Self {
            name: snapshot.name.clone(),
            ok: snapshot.ok,
            errors_total,
            errors: snapshot.errors.clone(),
            rate_per_second: per_second(snapshot.ok + errors_total),
            ok_per_second: per_second(snapshot.ok),
            latency_ms,
            percentile_curve: if histogram.is_empty() {
                Vec::new()
            } else {
                CURVE_QUANTILES
                    .iter()
                    .map(|&quantile| CurvePoint {
                        quantile,
                        ms: at(quantile),
                    })
                    .collect()
            },
            timeline: snapshot.timeline.clone(),
        }
    }
}

impl Report {
    /// The series called `name`, if the run measured it.
    pub fn series(&self, name: &str) -> Option<&SeriesReport> {
        self.series.iter().find(|s| s.name == name)
    }

    /// Writes `report.json` and the charts into `dir` (created if missing); returns the files written.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
        std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(REPORT_FILE);
        let json = serde_json::to_string_pretty(self).expect("a report serialises");
        std::fs::write(&path, json + "\n").map_err(|source| ReportError::Io {
            path: path.clone(),
            source,
        })?;
        let mut written = vec![path];
        written.extend(chart::draw_all(self, dir)?);
        Ok(written)
    }

    /// Reads a report from `path`: a `report.json`, or a directory holding one.
    pub fn read(path: &Path) -> Result<Self, ReportError> {
        let file = if path.is_dir() {
            path.join(REPORT_FILE)
        } else {
            path.to_owned()
        };
        let text = std::fs::read_to_string(&file).map_err(|source| ReportError::Io {
            path: file.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ReportError::Format { path: file, source })
    }

    /// A few lines for the terminal: per series, counts, rate and latency percentiles.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "{} against {} for {:.1} s ({})\n",
            self.scenario,
            self.target,
            self.duration_seconds,
            self.target_rate
                .map_or("max rate".to_owned(), |rate| format!("target {rate}/s"))
        );
        for series in &self.series {
            let l = &series.latency_ms;
            text += &format!(
                "  {:<22} {:>9} ok {:>7} err {:>9.1}/s  p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2} ms\n",
                series.name, series.ok, series.errors_total, series.rate_per_second, l.p50, l.p90, l.p99, l.p999, l.max
            );
            for (kind, count) in &series.errors {
                text += &format!("  {:<22}   {count} x {kind}\n", "");
            }
        }
        for note in &self.notes {
            text += &format!("  note: {note}\n");
        }
        text
    }
}
