//! Every scenario of `pulse-loadtest` against a real pipeline and gateway on
//! loopback, judged by the report it writes: counts that add up, latencies
//! recorded, SVG charts that parse and show the series; and the refusals:
//! a remote target, a target that is down, a refused credential.

mod common;

use std::path::Path;

use common::{
    Gateway, PASSWORD, USER, assert_consistent, assert_svg, loadtest, loadtest_ok, read_report, scratch, series,
};

const API_SERIES: [&str; 3] = ["api.kv_get", "api.kv_put", "api.query"];

fn assert_charts(dir: &Path, timed: &[&str]) {
    assert_svg(
        dir,
        "latency_over_time.svg",
        &timed
            .iter()
            .map(|s| format!("{s} p99"))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_svg(dir, "latency_percentiles.svg", timed);
    assert_svg(
        dir,
        "throughput.svg",
        &timed
            .iter()
            .map(|s| format!("{s} ok/s"))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
}

#[test]
fn api_sends_exactly_rate_times_duration_and_reports_each_operation() {
    let gateway = Gateway::sensors("api");
    let out = scratch("api-report");
    let out_arg = out.display().to_string();
    let run = loadtest_ok(&[
        "api",
        "--target",
        &gateway.base,
        "--duration",
        "3s",
        "--rate",
        "150",
        "--keys",
        "10",
        "--user",
        USER,
        "--password",
        PASSWORD,
        "--out",
        &out_arg,
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("api.kv_get"), "the summary names the series:\n{stderr}");

    let report = read_report(&out);
    assert_eq!(report["scenario"], "api");
    assert_eq!(report["target_rate"], 150.0);
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);
    assert!(report["machine"]["memory_bytes"].as_u64().unwrap() > 0);
    assert!(!report["machine"]["os"].as_str().unwrap().is_empty());
    let mut sent = 0;
    for name in API_SERIES {
        let series = series(&report, name);
        assert_consistent(series);
        assert_eq!(series["errors_total"], 0, "{name}: {series:#}");
        assert!(series["ok"].as_u64().unwrap() > 0, "{name}");
        assert_eq!(series["percentile_curve"].as_array().unwrap().len(), 16);
        sent += series["ok"].as_u64().unwrap();
    }
    // Open loop: request i is due at i / 150 s, and every one due within 3 s is sent.
    assert_eq!(sent, 450, "{report:#}");
    // The mix is 60/20/20.
    assert_eq!(series(&report, "api.kv_get")["ok"], 270);
    // Rates are per second of sending, whatever the answers of the last requests took.
    // (The last request is due at 2.993 s, so the run may end just before 3 s.)
    let rate = series(&report, "api.kv_get")["rate_per_second"].as_f64().unwrap();
    assert!((90.0..90.5).contains(&rate), "{rate}");
    assert!(report["duration_seconds"].as_f64().unwrap() >= 2.99);
    assert_charts(&out, &API_SERIES);
}

#[test]
fn api_counts_refusals_by_kind_and_still_succeeds() {
    // A freshly registered user has the `free` plan: 100 requests a minute.
    let gateway = Gateway::sensors("api-limited");
    let out = scratch("api-limited-report");
    let out_arg = out.display().to_string();
    loadtest_ok(&[
        "api",
        "--target",
        &gateway.base,
        "--duration",
        "2s",
        "--rate",
        "100",
        "--keys",
        "5",
        "--mix",
        "get=1",
        "--out",
        &out_arg,
    ]);
    let report = read_report(&out);
    let gets = series(&report, "api.kv_get");
    assert_consistent(gets);
    let refused = gets["errors"]["http_429"].as_u64().unwrap_or(0);
    assert!(refused > 0, "the rate limit refused some: {gets:#}");
    assert_eq!(gets["ok"].as_u64().unwrap() + refused, 200, "{gets:#}");
}

#[test]
fn an_api_key_authenticates_the_api_load() {
    let gateway = Gateway::sensors("api-key");
    let key = gateway.api_key();
    let out = scratch("api-key-report");
    let out_arg = out.display().to_string();
    loadtest_ok(&[
        "api",
        "--target",
        &gateway.base,
        "--duration",
        "1s",
        "--rate",
        "50",
        "--keys",
        "5",
        "--api-key",
        &key,
        "--out",
        &out_arg,
    ]);
    let report = read_report(&out);
    let ok: u64 = API_SERIES
        .iter()
        .map(|name| {
            let series = series(&report, name);
            assert_eq!(series["errors_total"], 0, "{series:#}");
            series["ok"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(ok, 50);
}

#[test]
fn ws_subscribers_time_the_hub_and_write_the_common_report() {
    let gateway = Gateway::sensors("ws");
    let token = gateway.token();
    let out = scratch("ws-report");
    let out_arg = out.display().to_string();
    let run = loadtest(&[
        "ws",
        "--target",
        &gateway.base,
        "--clients",
        "4",
        "--warmup",
        "1",
        "--duration",
        "3s",
        "--token",
        &token,
        "--json",
        "--out",
        &out_arg,
    ]);
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(printed["connected"], 4);
    let report = read_report(&out);
    assert_eq!(report["scenario"], "ws");
    let delivery = series(&report, "ws.delivery");
    assert_consistent(delivery);
    // 5 metrics of one tenant close every second, to each of 4 clients, for about 3 s.
    let windows = delivery["ok"].as_u64().unwrap();
    assert!((20..=100).contains(&windows), "{windows} windows: {delivery:#}");
    assert_eq!(printed["messages_total"].as_u64().unwrap(), windows);
    assert_charts(&out, &["ws.delivery"]);
}

#[test]
fn a_remote_target_is_refused_unless_allowed() {
    let out = scratch("remote");
    let out_arg = out.display().to_string();
    for scenario in ["api", "events", "mixed"] {
        let run = loadtest(&[
            scenario,
            "--target",
            "http://192.0.2.10:8080",
            "--duration",
            "1s",
            "--out",
            &out_arg,
        ]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{scenario}: {stderr}");
        assert!(
            stderr.contains("not a loopback address") && stderr.contains("--allow-remote"),
            "{stderr}"
        );
    }
    let run = loadtest(&["ws", "--url", "ws://192.0.2.10:8080/ws", "--duration", "1s"]);
    assert_eq!(run.status.code(), Some(1));
    assert!(!out.join("report.json").exists(), "a refused run writes no report");
    // `--allow-remote` is not tried here: tests send nothing beyond loopback
    // (the unit tests of `target.rs` check that it lifts the refusal).
}

#[test]
fn a_down_target_or_a_refused_credential_fails_the_run() {
    let out = scratch("down");
    let out_arg = out.display().to_string();
    let nothing = format!("http://127.0.0.1:{}", common::free_port());
    let run = loadtest(&["api", "--target", &nothing, "--duration", "1s", "--out", &out_arg]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the target is down"), "{stderr}");
    let run = loadtest(&[
        "ws",
        "--target",
        &nothing,
        "--clients",
        "2",
        "--duration",
        "1s",
        "--connect-timeout",
        "2",
    ]);
    assert_eq!(run.status.code(), Some(1), "{}", String::from_utf8_lossy(&run.stderr));

    let gateway = Gateway::sensors("refused");
    for credential in [["--token", "not-a-token"], ["--api-key", "pk_acme_nope"]] {
        let run = loadtest(&[
            "api",
            "--target",
            &gateway.base,
            "--duration",
            "1s",
            "--out",
            &out_arg,
            credential[0],
            credential[1],
        ]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("authentication refused"), "{stderr}");
    }
    let run = loadtest(&[
        "api",
        "--target",
        &gateway.base,
        "--duration",
        "1s",
        "--user",
        USER,
        "--password",
        "Wrong-passw0rd",
        "--out",
        &out_arg,
    ]);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        !out.join("report.json").exists(),
        "a run that could not be done writes no report"
    );
}

#[test]
fn compare_prints_the_change_of_every_series() {
    let gateway = Gateway::sensors("compare");
    let (before, after) = (scratch("compare-before"), scratch("compare-after"));
    for (dir, rate) in [(&before, "50"), (&after, "100")] {
        let dir = dir.display().to_string();
        loadtest_ok(&[
            "api",
            "--target",
            &gateway.base,
            "--duration",
            "2s",
            "--rate",
            rate,
            "--keys",
            "5",
            "--user",
            USER,
            "--password",
            PASSWORD,
            "--out",
            &dir,
        ]);
    }
    let run = loadtest_ok(&[
        "compare",
        &before.display().to_string(),
        &after.join("report.json").display().to_string(),
    ]);
    let text = String::from_utf8_lossy(&run.stdout);
    for expected in [
        "api.kv_get",
        "api.kv_put",
        "api.query",
        "p99 ms",
        "rate /s",
        "before",
        "after",
    ] {
        assert!(text.contains(expected), "{expected} missing:\n{text}");
    }
    // Twice the rate: the successes of each operation double.
    let kv_get = text.split("api.kv_get").nth(1).unwrap();
    let ok_line = kv_get.lines().find(|l| l.trim_start().starts_with("ok ")).unwrap();
    assert!(ok_line.contains("+100.0%"), "{ok_line}");
    let missing = loadtest(&["compare", &before.display().to_string(), "/nonexistent/report.json"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/report.json"));
}

#[test]
fn the_shipped_pipelines_load() {
    for file in ["pipeline.toml", "pipeline-http.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let vars = |name: &str| (name == "PULSE_DEMO_PASSWORD").then(|| PASSWORD.to_owned());
        let pipeline = pulse::Pipeline::parse(&path, &text, &vars)
            .unwrap_or_else(|error| panic!("loadtest/{file} does not load:\n{error}"));
        assert_eq!(pipeline.path, path);
    }
}

#[test]
fn ctrl_c_stops_the_run_and_still_writes_the_report() {
    let gateway = Gateway::sensors("interrupted");
    let out = scratch("interrupted-report");
    let out_arg = out.display().to_string();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pulse-loadtest"))
        .args([
            "api",
            "--target",
            &gateway.base,
            "--duration",
            "60s",
            "--rate",
            "50",
            "--keys",
            "5",
            "--user",
            USER,
            "--password",
            PASSWORD,
            "--out",
            &out_arg,
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "Ctrl-C did not end the run"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(0));
    let report = read_report(&out);
    assert!(
        report["notes"].to_string().contains("interrupted by Ctrl-C"),
        "{report:#}"
    );
    let sent: u64 = API_SERIES
        .iter()
        .map(|name| series(&report, name)["ok"].as_u64().unwrap())
        .sum();
    assert!((50..=200).contains(&sent), "about 3 s at 50/s: {sent}");
    // Rates are over the time actually spent sending, not the 60 s asked for.
    let rate: f64 = API_SERIES
        .iter()
        .map(|name| series(&report, name)["rate_per_second"].as_f64().unwrap())
        .sum();
    assert!(rate > 30.0, "{rate}");
}

#[test]
fn bad_options_exit_1_naming_the_option() {
    for (args, says) in [
        (&["api", "--rate", "NaN"][..], "positive number"),
        (&["api", "--rate=-5"][..], "positive number"),
        (&["events", "--duration", "soon"][..], "not a duration"),
        (&["api", "--duration", "0s"][..], "more than zero"),
        (&["api", "--mix", "read=1"][..], "not an operation"),
        (&["api", "--target", "127.0.0.1:8080"][..], "expected a URL"),
        (&["ws", "--duration", "0"][..], "more than zero"),
    ] {
        let run = loadtest(args);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    assert_eq!(loadtest(&["--help"]).status.code(), Some(0));
}
