//! `pulse eval forecast`: a rolling-origin backtest of the per-key forecaster.
//!
//! For each file: origins every horizon `H` over the last 40 % of the rows; at each
//! origin the forecaster has seen every earlier row, streamed once in order (it is never
//! refitted), and forecasts the next `H`. The file is streamed through a one-worker
//! timely dataflow built by the forecast operator a pipeline uses
//! ([`ForecastExt::forecast`]), scheduled to issue at the origins. Errors are scaled (MASE) by the mean absolute
//! in-sample error of seasonal naive (`y[t] − y[t − P]`) over the 4 days before the
//! origin. Seasonal naive is scored beside it on the same points, its intervals from the
//! quantiles of those same in-sample errors. Per file: MASE and sMAPE are means over
//! origins, coverage is over all forecast points; overall: means over files.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use pulse_core::{DurationSpec, EventTime, Shutdown};
use pulse_operators::forecast::{ForecastConfig, ForecastExt, ForecastPoint, ForecastSchedule, ForecastStreamConfig};
use pulse_operators::series::SeriesPoint;
use timely::dataflow::InputHandle;
use timely::dataflow::operators::Input;
use timely::dataflow::operators::capture::{Capture, Event};

use super::series_csv::{Point, read_series};

/// The in-sample window that scales MASE.
const SCALE_WINDOW_MS: i64 = 4 * 86_400_000;
/// Share of each file before the first origin.
const TRAIN_SHARE: f64 = 0.6;

/// Arguments of `pulse eval forecast`.
#[derive(Debug, clap::Args)]
pub struct ForecastArgs {
    /// CSV files of `timestamp,value` rows (e.g. from the Numenta Anomaly Benchmark).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The seasonal period.
    #[arg(long, default_value = "1d")]
    pub period: DurationSpec,
    /// The forecast horizon; origins are this far apart.
    #[arg(long, default_value = "1h")]
    pub horizon: DurationSpec,
    /// Score only origins from this share of each file's origin list (for tuning on
    /// early origins and reporting on later ones).
    #[arg(long, default_value_t = 0.0)]
    pub origins_from: f64,
    /// Score only origins before this share of each file's origin list.
    #[arg(long, default_value_t = 1.0)]
    pub origins_to: f64,
}

/// Accumulated errors of one method (the forecaster or seasonal naive) on one file.
#[derive(Debug, Default, Clone, Copy)]
struct Scores {
    mase_sum: f64,
    smape_sum: f64,
    origins: usize,
    inside80: usize,
    inside95: usize,
    points: usize,
}

impl Scores {
    fn add_origin(&mut self, abs_error: f64, smape: f64, points: usize, scale: f64) {
        self.mase_sum += abs_error / points as f64 / scale;
        self.smape_sum += smape / points as f64;
        self.origins += 1;
    }

    fn add_point(&mut self, actual: f64, interval80: (f64, f64), interval95: (f64, f64)) {
        self.inside80 += usize::from(interval80.0 <= actual && actual <= interval80.1);
        self.inside95 += usize::from(interval95.0 <= actual && actual <= interval95.1);
        self.points += 1;
    }

    fn mase(&self) -> f64 {
        self.mase_sum / self.origins as f64
    }
    fn smape(&self) -> f64 {
        self.smape_sum / self.origins as f64
    }
    fn cov80(&self) -> f64 {
        self.inside80 as f64 / self.points as f64
    }
    fn cov95(&self) -> f64 {
        self.inside95 as f64 / self.points as f64
    }
}

/// The outcome for one file.
#[derive(Debug, Clone)]
pub struct FileResult {
    /// The file's name.
    pub name: String,
    /// Forecaster MASE, sMAPE (%), 80 % and 95 % coverage.
    pub model: [f64; 4],
    /// Seasonal naive's MASE, sMAPE (%), 80 % and 95 % coverage.
    pub naive: [f64; 4],
    /// Origins scored.
    pub origins: usize,
    /// Origins skipped (no in-sample scale, or the forecaster still warming up).
    pub skipped: usize,
    /// Points streamed through the forecast operator.
    pub updates: u64,
    /// Time the dataflow took for them (updates, forecasts at the origins, timely's bookkeeping).
    pub update_time: Duration,
}

/// The overall figures over all files.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Overall {
    /// Mean forecaster MASE over files.
    pub mase: f64,
    /// Mean seasonal-naive MASE over files.
    pub naive_mase: f64,
    /// Mean 80 % coverage over files.
    pub cov80: f64,
    /// Mean 95 % coverage over files.
    pub cov95: f64,
    /// Files scored.
    pub files: usize,
}

/// Runs the backtest on every file, writing the report to `out`.
pub fn run(args: &ForecastArgs, out: &mut impl Write) -> anyhow::Result<Overall> {
    let config = ForecastConfig {
        period: args.period,
        horizon: args.horizon,
        ..ForecastConfig::default()
    };
    writeln!(
        out,
        "forecaster: one configuration for every file: {}",
        serde_json::to_string(&config)?
    )?;
    writeln!(
        out,
        "{:<42} {:>7} {:>6} {:>7} {:>6} {:>6} | naive {:>6} {:>7} {:>6} {:>6}",
        "file", "origins", "MASE", "sMAPE%", "cov80", "cov95", "MASE", "sMAPE%", "cov80", "cov95"
    )?;
    let mut results = Vec::new();
    for file in &args.files {
        let result = backtest_file(file, &config, args)?;
        let [m, s, c8, c9] = result.model;
        let [nm, ns, n8, n9] = result.naive;
        writeln!(
            out,
            "{:<42} {:>7} {m:>6.3} {s:>7.2} {c8:>6.3} {c9:>6.3} | naive {nm:>6.3} {ns:>7.2} {n8:>6.3} {n9:>6.3}{}",
            result.name,
            result.origins,
            if result.skipped > 0 {
                format!("  ({} origins skipped)", result.skipped)
            } else {
                String::new()
            }
        )?;
        results.push(result);
    }
    let (updates, time) = results
        .iter()
        .fold((0u64, Duration::ZERO), |(n, t), r| (n + r.updates, t + r.update_time));
    writeln!(
        out,
        "updates: {updates} points streamed through the forecast operator in {:.1} ms ({:.2} µs per point, one pass per file, no refits)",
        time.as_secs_f64() * 1e3,
        time.as_secs_f64() * 1e6 / updates.max(1) as f64
    )?;
    let files = results.len();
    let mean = |f: &dyn Fn(&FileResult) -> f64| results.iter().map(f).sum::<f64>() / files as f64;
    let overall = Overall {
        mase: mean(&|r| r.model[0]),
        naive_mase: mean(&|r| r.naive[0]),
        cov80: mean(&|r| r.model[2]),
        cov95: mean(&|r| r.model[3]),
        files,
    };
    writeln!(
        out,
        "overall sMAPE={:.2} naive_sMAPE={:.2} naive_cov80={:.3} naive_cov95={:.3}",
        mean(&|r| r.model[1]),
        mean(&|r| r.naive[1]),
        mean(&|r| r.naive[2]),
        mean(&|r| r.naive[3])
    )?;
    writeln!(
        out,
        "overall MASE={:.3} naive_MASE={:.3} cov80={:.3} cov95={:.3} files={files}",
        overall.mase, overall.naive_mase, overall.cov80, overall.cov95
    )?;
    Ok(overall)
}

/// The spacing of the points: the median difference of consecutive timestamps.
fn median_step(points: &[Point]) -> Option<u64> {
    let mut steps: Vec<i64> = points.windows(2).map(|w| w[1].0 - w[0].0).collect();
    steps.sort_unstable();
    steps.get(steps.len() / 2).map(|&s| s as u64)
}

fn backtest_file(path: &Path, config: &ForecastConfig, args: &ForecastArgs) -> anyhow::Result<FileResult> {
    let name = path
        .file_name()
        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let points = read_series(path)?;
    let step = median_step(&points).with_context(|| format!("{}: fewer than two rows", path.display()))?;
    let shape = config
        .shape(DurationSpec::from_millis(step))
        .with_context(|| format!("{}: points every {step} ms", path.display()))?;
    let (horizon, season) = (shape.horizon, shape.season_length);
    let period_ms = config.period.as_millis() as i64;
    let by_ts: HashMap<i64, f64> = points.iter().copied().collect();
    let first = (TRAIN_SHARE * points.len() as f64).ceil() as usize;
    let origins: Vec<usize> = (first..=points.len().saturating_sub(horizon))
        .step_by(horizon)
        .collect();
    let share = |f: f64| ((f.clamp(0.0, 1.0) * origins.len() as f64) as usize).min(origins.len());
    let (from, to) = (share(args.origins_from), share(args.origins_to));
    let chosen = &origins[from..to.max(from)];

    let schedule: Vec<EventTime> = chosen
        .iter()
        .map(|&origin| points[origin].0.max(0) as EventTime)
        .collect();
    let started = Instant::now();
    let mut issued = stream_file(path, &points, config, step, schedule)?;
    let update_time = started.elapsed();
    let (mut model, mut naive) = (Scores::default(), Scores::default());
    let mut skipped = 0usize;
    for &origin in chosen {
        let origin_ts = points[origin].0;
        // Seasonal naive's in-sample errors over the 4 days before the origin.
        let mut in_sample: Vec<f64> = points[..origin]
            .iter()
            .rev()
            .take_while(|(ts, _)| *ts >= origin_ts - SCALE_WINDOW_MS)
            .filter_map(|(ts, v)| by_ts.get(&(ts - period_ms)).map(|past| (v - past).abs()))
            .collect();
        let scale = in_sample.iter().sum::<f64>() / in_sample.len() as f64;
        // No forecast at an origin: the key was still warming up.
        let forecast = match issued.remove(&(origin_ts.max(0) as EventTime)) {
            Some(forecast) if scale > 0.0 => forecast,
            _ => {
                skipped += 1;
                continue;
            }
        };
        in_sample.sort_unstable_by(f64::total_cmp);
        let quantile = |q: f64| in_sample[((q * in_sample.len() as f64) as usize).min(in_sample.len() - 1)];
        let (naive80, naive95) = (quantile(0.80), quantile(0.95));
        let last_ts = points[origin - 1].0;
        let (mut model_error, mut model_smape, mut naive_error, mut naive_smape, mut n) = (0.0, 0.0, 0.0, 0.0, 0);
        for &(ts, actual) in &points[origin..origin + horizon] {
            let steps = ((ts - last_ts) as f64 / step as f64).round() as usize;
            if steps == 0 || steps > horizon {
                continue;
            }
            let seasons_back = steps.div_ceil(season) as i64;
            let Some(&naive_value) = by_ts.get(&(ts - period_ms * seasons_back)) else {
                continue;
            };
            let p = &forecast[steps - 1];
            model_error += (actual - p.yhat).abs();
            model_smape += smape(actual, p.yhat);
            model.add_point(actual, (p.lower80, p.upper80), (p.lower95, p.upper95));
            naive_error += (actual - naive_value).abs();
            naive_smape += smape(actual, naive_value);
            let widen = (seasons_back as f64).sqrt();
            let (w80, w95) = (naive80 * widen, naive95 * widen);
            naive.add_point(
                actual,
                (naive_value - w80, naive_value + w80),
                (naive_value - w95, naive_value + w95),
            );
            n += 1;
        }
        if n > 0 {
            model.add_origin(model_error, model_smape, n, scale);
            naive.add_origin(naive_error, naive_smape, n, scale);
        } else {
            skipped += 1;
        }
    }
    if model.origins == 0 {
        anyhow::bail!(
            "{}: no origin could be scored ({} rows, {} skipped); the file is too short for period {} and horizon {}",
            path.display(),
            points.len(),
            skipped,
            config.period,
            config.horizon
        );
    }
    Ok(FileResult {
        name,
        model: [model.mase(), model.smape(), model.cov80(), model.cov95()],
        naive: [naive.mase(), naive.smape(), naive.cov80(), naive.cov95()],
        origins: model.origins,
        skipped,
        updates: points.len() as u64,
        update_time,
    })
}

/// Streams a file's points through the forecast operator (one worker), issuing at
/// `schedule`; returns each origin's forecast by its time. A point the operator
/// refuses is an error naming the file.
fn stream_file(
    path: &Path,
    points: &[(i64, f64)],
    config: &ForecastConfig,
    step: u64,
    schedule: Vec<EventTime>,
) -> anyhow::Result<BTreeMap<EventTime, Vec<ForecastPoint>>> {
    // A point's logical time is the last origin at or before it: far fewer
    // times for timely to track than one per point, and a point still comes
    // after the origins before it and before those after it.
    let batch_time = |ts: EventTime| {
        let later = schedule.partition_point(|&origin| origin <= ts);
        later.checked_sub(1).map_or(0, |i| schedule[i])
    };
    let times: Vec<EventTime> = points
        .iter()
        .map(|&(ts, _)| batch_time(ts.max(0) as EventTime))
        .collect();
    let operator = ForecastStreamConfig {
        forecast: config.clone(),
        step_ms: step,
        schedule: ForecastSchedule::At(Arc::from(schedule)),
        idle_timeout_ms: 0,
    };
    let series: Vec<SeriesPoint> = points
        .iter()
        .map(|&(ts, value)| SeriesPoint {
            key: vec![Some(Box::from("series"))].into_boxed_slice(),
            ts: ts.max(0) as EventTime,
            value,
        })
        .collect();
    let name = format!("eval-forecast:{}", path.display());
    let (forecasts, refused) = timely::execute_directly(move |worker| {
        let mut input = InputHandle::new();
        let captured = worker.dataflow(|scope| {
            let (forecasts, refused) = scope
                .input_from(&mut input)
                .forecast(&name, &operator, &Shutdown::new());
            (forecasts.capture(), refused.capture())
        });
        for (point, time) in series.into_iter().zip(times) {
            input.advance_to(time);
            input.send(point);
        }
        input.close();
        captured
    });
    if let Some(refused) = refused.try_iter().find_map(|event| match event {
        Event::Messages(_, mut refused) => refused.pop(),
        Event::Progress(_) => None,
    }) {
        anyhow::bail!("{}: point at {}: {}", path.display(), refused.point.ts, refused.reason);
    }
    let mut issued = BTreeMap::new();
    for event in forecasts.try_iter() {
        if let Event::Messages(_, forecasts) = event {
            for forecast in forecasts {
                issued.insert(forecast.issued_at, forecast.points);
            }
        }
    }
    Ok(issued)
}

/// Symmetric absolute percentage error of one point, in percent (0 when both are 0).
fn smape(actual: f64, forecast: f64) -> f64 {
    let denominator = actual.abs() + forecast.abs();
    if denominator == 0.0 {
        0.0
    } else {
        200.0 * (actual - forecast).abs() / denominator
    }
}
