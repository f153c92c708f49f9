//! `pulse eval rca` on the held-out scenario generator (`benches/rca/gen_scenarios.py`,
//! written independently of the `k8s` profile): every event it writes must decode
//! (no line refused), the replay must open incidents, and the score must cover
//! every fault of the answer key, for the causal ranker and the baseline. The key
//! must be well formed and the generator deterministic per seed.
//!
//! The generator is Python (stdlib only); without `python3` on PATH the test says
//! so loudly and passes, since CI images have it.

mod common;

use std::process::Command;

use common::{TempDir, pulse_bin, workspace_dir};

/// `python3`, when it runs.
fn python3() -> Option<&'static str> {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false);
    ok.then_some("python3")
}

/// The number after `name=` in `line`, e.g. `detected=3/4` → (3, 4).
fn ratio_after(line: &str, name: &str) -> (usize, usize) {
    let start = line.find(name).unwrap_or_else(|| panic!("no `{name}` in {line}")) + name.len();
    let text: String = line[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '/')
        .collect();
    let (a, b) = text
        .split_once('/')
        .unwrap_or_else(|| panic!("no ratio after `{name}` in {line}"));
    (a.parse().unwrap(), b.parse().unwrap())
}

#[test]
fn heldout_scenarios_decode_and_are_scored() {
    let Some(python) = python3() else {
        eprintln!("SKIPPED heldout_scenarios_decode_and_are_scored: python3 is not on PATH");
        return;
    };
    let dir = TempDir::new("eval-rca-heldout");
    let events = dir.join("events.jsonl");
    let key = dir.join("key.json");
    let script = workspace_dir().join("benches/rca/gen_scenarios.py");
    let generated = Command::new(python)
        .env("PYTHONHASHSEED", "1")
        .arg(&script)
        .args([
            "--seed",
            "5",
            "--tenants",
            "2",
            "--faults",
            "2",
            "--scrape",
            "60",
            "--out",
        ])
        .arg(&events)
        .arg("--answers")
        .arg(&key)
        .output()
        .expect("python3 runs");
    assert!(
        generated.status.success(),
        "generator failed: {}",
        String::from_utf8_lossy(&generated.stderr)
    );

    let answers: serde_json::Value = serde_json::from_slice(&std::fs::read(&key).unwrap()).unwrap();
    let faults = answers["faults"].as_array().expect("faults");
    assert!(
        faults.len() >= 3,
        "the key should hold the faults of two tenants, has {}",
        faults.len()
    );
    for fault in faults {
        // A labelled fault names its cause among the accepted answers, began
        // before its last symptom, and showed at least one symptom.
        let accepted = fault["accepted"].as_array().expect("accepted");
        assert!(accepted.contains(&fault["root_cause"]), "{fault}");
        assert!(fault["start"].as_u64() <= fault["end"].as_u64(), "{fault}");
        assert!(fault["symptoms"].as_array().is_some_and(|s| !s.is_empty()), "{fault}");
    }
    let faults = faults.len();
    let lines = std::fs::read_to_string(&events).unwrap().lines().count();

    // The same seed writes the same scenario, whatever Python's hash seed (checked
    // at a smaller size, to keep the test fast).
    let small = |hash_seed: &str, out: &std::path::Path| {
        let run = Command::new(python)
            .env("PYTHONHASHSEED", hash_seed)
            .arg(&script)
            .args([
                "--seed",
                "6",
                "--tenants",
                "1",
                "--faults",
                "2",
                "--scrape",
                "60",
                "--out",
            ])
            .arg(out)
            .arg("--answers")
            .arg(out.with_extension("json"))
            .output()
            .expect("python3 runs");
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        std::fs::read(out).unwrap()
    };
    assert!(
        small("1", &dir.join("once.jsonl")) == small("2", &dir.join("again.jsonl")),
        "two runs with one seed wrote different events"
    );

    let predictions = dir.join("incidents.jsonl");
    let out = Command::new(pulse_bin())
        .args(["eval", "rca"])
        .arg(&events)
        .arg("--out")
        .arg(&predictions)
        .arg("--answers")
        .arg(&key)
        .output()
        .expect("pulse runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pulse eval rca failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every line the generator wrote is an event pulse accepts.
    assert!(
        stdout.starts_with(&format!("{lines} events (0 refused)")),
        "expected all {lines} events accepted: {stdout}"
    );

    // Incidents were written, in the documented shape.
    let incidents: Vec<serde_json::Value> = std::fs::read_to_string(&predictions)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(!incidents.is_empty(), "no incident in {stdout}");
    for incident in &incidents {
        assert!(incident["symptom"]["kind"].is_string(), "{incident}");
        assert!(
            incident["causes"].as_array().is_some_and(|c| c.len() <= 10),
            "{incident}"
        );
    }

    // Both rankers are scored on every fault of the key.
    let all: Vec<&str> = stdout.lines().skip_while(|l| !l.starts_with("all ")).take(2).collect();
    assert_eq!(all.len(), 2, "no overall score lines in {stdout}");
    for line in all {
        let (detected, total) = ratio_after(line, "detected=");
        assert_eq!(total, faults, "{line}");
        assert!(detected <= total, "{line}");
    }
    assert!(stdout.contains("incident precision="), "{stdout}");
}
