//! The incidents Kafka route against the real broker on 127.0.0.1:9092:
//! tenants' `{tenant}.alerts.raw` topics in, every incident's final report
//! out on the derived incidents topic, keyed by tenant and incident id, the
//! same reports the file sink writes.

mod common;

use std::collections::BTreeMap;

use common::kafka::{broker, create_topic, produce_file, pulse, read_topic, unique};
use common::{TempDir, load_pipeline, read_jsonl, run_pipeline};
use rdkafka::Message;
use serde_json::Value;

/// Sorted by (tenant, incident_id).
fn by_incident(rows: Vec<Value>) -> Vec<Value> {
    let mut rows = rows;
    rows.sort_by_key(|row| (row["tenant"].to_string(), row["incident_id"].to_string()));
    rows
}

#[test]
fn incidents_of_alerts_raw_topics_go_to_the_incidents_topic() {
    let Some(brokers) = broker() else { return };
    let dir = TempDir::new("incidents-kafka");
    let events = dir.join("events.jsonl");
    let answers = dir.join("answers.json");
    pulse(&[
        "eval",
        "rca-scenario",
        "--out",
        &events.display().to_string(),
        "--answers",
        &answers.display().to_string(),
        "--tenants",
        "2",
        "--faults",
        "2",
        "--seed",
        "5",
    ]);
    // One topic per tenant, `{tenant}_{run}.alerts.raw`, in delivery order.
    let run = unique("r").replace('-', "_");
    let mut per_tenant: BTreeMap<String, String> = BTreeMap::new();
    for line in std::fs::read_to_string(&events).unwrap().lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        let text = per_tenant
            .entry(event["tenant"].as_str().unwrap().to_owned())
            .or_default();
        text.push_str(line);
        text.push('\n');
    }
    assert_eq!(per_tenant.len(), 2, "two tenants");
    for (tenant, text) in &per_tenant {
        let topic = format!("{tenant}_{run}.alerts.raw");
        create_topic(&brokers, &topic, 1);
        let file = dir.join(&format!("{tenant}.jsonl"));
        std::fs::write(&file, text).unwrap();
        produce_file(&brokers, &topic, &file);
    }
    let incidents_topic = format!("incidents_{run}");
    create_topic(&brokers, &incidents_topic, 2);

    let pipeline = dir.join("pipeline.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
[sources.alerts]
type = "kafka"
brokers = "{brokers}"
topic_pattern = "^[a-z]+_{run}\\.alerts\\.raw$"
group = "{group}"
until = "end"
max_out_of_orderness = "5s"

[operators.incidents]
type = "incidents"
inputs = ["alerts"]

[sinks.file]
type = "file"
inputs = ["incidents"]
path = "{out}"

[sinks.topic]
type = "kafka"
inputs = ["incidents"]
brokers = "{brokers}"
topic = "{incidents_topic}"
key_fields = ["tenant", "incident_id"]
"#,
            group = unique("g"),
            out = dir.join("incidents.jsonl").display(),
        ),
    )
    .unwrap();
    run_pipeline(&load_pipeline(&pipeline, &[]), 2);

    let written = by_incident(read_jsonl(&dir.join("incidents.jsonl")));
    assert!(
        written.len() >= 2,
        "the scenario's faults give incidents: {}",
        written.len()
    );
    let messages = read_topic(&brokers, &incidents_topic);
    let mut published = Vec::new();
    for message in &messages {
        let value: Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
        let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
        let expected = format!(
            "{}/{}",
            value["tenant"].as_str().unwrap(),
            value["incident_id"].as_str().unwrap()
        );
        assert_eq!(key, expected, "keyed by tenant and incident id");
        published.push(value);
    }
    let published = by_incident(published);
    assert_eq!(
        published, written,
        "the topic holds the file sink's incidents, once each"
    );
    let tenants: Vec<&str> = published.iter().map(|row| row["tenant"].as_str().unwrap()).collect();
    assert!(tenants.contains(&"acme") && tenants.contains(&"globex"), "{tenants:?}");
    for row in &published {
        let causes: Vec<Value> = serde_json::from_str(row["causes"].as_str().unwrap()).unwrap();
        assert!(causes.len() <= 10, "{row}");
        assert!(
            row["closed_at"].as_u64() >= row["opened_at"].as_u64(),
            "final reports are closed: {row}"
        );
    }
}
