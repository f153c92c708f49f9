//! The incidents operator gives the same final incidents whatever the
//! number of workers and however the input is batched.
//!
//! `pipelines/k8s-rca.toml` runs over a labelled `k8s` scenario (hard
//! setting: skew, reordering, duplicates) with 1 and with 2 workers, and
//! `pulse eval rca`'s replay (one worker, one-second granules, its own
//! batching) runs over the same file. With 2 workers the file is cut in two
//! byte ranges, so the tenants' events reach the operator's front in other
//! batches and the frontier moves in other steps; incident grouping must
//! not depend on that (it once did: an incident quiet for longer than the
//! quiet period stayed open until the end of a batch and swallowed the next
//! fault's errors). All three must write the same incidents, the same
//! symptoms and the same ranked causes.

mod common;

use std::io::Write;
use std::path::Path;

use common::{TempDir, load_pipeline, read_jsonl, run_pipeline};
use pulse_connectors::generator::k8s::{K8sConfig, generate};
use pulse_operators::incidents::IncidentsConfig;
use serde_json::Value;

/// Writes a small hard scenario (2 tenants × 4 faults, ~46 min of event time).
fn write_scenario(path: &Path) -> usize {
    let config = K8sConfig {
        tenants: 2,
        faults_per_tenant: 4,
        seed: 20,
        ..K8sConfig::default()
    };
    let (events, key) = generate(&config);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create the events file"));
    for event in &events {
        serde_json::to_writer(&mut out, event).expect("write an event");
        out.write_all(b"\n").expect("write an event");
    }
    out.flush().expect("write the events file");
    key.faults.len()
}

/// What must agree between runs: tenant, id, opening, symptom and ranked causes.
fn essentials(row: &Value) -> Value {
    serde_json::json!({
        "tenant": row["tenant"],
        "incident_id": row["incident_id"],
        "opened_at": row["opened_at"],
        "symptom": [row["symptom_kind"], row["symptom_namespace"], row["symptom_name"]],
        "causes": row["causes"].as_str().map(|text| serde_json::from_str::<Value>(text).expect("causes are JSON")),
    })
}

fn sorted(mut rows: Vec<Value>) -> Vec<Value> {
    rows.sort_by_key(|row| (row["tenant"].to_string(), row["incident_id"].to_string()));
    rows
}

fn run_with(input: &Path, workers: usize) -> Vec<Value> {
    let out = TempDir::new(&format!("rca-workers-{workers}"));
    let output = out.join("incidents.jsonl");
    let pipeline = load_pipeline(
        &common::workspace_dir().join("pipelines/k8s-rca.toml"),
        &[
            ("RCA_INPUT", &input.display().to_string()),
            ("RCA_OUTPUT", &output.display().to_string()),
        ],
    );
    run_pipeline(&pipeline, workers);
    let dead_letters = out.join("incidents.jsonl.dead-letter.jsonl");
    assert!(
        !dead_letters.exists(),
        "with {workers} workers events were dead-lettered (late?): {:?}",
        std::fs::read_to_string(&dead_letters).map(|t| t.lines().take(3).map(str::to_owned).collect::<Vec<_>>())
    );
    sorted(read_jsonl(&output).iter().map(essentials).collect())
}

#[test]
fn one_and_two_workers_and_the_eval_replay_find_the_same_incidents() {
    let dir = TempDir::new("rca-workers");
    let input = dir.join("events.jsonl");
    let faults = write_scenario(&input);

    let one = run_with(&input, 1);
    let two = run_with(&input, 2);
    assert!(
        one.len() >= faults,
        "{} incidents for {faults} faults: the scenario should open at least one per fault",
        one.len()
    );
    assert!(
        one.iter()
            .all(|row| row["causes"].as_array().is_some_and(|c| !c.is_empty())),
        "every incident should have ranked causes"
    );
    assert_eq!(
        one.len(),
        two.len(),
        "1 and 2 workers found different numbers of incidents"
    );
    for (a, b) in one.iter().zip(&two) {
        assert_eq!(a, b, "1 and 2 workers disagree");
    }

    let text = std::fs::read_to_string(&input).expect("read the events");
    let events = text
        .lines()
        .map(|line| pulse_core::Event::from_json(line.as_bytes()).expect("generated events decode"))
        .collect();
    let (reports, _) = pulse::eval::rca::replay(events, &IncidentsConfig::default());
    let mut replayed: Vec<(String, String, u64, usize)> = reports
        .iter()
        .map(|r| (r.tenant.clone(), r.incident_id.clone(), r.opened_at, r.causes.len()))
        .collect();
    replayed.sort();
    let piped: Vec<(String, String, u64, usize)> = one
        .iter()
        .map(|row| {
            (
                row["tenant"].as_str().unwrap_or_default().to_owned(),
                row["incident_id"].as_str().unwrap_or_default().to_owned(),
                row["opened_at"].as_u64().unwrap_or_default(),
                row["causes"].as_array().map_or(0, Vec::len),
            )
        })
        .collect();
    assert_eq!(replayed, piped, "pulse eval rca and the pipeline disagree");
}
