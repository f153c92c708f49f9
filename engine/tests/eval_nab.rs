//! `pulse eval nab-score` and `pulse eval nab` on the NAB development split
//! (`../shared/datasets/nab-dev`, or `$PULSE_NAB_DATA`).
//!
//! The scorer is proven on the published results of Numenta's HTM detector:
//! it must print the scores NAB's own code gives on these files. The shipped
//! results are gzipped; the test unpacks them with `gunzip` into a temp dir.

use std::path::{Path, PathBuf};
use std::process::Command;

fn nab_data() -> PathBuf {
    std::env::var_os("PULSE_NAB_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/nab-dev"))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pulse-eval-nab-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Copies `reference-results/numenta` to `dir`, gunzipping every file.
fn unpack_reference_results(data: &Path, dir: &Path) {
    let reference = data.join("reference-results/numenta");
    for category in std::fs::read_dir(&reference).expect("reference-results/numenta") {
        let category = category.unwrap().path();
        let target = dir.join(category.file_name().unwrap());
        std::fs::create_dir_all(&target).unwrap();
        for file in std::fs::read_dir(&category).unwrap() {
            let file = file.unwrap().path();
            let name = file
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .trim_end_matches(".gz")
                .to_owned();
            let output = Command::new("gunzip")
                .arg("-c")
                .arg(&file)
                .output()
                .expect("gunzip is installed");
            assert!(output.status.success(), "gunzip {}", file.display());
            std::fs::write(target.join(name), output.stdout).unwrap();
        }
    }
}

#[test]
fn the_scorer_reproduces_htm_on_the_dev_split() {
    let data = nab_data();
    let results = temp_dir("htm");
    unpack_reference_results(&data, &results);
    let output = Command::new(env!("CARGO_BIN_EXE_pulse"))
        .args(["eval", "nab-score", "--detector", "numenta", "--data"])
        .arg(&data)
        .arg("--results")
        .arg(&results)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("numenta standard=66.59 reward_low_FP_rate=60.81 reward_low_FN_rate=71.06"),
        "{stdout}"
    );
    std::fs::remove_dir_all(&results).unwrap();
}

#[test]
fn missing_results_name_the_file() {
    let data = nab_data();
    let results = temp_dir("missing");
    let output = Command::new(env!("CARGO_BIN_EXE_pulse"))
        .args(["eval", "nab-score", "--data"])
        .arg(&data)
        .arg("--results")
        .arg(&results)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("pulse_") && stderr.contains(".csv"), "{stderr}");
    std::fs::remove_dir_all(&results).unwrap();
}

/// A NAB-layout directory with one file of `rows` rows in a category NAB does not have.
fn synthetic_corpus(name: &str, rows: usize, bad_line: Option<(usize, &str)>) -> PathBuf {
    let dir = temp_dir(name);
    let category = dir.join("data/madeUpCategory");
    std::fs::create_dir_all(&category).unwrap();
    let mut text = String::from("timestamp,value\n");
    for row in 0..rows {
        let line = row + 2;
        let (hour, minute) = (row / 12, row % 12 * 5);
        let value = match bad_line {
            Some((bad, replacement)) if bad == line => replacement.to_owned(),
            _ => format!("{}", 50.0 + (row % 17) as f64 + if row == 700 { 80.0 } else { 0.0 }),
        };
        text.push_str(&format!(
            "2020-01-{:02} {:02}:{:02}:00,{value}\n",
            1 + hour / 24,
            hour % 24,
            minute
        ));
    }
    std::fs::write(category.join("series.csv"), text).unwrap();
    dir
}

#[test]
fn eval_nab_writes_one_scored_row_per_data_row_for_any_category() {
    let data = synthetic_corpus("layout", 800, None);
    let out = data.join("results");
    let output = Command::new(env!("CARGO_BIN_EXE_pulse"))
        .args(["eval", "nab", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("configuration (built-in defaults)"), "{stdout}");
    let input = std::fs::read_to_string(data.join("data/madeUpCategory/series.csv")).unwrap();
    let results = std::fs::read_to_string(out.join("madeUpCategory/pulse_series.csv")).unwrap();
    assert_eq!(results.lines().next(), Some("timestamp,value,anomaly_score"));
    assert_eq!(results.lines().count(), input.lines().count());
    let mut best = (0usize, f64::MIN);
    for (index, (data_line, result_line)) in input.lines().zip(results.lines()).enumerate().skip(1) {
        let (prefix, score) = result_line.rsplit_once(',').unwrap();
        assert_eq!(prefix, data_line, "same rows, same order");
        let score: f64 = score.parse().unwrap();
        assert!((0.0..=1.0).contains(&score), "{result_line}");
        if score > best.1 {
            best = (index - 1, score);
        }
    }
    assert_eq!(best.0, 700, "the spike scores highest");
    std::fs::remove_dir_all(&data).unwrap();
}

#[test]
fn eval_nab_names_the_file_and_line_of_a_bad_row() {
    for (name, bad) in [("malformed", "5x"), ("nan", "NaN")] {
        let data = synthetic_corpus(name, 300, Some((57, bad)));
        let output = Command::new(env!("CARGO_BIN_EXE_pulse"))
            .args(["eval", "nab", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(data.join("results"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success());
        assert!(stderr.contains("series.csv:57:"), "{stderr}");
        std::fs::remove_dir_all(&data).unwrap();
    }
}
