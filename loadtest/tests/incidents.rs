//! The `incidents` scenario against a pipeline whose gateway's
//! `POST /api/v1/events` feeds an `incidents` operator: every late cause
//! posted comes back ranked on the `/ws` topic `incidents`, timed from its
//! POST, no sooner than the watermark allows.

mod common;

use common::{Gateway, PASSWORD, USER, assert_consistent, assert_svg, loadtest_ok, read_report, scratch, series};

/// Posted events into the incidents operator, 250 ms of allowed disorder.
const INCIDENTS_PIPELINE: &str = r#"
[sources.posted]
type = "http"
max_out_of_orderness = "250ms"

[operators.incidents]
type = "incidents"
inputs = ["posted"]

[sinks.live]
type = "websocket"
inputs = ["incidents"]
"#;

#[test]
fn late_causes_are_timed_to_the_version_that_ranks_them() {
    let gateway = Gateway::start("incidents", INCIDENTS_PIPELINE);
    let out = scratch("incidents-report");
    let out_arg = out.display().to_string();
    let run = loadtest_ok(&[
        "incidents",
        "--target",
        &gateway.base,
        "--rate",
        "200",
        "--count",
        "4",
        "--causes-per-incident",
        "2",
        "--duration",
        "120s",
        "--user",
        USER,
        "--password",
        PASSWORD,
        "--out",
        &out_arg,
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let report = read_report(&out);
    assert_eq!(report["scenario"], "incidents");
    let ranked = series(&report, "incidents.cause_to_ranking");
    assert_consistent(ranked);
    assert_eq!(
        (ranked["ok"].as_u64(), ranked["errors_total"].as_u64()),
        (Some(4), Some(0)),
        "every cause is ranked within the wait: {ranked:#}\n{stderr}"
    );
    // A cause stamped with its arrival is final once the watermark (newest
    // event time − 250 ms) passes it: never sooner.
    let fastest = ranked["latency_ms"]["min"].as_f64().unwrap();
    assert!(fastest >= 250.0, "{ranked:#}");
    let opened = series(&report, "incidents.open");
    assert_consistent(opened);
    assert_eq!(opened["ok"].as_u64(), Some(2), "two causes per incident: {opened:#}");
    let background = series(&report, "incidents.background");
    assert!(background["ok"].as_u64() > Some(0), "{background:#}");
    assert_eq!(background["errors_total"].as_u64(), Some(0), "{background:#}");
    let notes = report["notes"].to_string();
    assert!(notes.contains("4 causes timed in 2 incidents"), "{notes}");
    assert_svg(&out, "latency_percentiles.svg", &["incidents.cause_to_ranking"]);
}
