//! `pulse eval nab`: streams every CSV of a NAB-layout directory through the
//! anomaly detector and writes NAB results.
//!
//! Each file is one series (key `<category>/<file>`), streamed through a
//! one-worker timely dataflow built by the anomaly operator a pipeline uses
//! ([`AnomalyExt::detect_anomalies`], with the same [`AnomalyConfig`]): the
//! score of a row uses only the rows before it and itself. A row's logical
//! time is its position in the file, so rows are scored in file order even
//! where a file's timestamps step back.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use pulse_core::Shutdown;
use pulse_operators::anomaly::{AnomalyConfig, AnomalyExt, AnomalyStreamConfig};
use pulse_operators::series::SeriesPoint;
use timely::dataflow::InputHandle;
use timely::dataflow::operators::Input;
use timely::dataflow::operators::capture::{Capture, Event};

use super::csv::{self, CsvError};
use super::nab_score::{self, Subset};

/// The data files of a NAB-layout directory: `(category, file name, path)`, sorted.
pub fn data_files(data_dir: &Path) -> Result<Vec<(String, String, PathBuf)>, String> {
    let root = data_dir.join("data");
    let read = |dir: &Path| -> Result<Vec<PathBuf>, String> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .collect();
        entries.sort();
        Ok(entries)
    };
    let mut files = Vec::new();
    for category in read(&root)?.into_iter().filter(|p| p.is_dir()) {
        let category_name = category.file_name().unwrap_or_default().to_string_lossy().into_owned();
        for file in read(&category)? {
            if file.extension().is_some_and(|e| e == "csv") {
                let name = file.file_name().unwrap_or_default().to_string_lossy().into_owned();
                files.push((category_name.clone(), name, file));
            }
        }
    }
    if files.is_empty() {
        return Err(format!("{}: no data/<category>/<file>.csv files", data_dir.display()));
    }
    Ok(files)
}

/// Reads an `AnomalyConfig` TOML file, or the built-in defaults.
pub fn load_config(path: Option<&Path>) -> Result<AnomalyConfig, String> {
    let config = match path {
        None => AnomalyConfig::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
    };
    config.validate().map_err(|e| match path {
        Some(path) => format!("{}: {e}", path.display()),
        None => e,
    })?;
    Ok(config)
}

/// Scores one data file through the anomaly operator (one worker, a fresh
/// detector); a refused value names file and line.
pub fn score_file(key: &str, path: &Path, config: &AnomalyConfig) -> Result<(Vec<csv::DataRow>, Vec<f64>), CsvError> {
    let rows = csv::read_data(path)?;
    let row_error = |index: usize, reason: String| CsvError::Row {
        path: path.to_owned(),
        line: index + 2,
        reason,
    };
    let mut points = Vec::with_capacity(rows.len());
    for (index, row) in rows.iter().enumerate() {
        let ts = u64::try_from(row.ts_ms)
            .map_err(|_| row_error(index, format!("timestamp {} is before 1970", row.timestamp)))?;
        points.push(SeriesPoint {
            key: vec![Some(Box::from(key))].into_boxed_slice(),
            ts,
            value: row.value,
        });
    }
    let operator = AnomalyStreamConfig {
        detector: config.clone(),
        model_dir: None,
        idle_timeout_ms: 0,
    };
    let name = format!("eval-nab:{key}");
    let (scored_events, refused) = timely::execute_directly(move |worker| {
        let mut input = InputHandle::new();
        let captured = worker.dataflow(|scope| {
            let (scored, refused) = scope
                .input_from(&mut input)
                .detect_anomalies(&name, &operator, &Shutdown::new());
            (scored.capture(), refused.capture())
        });
        // The operator takes a key's points in order of (time, timestamp): a
        // row's logical time counts the steps back before it, so rows are
        // taken in file order with few times for timely to track.
        let mut time = 0u64;
        let mut previous = None;
        for point in points {
            if previous.is_some_and(|ts| point.ts <= ts) {
                time += 1;
                input.advance_to(time);
            }
            previous = Some(point.ts);
            input.send(point);
        }
        input.close();
        captured
    });
    if let Some(refused) = refused.try_iter().find_map(|event| match event {
        Event::Messages(_, mut refused) => refused.pop(),
        Event::Progress(_) => None,
    }) {
        // The refused row: the first with its timestamp and a value that is not a finite number.
        let index = rows
            .iter()
            .position(|row| row.ts_ms == refused.point.ts as i64 && !row.value.is_finite())
            .unwrap_or(0);
        return Err(row_error(index, refused.reason));
    }
    // Scored points come out in the order they were taken: by time, then file order.
    let mut scored: Vec<(u64, usize, f64)> = Vec::with_capacity(rows.len());
    for event in scored_events.try_iter() {
        if let Event::Messages(stamp, points) = event {
            let time = stamp.least().copied().unwrap_or(0);
            for point in points {
                scored.push((time, scored.len(), point.verdict.score));
            }
        }
    }
    scored.sort_by_key(|&(time, arrival, _)| (time, arrival));
    if scored.len() != rows.len() {
        return Err(row_error(
            scored.len().min(rows.len().saturating_sub(1)),
            format!("the operator scored {} of {} rows", scored.len(), rows.len()),
        ));
    }
    Ok((rows, scored.into_iter().map(|(_, _, score)| score).collect()))
}

/// Runs the detector over `data`, writes results under `out`, optionally scores them.
pub fn run(data: &Path, out: &Path, config_path: Option<&Path>, score: bool, subset: Subset) -> Result<(), String> {
    let config = load_config(config_path)?;
    let source = config_path.map_or_else(|| "built-in defaults".to_owned(), |p| p.display().to_string());
    println!(
        "configuration ({source}): {}",
        serde_json::to_string(&config).map_err(|e| e.to_string())?
    );
    let files = data_files(data)?;
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let started = std::time::Instant::now();
    let points = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some((category, name, path)) = files.get(index) else {
                        break;
                    };
                    let key = format!("{category}/{name}");
                    let written = score_file(&key, path, &config).and_then(|(rows, scores)| {
                        points.fetch_add(rows.len(), Ordering::Relaxed);
                        csv::write_results(&out.join(category).join(format!("pulse_{name}")), &rows, &scores)
                    });
                    if let Err(error) = written {
                        failures
                            .lock()
                            .expect("no panics while holding it")
                            .push(error.to_string());
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().expect("no panics while holding it");
    if !failures.is_empty() {
        return Err(failures.join("\n"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let points = points.into_inner();
    println!(
        "scored {} files, {points} points in {elapsed:.2} s ({:.0} points/s on {workers} threads); results in {}",
        files.len(),
        points as f64 / elapsed.max(1e-9),
        out.display()
    );
    if score {
        let scores = nab_score::score_results(data, out, "pulse", subset).map_err(|e| e.to_string())?;
        print!("{}", super::format_scores("pulse", &scores));
    }
    Ok(())
}
