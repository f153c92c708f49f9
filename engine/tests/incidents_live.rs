//! Incidents live, through the `pulse` binary over real HTTP and WebSocket on
//! 127.0.0.1: the `k8s` generator plays two tenants' clusters fast into an
//! incidents operator read by a `websocket` sink; the gateway serves
//! `/api/v1/incidents`, `/api/v1/rca` and `/api/v1/resources` and the topic
//! `incidents`, each tenant seeing only its own.

mod common;

#[path = "ops_stack/ws_client.rs"]
mod ws_client;

use common::browser::Browser;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::TempDir;
use common::process::{free_port, http, pulse_token, run_with_gateway, terminate, wait_until};
use serde_json::Value;
use ws_client::WsClient;

const SECRET: &str = "an-engine-test-secret-of-more-than-32-characters";

/// Two tenants (`acme`, `globex`), a few faults each, an hour of event time every 6 s.
fn pipeline(dir: &TempDir, port: u16) -> String {
    let text = format!(
        r#"
[engine]
workers = 2
dead_letter_path = "{dir}/dead-letter.jsonl"

[sources.cluster]
type = "generator"
profile = "k8s"
speed = 600
max_out_of_orderness = "5s"
k8s = {{ tenants = 2, faults_per_tenant = 3, seed = 11 }}

[operators.incidents]
type = "incidents"
inputs = ["cluster"]
quiet = "1m"

[sinks.final]
type = "file"
inputs = ["incidents"]
path = "{dir}/incidents.jsonl"

[sinks.live]
type = "websocket"
inputs = ["incidents"]

[gateway]
listen = "127.0.0.1:{port}"
data_dir = "{dir}/gateway"
rate_limit = {{ default_plan = "enterprise" }}
"#,
        dir = dir.display()
    );
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn get(address: SocketAddr, path: &str, token: &str) -> (u16, Value) {
    http(address, "GET", path, Some(token), None)
}

#[test]
fn incidents_appear_live_on_the_api_and_the_websocket_per_tenant() {
    let dir = TempDir::new("incidents-live");
    let port = free_port();
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    let child = run_with_gateway(&pipeline(&dir, port), SECRET, address);
    let acme = pulse_token(SECRET, "acme", "read");
    let globex = pulse_token(SECRET, "globex", "read");

    // Closed incidents with ranked causes come up while the scenario plays.
    let mut closed = Value::Null;
    wait_until(
        "a closed incident of acme with causes",
        Duration::from_secs(240),
        || {
            let (status, page) = get(address, "/api/v1/incidents?status=closed&page_size=500", &acme);
            assert_eq!(status, 200, "{page}");
            let found = page["incidents"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|i| i["cause_count"].as_u64() > Some(0));
            if let Some(incident) = found {
                closed = incident.clone();
            }
            found.is_some()
        },
    );
    assert_eq!(closed["tenant"], "acme");
    assert_eq!(closed["status"], "closed");
    assert!(closed["closed_at"].as_u64() >= closed["opened_at"].as_u64(), "{closed}");
    assert!(closed["revision"].as_u64() >= Some(2), "opened, then closed: {closed}");
    let id = closed["incident_id"].as_str().unwrap().to_owned();

    let (status, incident) = get(address, &format!("/api/v1/incidents/{id}"), &acme);
    assert_eq!(status, 200, "{incident}");
    assert_eq!(incident["incident_id"], id.as_str());
    assert!(
        incident["causes"].as_array().is_some_and(|c| !c.is_empty()),
        "{incident}"
    );

    let (status, rca) = get(address, &format!("/api/v1/rca?incident_id={id}"), &acme);
    assert_eq!(status, 200, "{rca}");
    let causes = rca["causes"].as_array().unwrap();
    assert!(causes.len() <= 10, "at most ten causes: {rca}");
    let mut last = f64::INFINITY;
    for (rank, cause) in causes.iter().enumerate() {
        assert_eq!(cause["rank"].as_u64(), Some(rank as u64 + 1), "{cause}");
        let confidence = cause["confidence"].as_f64().unwrap();
        assert!(
            (0.0..=1.0).contains(&confidence) && confidence <= last,
            "ranked best first: {rca}"
        );
        last = confidence;
        assert!(cause["explanation"].as_str().is_some_and(|e| !e.is_empty()), "{cause}");
        assert!(cause["resource"]["kind"].is_string(), "{cause}");
    }

    // The WebSocket topic carries every version of acme's incidents (the
    // scenario keeps playing), and nothing of globex.
    let mut socket = WsClient::connect(address, &acme);
    socket.send(r#"{"type":"subscribe","topic":"incidents"}"#);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut versions: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    while Instant::now() < deadline && versions.values().all(|&n| n < 2) {
        let message: Value = serde_json::from_str(&socket.receive()).unwrap();
        if message["type"] != "incident" {
            continue;
        }
        assert_eq!(message["tenant"], "acme", "{message}");
        assert_eq!(message["operator"], "incidents", "{message}");
        assert!(
            message["causes"].is_array() && message["symptom"]["kind"].is_string(),
            "{message}"
        );
        *versions
            .entry(message["incident_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert!(
        versions.values().any(|&n| n >= 2),
        "an incident's update (e.g. its closing) reaches subscribers: {versions:?}"
    );

    // Resources: a Node by the `_` namespace, with its pods as neighbours.
    // (Between two epochs of the scenario a node may have no edge for a moment.)
    let mut detail = Value::Null;
    wait_until("a node of acme with pods", Duration::from_secs(30), || {
        let (status, nodes) = get(address, "/api/v1/resources?kind=Node&namespace=_", &acme);
        assert_eq!(status, 200, "{nodes}");
        let Some(node) = nodes["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["edges"].as_u64() > Some(0))
        else {
            return false;
        };
        let name = node["name"].as_str().unwrap();
        let (status, found) = get(address, &format!("/api/v1/resources/Node/_/{name}"), &acme);
        assert_eq!(status, 200, "{found}");
        detail = found;
        detail["neighbours"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["relation"] == "RUNS_ON" && n["direction"] == "in")
    });
    assert_eq!(detail["namespace"], "");
    let symptom = &incident["symptom"];
    let symptom_path = format!(
        "/api/v1/resources/{}/{}/{}",
        symptom["kind"].as_str().unwrap(),
        symptom["namespace"].as_str().filter(|n| !n.is_empty()).unwrap_or("_"),
        symptom["name"].as_str().unwrap()
    );
    let (status, symptom_detail) = get(address, &symptom_path, &acme);
    assert_eq!(status, 200, "the symptom's resource is known: {symptom_detail}");
    assert!(
        !symptom_detail["recent_events"].as_array().unwrap().is_empty(),
        "{symptom_detail}"
    );

    // Tenant B never sees tenant A's incidents or resources.
    let (status, _) = get(address, &format!("/api/v1/incidents/{id}"), &globex);
    assert_eq!(status, 404, "globex cannot read acme's incident");
    let (status, _) = get(address, &format!("/api/v1/rca?incident_id={id}"), &globex);
    assert_eq!(status, 404);
    let (status, _) = get(address, &symptom_path, &globex);
    assert_eq!(status, 404, "globex cannot read acme's pod");
    let (_, theirs) = get(address, "/api/v1/incidents?page_size=500", &globex);
    assert!(
        theirs["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["tenant"] == "globex"),
        "{theirs}"
    );

    // Hostile or absent parameters: clear 4xx, and the server keeps serving.
    for (path, expected) in [
        ("/api/v1/incidents?status=bogus", 400),
        ("/api/v1/incidents?page_size=0", 422),
        ("/api/v1/incidents?start=99999999999999999999", 400),
        ("/api/v1/rca", 400),
        ("/api/v1/rca?incident_id=%00%FF", 404),
        ("/api/v1/resources?page=0", 422),
        ("/api/v1/resources/Pod/prod/..%2F..%2Fetc", 404),
        ("/api/v1/incidents/nope", 404),
    ] {
        let (status, body) = get(address, path, &acme);
        assert_eq!(status, expected, "{path}: {body}");
        assert!(body["error"]["code"].is_string(), "{path}: errors are JSON: {body}");
    }
    assert_eq!(get(address, "/api/v1/incidents", "not-a-token").0, 401);
    let (status, empty) = get(address, "/api/v1/incidents?start=20&end=10", &acme);
    assert_eq!(
        (status, &empty["total"]),
        (200, &Value::from(0)),
        "an empty range: {empty}"
    );

    // The dashboard's incidents panel shows them with their ranked causes.
    if let Some(browser) = Browser::start() {
        browser.open(&format!("http://{address}/"));
        browser.type_into("#token", &acme);
        browser.click("#token-form button");
        wait_until(
            "the incidents panel to list incidents with causes",
            Duration::from_secs(60),
            || {
                let shown = browser.eval(
                    "return [...document.querySelectorAll('#incident-list .incident')]\
                   .map((li) => [li.dataset.id, li.querySelectorAll('.cause:not(.none)').length]);",
                );
                shown
                    .as_array()
                    .is_some_and(|items| items.iter().any(|item| item[1].as_u64() > Some(0)))
            },
        );
        let first_cause = browser.eval("return document.querySelector('#incident-list .cause').textContent;");
        assert!(
            first_cause
                .as_str()
                .is_some_and(|text| text.contains('%') && text.contains('/')),
            "a cause shows its confidence and resource: {first_cause}"
        );
        let screenshot = browser.screenshot();
        let saved = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("incidents-dashboard.png");
        std::fs::write(&saved, &screenshot).unwrap();
        eprintln!("incidents dashboard screenshot: {}", saved.display());
        assert!(screenshot.starts_with(b"\x89PNG"), "a PNG screenshot");
    }
    assert_eq!(
        terminate(child.take()),
        Some(0),
        "SIGTERM drains the pipeline and the gateway"
    );
}

/// Events posted to an `http` source, and the incidents of tenant `acme`,
/// read by `sinks` (TOML tables).
fn posting_pipeline(dir: &TempDir, port: u16, sinks: &str) -> String {
    let text = format!(
        r#"
[sources.posted]
type = "http"
max_out_of_orderness = "30s"
idle_timeout = "0s"

[operators.incidents]
type = "incidents"
inputs = ["posted"]

{sinks}

[gateway]
listen = "127.0.0.1:{port}"
data_dir = "{dir}/gateway"
rate_limit = {{ default_plan = "enterprise" }}
"#,
        dir = dir.display()
    );
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn post_events(address: SocketAddr, token: &str, events: &[Value]) {
    let (status, answer) = http(
        address,
        "POST",
        "/api/v1/events",
        Some(token),
        Some(&Value::from(events.to_vec())),
    );
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["accepted"].as_u64(), Some(events.len() as u64), "{answer}");
}

fn resource(kind: &str, name: &str) -> Value {
    serde_json::json!({"kind": kind, "namespace": "prod", "name": name})
}

/// A metric of node-1 at `ts`: moves the watermark.
fn heartbeat(ts: u64) -> Value {
    serde_json::json!({"ts": ts, "source": "prometheus", "kind": "metric", "metric": "up", "value": 1,
                       "labels": {"node": "node-1"}})
}

/// Posts a small cluster of acme (pod api-1 of service api calling db, both
/// on node-1) whose api-1 logs an error at `t`, then a heartbeat that moves
/// the watermark past it (30 s of allowed disorder); returns the incident
/// once the API shows it.
fn open_incident(address: SocketAddr, t: u64) -> Value {
    let writer = pulse_token(SECRET, "acme", "read,write");
    let edge = |ts: u64, from: Value, relation: &str, to: Value| {
        serde_json::json!({"ts": ts, "source": "watcher", "kind": "topology", "from": from, "to": to,
                           "relation": relation, "op": "upsert"})
    };
    let node = serde_json::json!({"kind": "Node", "namespace": "", "name": "node-1"});
    post_events(
        address,
        &writer,
        &[
            edge(
                t - 60_000,
                resource("Service", "api"),
                "SELECTS",
                resource("Pod", "api-1"),
            ),
            edge(
                t - 60_000,
                resource("Service", "db"),
                "SELECTS",
                resource("Pod", "db-1"),
            ),
            edge(
                t - 60_000,
                resource("Service", "api"),
                "CALLS",
                resource("Service", "db"),
            ),
            edge(t - 60_000, resource("Pod", "api-1"), "RUNS_ON", node.clone()),
            edge(t - 60_000, resource("Pod", "db-1"), "RUNS_ON", node),
            serde_json::json!({"ts": t, "source": "vector", "kind": "log", "resource": resource("Pod", "api-1"),
                               "level": "error", "message": "connection refused calling db"}),
            // Moves the watermark just past the error (30 s of allowed disorder).
            heartbeat(t + 31_500),
        ],
    );
    let acme = pulse_token(SECRET, "acme", "read");
    let mut first = Value::Null;
    wait_until("the incident to be shown", Duration::from_secs(60), || {
        let (_, page) = get(address, "/api/v1/incidents", &acme);
        first = page["incidents"][0].clone();
        first.is_object()
    });
    first
}

/// Ten minutes ago, in epoch ms.
fn ten_minutes_ago() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    now - 600_000
}

/// A cause that arrives after its incident is shown (stamped a second after
/// the first error, as a skewed kubelet does) re-ranks the incident's causes:
/// the API's current answer and the topic's next version show it.
#[test]
fn a_late_cause_re_ranks_the_live_incident() {
    let dir = TempDir::new("incidents-rerank");
    let port = free_port();
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    // Two websocket sinks read the operator: it is still published once.
    let sinks = "[sinks.live]\ntype = \"websocket\"\ninputs = [\"incidents\"]\n\n\
                 [sinks.also_live]\ntype = \"websocket\"\ninputs = [\"incidents\"]";
    let child = run_with_gateway(&posting_pipeline(&dir, port, sinks), SECRET, address);
    let writer = pulse_token(SECRET, "acme", "read,write");
    let acme = pulse_token(SECRET, "acme", "read");
    let t = ten_minutes_ago();
    let first = open_incident(address, t);
    assert_eq!(first["revision"], 1, "one version, published once: {first}");
    let id = first["incident_id"].as_str().unwrap().to_owned();
    let (_, before) = get(address, &format!("/api/v1/rca?incident_id={id}"), &acme);
    let names = |rca: &Value| -> Vec<String> {
        rca["causes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["resource"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(
        !names(&before).contains(&"db-1".to_owned()),
        "no cause on db-1 yet: {before}"
    );

    let mut socket = WsClient::connect(address, &acme);
    socket.send(&format!(
        r#"{{"type":"subscribe","topic":"incidents","filter":{{"incident_id":"{id}"}}}}"#
    ));
    let subscribed: Value = serde_json::from_str(&socket.receive()).unwrap();
    assert_eq!(
        (&subscribed["type"], &subscribed["topic"]),
        (&Value::from("subscribed"), &Value::from("incidents")),
        "{subscribed}"
    );
    // The callee's OOM kill, stamped 2 s after the first error, arrives now.
    post_events(
        address,
        &writer,
        &[
            serde_json::json!({"ts": t + 2_000, "source": "kubelet", "kind": "k8s_event",
                               "resource": resource("Pod", "db-1"), "reason": "OOMKilled", "severity": "warning",
                               "message": "container db killed: memory limit"}),
            heartbeat(t + 40_000),
        ],
    );
    let mut after = Value::Null;
    wait_until("the late cause to be ranked", Duration::from_secs(60), || {
        after = get(address, &format!("/api/v1/rca?incident_id={id}"), &acme).1;
        names(&after).contains(&"db-1".to_owned())
    });
    assert!(
        after["revision"].as_u64() > before["revision"].as_u64(),
        "{before} then {after}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "the re-ranked version reaches the subscriber"
        );
        let message: Value = serde_json::from_str(&socket.receive()).unwrap();
        if message["type"] == "incident"
            && message["causes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["resource"]["name"] == "db-1")
        {
            assert_eq!(message["incident_id"], id.as_str());
            break;
        }
    }
    // The operator's series count the opening and the re-ranking.
    for (series, least) in [
        ("pulse_incidents_opened_total", 1.0),
        ("pulse_incidents_open", 1.0),
        ("pulse_incidents_reranked_total", 1.0),
        ("pulse_incidents_closed_total", 0.0),
    ] {
        wait_until(&format!("{series} ≥ {least}"), Duration::from_secs(30), || {
            scraped(address, series).is_some_and(|value| value >= least)
        });
    }
    assert_eq!(terminate(child.take()), Some(0));
}

/// The value of `series{component="incidents"}` on the gateway's `/metrics`.
fn scraped(address: SocketAddr, series: &str) -> Option<f64> {
    let (_, body) = http(address, "GET", "/metrics", None, None);
    let prefix = format!("{series}{{component=\"incidents\"}} ");
    body.as_str()?
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
}

/// With a gateway, the operator feeds the incident and resource views and
/// the topic `incidents` itself, whatever sinks read it: here a file sink
/// only, and a Kafka sink only (whose outputs are final reports, so the
/// current answer is on the API alone).
#[test]
fn incidents_are_served_whatever_sinks_read_the_operator() {
    let dir = TempDir::new("incidents-sinks");
    let file_sink = format!(
        "[sinks.final]\ntype = \"file\"\ninputs = [\"incidents\"]\npath = \"{}\"",
        dir.join("incidents.jsonl").display()
    );
    let mut cases = vec![("file", file_sink)];
    if let Some(brokers) = common::kafka::broker() {
        let topic = common::kafka::unique("incidents-only");
        common::kafka::create_topic(&brokers, &topic, 1);
        cases.push((
            "kafka",
            format!("[sinks.topic]\ntype = \"kafka\"\ninputs = [\"incidents\"]\nbrokers = \"{brokers}\"\ntopic = \"{topic}\""),
        ));
    }
    for (sink, sinks) in cases {
        let port = free_port();
        let address: SocketAddr = ([127, 0, 0, 1], port).into();
        let child = run_with_gateway(&posting_pipeline(&dir, port, &sinks), SECRET, address);
        let acme = pulse_token(SECRET, "acme", "read");
        let mut socket = WsClient::connect(address, &acme);
        socket.send(r#"{"type":"subscribe","topic":"incidents"}"#);
        let subscribed: Value = serde_json::from_str(&socket.receive()).unwrap();
        assert_eq!(subscribed["type"], "subscribed", "{sink}: {subscribed}");

        let incident = open_incident(address, ten_minutes_ago());
        assert_eq!(incident["symptom"]["name"], "api-1", "{sink}: {incident}");
        assert_eq!(incident["revision"], 1, "{sink}: published once: {incident}");
        let id = incident["incident_id"].as_str().unwrap();
        let (status, rca) = get(address, &format!("/api/v1/rca?incident_id={id}"), &acme);
        assert_eq!(status, 200, "{sink}: {rca}");
        assert!(
            rca["causes"].as_array().is_some_and(|causes| !causes.is_empty()),
            "{sink}: {rca}"
        );
        let (status, pod) = get(address, "/api/v1/resources/Pod/prod/api-1", &acme);
        assert_eq!(status, 200, "{sink}: the resource view is fed too: {pod}");
        assert!(
            pod["neighbours"].as_array().is_some_and(|n| !n.is_empty()),
            "{sink}: {pod}"
        );
        let message: Value = loop {
            let message: Value = serde_json::from_str(&socket.receive()).unwrap();
            if message["type"] == "incident" {
                break message;
            }
        };
        assert_eq!(
            (&message["incident_id"], &message["operator"]),
            (&Value::from(id), &Value::from("incidents")),
            "{sink}: the topic carries it: {message}"
        );
        assert_eq!(terminate(child.take()), Some(0), "{sink}");
    }
}
