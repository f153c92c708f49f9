//! The NAB v1.1 scorer: windows, the probationary period, sigmoid-weighted
//! detections, one corpus-wide threshold per profile, and normalisation
//! between a detector that never fires (0) and one that detects every window
//! at its start (100).
//!
//! It follows Numenta's `nab/sweeper.py`: every row after the probationary
//! period is a candidate detection with a weight (`tp · σ(y) / σ(−1)` inside a
//! window, `fp · σ(y)` outside, y its relative position); sweeping the
//! threshold down through every distinct score, a window keeps its best
//! (earliest) detection and false positives add up. The threshold with the
//! highest corpus total wins.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::csv::{self, CsvError};

/// The profiles, in the order NAB reports them.
pub const PROFILE_NAMES: [&str; 3] = ["standard", "reward_low_FP_rate", "reward_low_FN_rate"];

/// What went wrong while scoring.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// A data or results file could not be read.
    #[error(transparent)]
    Csv(#[from] CsvError),
    /// A JSON file (labels, profiles) is missing or malformed.
    #[error("{path}: {reason}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A results file does not match its data file.
    #[error("{path}: {reason}")]
    Mismatch {
        /// The results file.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
}

/// Which files of a corpus to score. Development discipline: within each
/// category, files sorted by name; the even-indexed ones (0, 2, ...) are the
/// half parameters were developed on, the odd-indexed ones the half they were
/// checked on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Subset {
    /// Every file.
    #[default]
    All,
    /// Files at even positions within their category (development half).
    Even,
    /// Files at odd positions within their category (check half).
    Odd,
}

impl Subset {
    /// Whether the file at `index` (sorted by name within its category) is in the subset.
    pub fn contains(self, index: usize) -> bool {
        match self {
            Subset::All => true,
            Subset::Even => index.is_multiple_of(2),
            Subset::Odd => !index.is_multiple_of(2),
        }
    }
}

/// The weights of one cost profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// The profile's name (`standard`, ...).
    pub name: String,
    /// Weight of a true positive.
    pub tp: f64,
    /// Weight of a false positive.
    pub fp: f64,
    /// Weight of a missed window.
    pub fn_: f64,
}

/// One labelled file: its timestamps and anomaly windows as row indices.
#[derive(Clone, Debug)]
pub struct LabelledFile {
    /// `<category>/<file>.csv`.
    pub name: String,
    /// Rows of the file.
    pub rows: usize,
    /// Anomaly windows, inclusive row ranges `[left, right]`.
    pub windows: Vec<(usize, usize)>,
}

impl LabelledFile {
    /// Rows NAB does not score: `min(floor(0.15 · rows), 750)`.
    pub fn probationary_rows(&self) -> usize {
        ((0.15 * self.rows as f64).floor() as usize).min(750)
    }
}

/// NAB's σ: 2/(1 + e^{5y}) − 1, and −1 for y > 3 (far past a window).
pub fn scaled_sigmoid(position: f64) -> f64 {
    if position > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * position).exp()) - 1.0
    }
}

/// The score of one profile at its best threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileScore {
    /// The profile.
    pub profile: Profile,
    /// The corpus-wide threshold that maximises the raw score.
    pub threshold: f64,
    /// The raw score at that threshold.
    pub raw: f64,
    /// Raw score of a detector that never fires.
    pub null: f64,
    /// Raw score of a detector that detects every window at its start.
    pub perfect: f64,
    /// Windows detected at that threshold.
    pub detected_windows: usize,
    /// Windows in the corpus (after probation).
    pub windows: usize,
    /// Detections outside every window at that threshold.
    pub false_positives: usize,
}

impl ProfileScore {
    /// 100 · (raw − null) / (perfect − null).
    pub fn normalised(&self) -> f64 {
        100.0 * (self.raw - self.null) / (self.perfect - self.null)
    }
}

/// A scorable row: its score, the window it lies in, and its unweighted σ.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    score: f64,
    window: Option<usize>,
    sigma: f64,
}

/// Reads `config/profiles.json` of a NAB data directory.
pub fn read_profiles(data_dir: &Path) -> Result<Vec<Profile>, ScoreError> {
    let path = data_dir.join("config/profiles.json");
    let json: serde_json::Value = read_json(&path)?;
    PROFILE_NAMES
        .iter()
        .map(|name| {
            let costs = &json[*name]["CostMatrix"];
            let weight = |key: &str| {
                costs[key].as_f64().ok_or_else(|| ScoreError::Json {
                    path: path.clone(),
                    reason: format!("profile `{name}` has no numeric CostMatrix.{key}"),
                })
            };
            Ok(Profile {
                name: (*name).to_owned(),
                tp: weight("tpWeight")?,
                fp: weight("fpWeight")?,
                fn_: weight("fnWeight")?,
            })
        })
        .collect()
}

/// Reads `labels/combined_windows.json`: per file, its windows as timestamp pairs (epoch ms).
pub fn read_windows(data_dir: &Path) -> Result<BTreeMap<String, Vec<(i64, i64)>>, ScoreError> {
    let path = data_dir.join("labels/combined_windows.json");
    let json: BTreeMap<String, Vec<[String; 2]>> = read_json(&path)?;
    json.into_iter()
        .map(|(file, windows)| {
            let windows = windows
                .iter()
                .map(|[start, end]| Ok((csv::parse_timestamp(start)?, csv::parse_timestamp(end)?)))
                .collect::<Result<Vec<_>, String>>()
                .map_err(|reason| ScoreError::Json {
                    path: path.clone(),
                    reason: format!("{file}: {reason}"),
                })?;
            Ok((file, windows))
        })
        .collect()
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ScoreError> {
    let text = std::fs::read_to_string(path).map_err(|error| ScoreError::Json {
        path: path.to_owned(),
        reason: error.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|error| ScoreError::Json {
        path: path.to_owned(),
        reason: error.to_string(),
    })
}

/// Turns windows given as timestamps into inclusive row ranges of `timestamps`.
pub fn window_rows(timestamps: &[i64], windows: &[(i64, i64)]) -> Vec<(usize, usize)> {
    windows
        .iter()
        .filter_map(|&(start, end)| {
            // Linear, not a binary search: real files step back in time now and then.
            let left = timestamps.iter().position(|&t| t >= start)?;
            let right = match timestamps[left..].iter().position(|&t| t >= end) {
                Some(offset) if timestamps[left + offset] == end => left + offset,
                Some(0) => return None,
                Some(offset) => left + offset - 1,
                None => timestamps.len() - 1,
            };
            Some((left, right))
        })
        .collect()
}

/// The candidates of one file, window ids offset by `first_window`.
fn candidates(file: &LabelledFile, scores: &[f64], first_window: usize, out: &mut Vec<Candidate>) {
    let probation = file.probationary_rows();
    let mut windows = file.windows.iter().enumerate().peekable();
    let mut current: Option<(usize, (usize, usize))> = None;
    let mut previous: Option<(usize, usize)> = None;
    for (row, &score) in scores.iter().enumerate() {
        if current.is_none()
            && let Some(&(id, &window)) = windows.peek()
            && window.0 == row
        {
            current = Some((id, window));
            windows.next();
        }
        let (window, sigma) = match current {
            Some((id, (left, right))) => {
                let width = (right - left + 1) as f64;
                let position = -((right - row + 1) as f64) / width;
                (Some(first_window + id), scaled_sigmoid(position))
            }
            None => match previous {
                None => (None, -1.0),
                Some((left, right)) => {
                    let width = (right - left + 1) as f64;
                    (None, scaled_sigmoid((row - right) as f64 / (width - 1.0)))
                }
            },
        };
        if row >= probation {
            out.push(Candidate { score, window, sigma });
        }
        if let Some((_, window)) = current
            && window.1 == row
        {
            previous = Some(window);
            current = None;
        }
    }
}

/// Scores a corpus: each file with its detector scores (one per row), for each profile.
pub fn score_corpus(files: &[(LabelledFile, Vec<f64>)], profiles: &[Profile]) -> Vec<ProfileScore> {
    let mut all = Vec::new();
    let mut first_window = 0;
    for (file, scores) in files {
        candidates(file, scores, first_window, &mut all);
        first_window += file.windows.len();
    }
    // Highest score first; ties keep row order, which does not change any total.
    all.sort_by(|a, b| b.score.total_cmp(&a.score));
    profiles
        .iter()
        .map(|profile| sweep(&all, first_window, profile))
        .collect()
}

/// Sweeps the threshold down through every distinct score of `sorted`.
fn sweep(sorted: &[Candidate], window_count: usize, profile: &Profile) -> ProfileScore {
    let max_tp = scaled_sigmoid(-1.0);
    // A window counts only if some row of it is scored (not all in probation).
    let mut scored_window = vec![false; window_count];
    for candidate in sorted {
        if let Some(id) = candidate.window {
            scored_window[id] = true;
        }
    }
    let windows = scored_window.iter().filter(|&&s| s).count();
    let null = -profile.fn_ * windows as f64;
    let mut best_in_window = vec![-profile.fn_; window_count];
    let mut detected = vec![false; window_count];
    let (mut fp_total, mut window_total) = (0.0, null);
    let (mut detected_windows, mut false_positives) = (0, 0);
    let mut best = ProfileScore {
        profile: profile.clone(),
        threshold: 1.1,
        raw: null,
        null,
        perfect: profile.tp * windows as f64,
        detected_windows: 0,
        windows,
        false_positives: 0,
    };
    let mut index = 0;
    while index < sorted.len() {
        let threshold = sorted[index].score;
        while index < sorted.len() && sorted[index].score == threshold {
            let candidate = sorted[index];
            match candidate.window {
                None => {
                    fp_total += candidate.sigma * profile.fp;
                    false_positives += 1;
                }
                Some(id) => {
                    let weighted = candidate.sigma * profile.tp / max_tp;
                    if weighted > best_in_window[id] {
                        window_total += weighted - best_in_window[id];
                        best_in_window[id] = weighted;
                    }
                    if !detected[id] {
                        detected[id] = true;
                        detected_windows += 1;
                    }
                }
            }
            index += 1;
        }
        let raw = fp_total + window_total;
        if raw > best.raw {
            best.threshold = threshold;
            best.raw = raw;
            best.detected_windows = detected_windows;
            best.false_positives = false_positives;
        }
    }
    best
}

/// Scores the results of `detector` under `results_dir` against the data directory.
///
/// Results are `RESULTS/<category>/<detector>_<file>.csv`, one row per data row.
pub fn score_results(
    data_dir: &Path,
    results_dir: &Path,
    detector: &str,
    subset: Subset,
) -> Result<Vec<ProfileScore>, ScoreError> {
    let profiles = read_profiles(data_dir)?;
    let windows = read_windows(data_dir)?;
    let mut files = Vec::with_capacity(windows.len());
    let mut position = (String::new(), 0);
    for (name, file_windows) in &windows {
        // `windows` is sorted by "<category>/<file>", so positions count within a category.
        let category = name.split_once('/').map_or("", |(c, _)| c);
        if position.0 != category {
            position = (category.to_owned(), 0);
        } else {
            position.1 += 1;
        }
        if !subset.contains(position.1) {
            continue;
        }
        let data_path = data_dir.join("data").join(name);
        let (category, file) = name.split_once('/').unwrap_or(("", name));
        let results_path = results_dir.join(category).join(format!("{detector}_{file}"));
        let data = csv::read_data(&data_path)?;
        let scored = csv::read_scores(&results_path)?;
        if scored.len() != data.len() {
            return Err(ScoreError::Mismatch {
                path: results_path,
                reason: format!("{} rows, but {} has {}", scored.len(), data_path.display(), data.len()),
            });
        }
        if let Some(row) = data.iter().zip(&scored).position(|(d, s)| d.ts_ms != s.ts_ms) {
            return Err(ScoreError::Mismatch {
                path: results_path,
                reason: format!(
                    "row {} has timestamp {} where the data has {}",
                    row + 2,
                    scored[row].ts_ms,
                    data[row].timestamp
                ),
            });
        }
        let timestamps: Vec<i64> = data.iter().map(|row| row.ts_ms).collect();
        let labelled = LabelledFile {
            name: name.clone(),
            rows: data.len(),
            windows: window_rows(&timestamps, file_windows),
        };
        files.push((labelled, scored.into_iter().map(|row| row.score).collect()));
    }
    Ok(score_corpus(&files, &profiles))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(fp: f64, fn_: f64) -> Profile {
        Profile {
            name: "p".into(),
            tp: 1.0,
            fp,
            fn_,
        }
    }

    /// Brute force: for one threshold, walk each file's rows in order.
    fn brute_force(files: &[(LabelledFile, Vec<f64>)], profile: &Profile, threshold: f64) -> f64 {
        let mut total = 0.0;
        for (file, scores) in files {
            let probation = file.probationary_rows();
            for &(left, right) in &file.windows {
                if right < probation {
                    continue;
                }
                let width = (right - left + 1) as f64;
                let first = (left.max(probation)..=right).find(|&row| scores[row] >= threshold);
                total += match first {
                    Some(row) => {
                        profile.tp * scaled_sigmoid(-((right - row + 1) as f64) / width) / scaled_sigmoid(-1.0)
                    }
                    None => -profile.fn_,
                };
            }
            for (row, &score) in scores.iter().enumerate().skip(probation) {
                if score < threshold || file.windows.iter().any(|&(l, r)| (l..=r).contains(&row)) {
                    continue;
                }
                let before = file.windows.iter().filter(|&&(_, r)| r < row).max_by_key(|&&(_, r)| r);
                total += profile.fp
                    * match before {
                        None => -1.0,
                        Some(&(l, r)) => scaled_sigmoid((row - r) as f64 / (r - l) as f64),
                    };
            }
        }
        total
    }

    proptest::proptest! {
        #[test]
        fn the_sweep_finds_the_best_threshold_of_the_brute_force(
            rows in 20usize..120,
            raw_windows in proptest::collection::vec((0usize..100, 2usize..15), 0..4),
            scores in proptest::collection::vec(0u8..6, 120),
            fp in 0.05f64..0.5,
        ) {
            let mut windows: Vec<(usize, usize)> = Vec::new();
            for (start, len) in raw_windows {
                let (left, right) = (start.min(rows - 1), (start + len).min(rows - 1));
                if left < right && windows.iter().all(|&(l, r)| right + 1 < l || left > r + 1) {
                    windows.push((left, right));
                }
            }
            windows.sort();
            let scores: Vec<f64> = scores[..rows].iter().map(|&s| f64::from(s) / 5.0).collect();
            let file = LabelledFile { name: "f".into(), rows, windows };
            let files = vec![(file, scores.clone())];
            let profile = profile(fp, 1.0);
            let result = &score_corpus(&files, std::slice::from_ref(&profile))[0];
            let mut best = brute_force(&files, &profile, 1.1);
            for threshold in &scores {
                best = best.max(brute_force(&files, &profile, *threshold));
            }
            proptest::prop_assert!((result.raw - best).abs() < 1e-9, "sweep {} brute {}", result.raw, best);
        }
    }

    #[test]
    fn a_detection_at_a_window_start_is_perfect_and_silence_is_null() {
        let file = LabelledFile {
            name: "f".into(),
            rows: 100,
            windows: vec![(40, 49)],
        };
        let mut scores = vec![0.0; 100];
        scores[40] = 1.0;
        let perfect = &score_corpus(&[(file.clone(), scores)], &[profile(0.11, 1.0)])[0];
        assert!((perfect.normalised() - 100.0).abs() < 1e-9);
        let silent = &score_corpus(&[(file, vec![0.5; 100])], &[profile(0.11, 1.0)])[0];
        assert_eq!(silent.normalised(), 0.0);
    }
}
