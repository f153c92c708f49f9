//! Helpers of the scenario tests: a real pipeline with its gateway on
//! loopback, run in-process; running the `pulse-loadtest` binary; reading
//! what it wrote; finding a Kafka broker.
//!
//! Each test file includes this module and uses part of it, hence the allowance.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pulse_core::Shutdown;
use serde_json::Value;

/// The demo account every test gateway makes ready: tenant `acme`, no rate limit.
pub const USER: &str = "load";
/// Its password.
pub const PASSWORD: &str = "Loadtest-Passw0rd";

/// A scratch directory, removed when dropped unless the test is failing
/// (then it is kept, and its path printed, for inspection).
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("keeping {} for inspection", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A fresh scratch directory under the system temp dir.
pub fn scratch(label: &str) -> Scratch {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join("pulse-loadtest-tests").join(format!(
        "{label}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).unwrap();
    Scratch(path)
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A pipeline with its gateway, running in this process until dropped.
pub struct Gateway {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    address: SocketAddr,
    shutdown: Shutdown,
    running: Option<JoinHandle<()>>,
    /// Dropped after the pipeline stopped (fields drop after `Drop::drop`).
    _dir: Scratch,
}

impl Gateway {
    /// Runs `components` (sources, operators, sinks in TOML) with a gateway on a free port.
    pub fn start(label: &str, components: &str) -> Self {
        let dir = scratch(label);
        let port = free_port();
        let text = format!(
            r#"{components}
[gateway]
listen = "127.0.0.1:{port}"
data_dir = "{dir}/gateway"
demo = true

[gateway.demo_account]
username = "{USER}"
tenant = "acme"
password = "{PASSWORD}"
plan = "enterprise"
"#,
            dir = dir.display()
        );
        let path = dir.join("pipeline.toml");
        std::fs::write(&path, &text).unwrap();
        let pipeline = pulse::Pipeline::parse(&path, &text, &|_| None)
            .unwrap_or_else(|error| panic!("the test pipeline does not load:\n{error}"));
        let shutdown = Shutdown::new();
        let options = pulse::RunOptions {
            workers: Some(1),
            handle_signals: false,
            shutdown: shutdown.clone(),
        };
        let running = std::thread::spawn(move || {
            pulse::run(&pipeline, options).expect("the test pipeline runs");
        });
        let gateway = Self {
            base: format!("http://127.0.0.1:{port}"),
            address: ([127, 0, 0, 1], port).into(),
            shutdown,
            running: Some(running),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while gateway.get_status("/health/ready") != 200 {
            assert!(Instant::now() < deadline, "the gateway never became ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        gateway
    }

    /// A gateway over synthetic sensors of tenant `acme`, windowed per metric every second.
    pub fn sensors(label: &str) -> Self {
        Self::start(
            label,
            r#"
[sources.sensors]
type = "generator"
rate = 1000
sensors = { tenants = 1, tenant_names = ["acme"], hosts_per_tenant = 4 }

[operators.per_metric]
type = "window"
inputs = ["sensors"]
window = { tumbling = "1s" }
key = ["tenant", "metric"]
aggregates = ["count", "avg"]

[sinks.live]
type = "websocket"
inputs = ["per_metric"]
"#,
        )
    }

    /// The status of `GET path` (0 when nothing answers).
    pub fn get_status(&self, path: &str) -> u16 {
        http(self.address, "GET", path, "", "").0
    }

    /// A new API key of the demo account (`POST /api/v1/api-keys`).
    pub fn api_key(&self) -> String {
        let authorization = format!("Authorization: Bearer {}\r\n", self.token());
        let (status, reply) = http(
            self.address,
            "POST",
            "/api/v1/api-keys",
            r#"{"name":"loadtest"}"#,
            &authorization,
        );
        assert_eq!(status, 201, "creating an API key: {reply}");
        let reply: Value = serde_json::from_str(&reply).unwrap();
        reply["key"].as_str().unwrap().to_owned()
    }

    /// An access token of the demo account.
    pub fn token(&self) -> String {
        let body = format!(r#"{{"username":"{USER}","password":"{PASSWORD}"}}"#);
        let (status, reply) = http(self.address, "POST", "/api/v1/auth/login", &body, "");
        assert_eq!(status, 200, "login: {reply}");
        let reply: Value = serde_json::from_str(&reply).unwrap();
        reply["access_token"].as_str().unwrap().to_owned()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(running) = self.running.take() {
            let _ = running.join();
        }
    }
}

/// One HTTP/1.1 request with a JSON body and `headers` (each ending in CRLF),
/// closing the connection: status and body text.
pub fn http(address: SocketAddr, method: &str, path: &str, body: &str, headers: &str) -> (u16, String) {
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(2)) else {
        return (0, String::new());
    };
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{headers}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, body.to_owned())
}

/// Runs `pulse-loadtest ARGS`.
pub fn loadtest(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pulse-loadtest"))
        .args(args)
        .env_remove("PULSE_TOKEN")
        .env_remove("PULSE_API_KEY")
        .env_remove("PULSE_PASSWORD")
        .output()
        .unwrap()
}

/// Runs `pulse-loadtest ARGS` and fails the test unless it succeeds.
pub fn loadtest_ok(args: &[&str]) -> Output {
    let output = loadtest(args);
    assert!(
        output.status.success(),
        "pulse-loadtest {args:?} exited {:?}:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The `report.json` in `dir`.
pub fn read_report(dir: &Path) -> Value {
    let path = dir.join("report.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()))
}

/// The series called `name` of `report`.
pub fn series<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("the report has no series {name}: {report:#}"))
}

/// Checks what every timed series must say of itself: counts that add up, and ordered percentiles.
pub fn assert_consistent(series: &Value) {
    let name = &series["name"];
    let ok = series["ok"].as_u64().unwrap();
    let latency = &series["latency_ms"];
    assert_eq!(
        latency["samples"].as_u64().unwrap(),
        ok,
        "{name}: every success is timed"
    );
    let errors: u64 = series["errors"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(series["errors_total"].as_u64().unwrap(), errors, "{name}");
    let timeline = series["timeline"].as_array().unwrap();
    let in_timeline = |field: &str| timeline.iter().map(|s| s[field].as_u64().unwrap()).sum::<u64>();
    assert_eq!(in_timeline("ok"), ok, "{name}: the timeline holds every success");
    assert_eq!(in_timeline("errors"), errors, "{name}: and every error");
    if ok > 0 {
        let at = |field: &str| latency[field].as_f64().unwrap();
        let ordered = ["min", "p50", "p90", "p99", "p999", "max"].map(at);
        assert!(ordered.windows(2).all(|w| w[0] <= w[1]), "{name}: {latency}");
        assert!(at("max") > 0.0, "{name}: latencies are recorded: {latency}");
    }
}

/// Parses `dir/file` as XML and checks it is an SVG naming every one of `labels`.
pub fn assert_svg(dir: &Path, file: &str, labels: &[&str]) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let document = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{}: not XML: {e}", path.display()));
    assert_eq!(document.root_element().tag_name().name(), "svg", "{}", path.display());
    let texts: Vec<&str> = document.descendants().filter_map(|node| node.text()).collect();
    for label in labels {
        assert!(
            texts.iter().any(|text| text.contains(label)),
            "{} lacks the series {label}; its texts: {texts:?}",
            path.display()
        );
    }
    let lines = document
        .descendants()
        .filter(|n| n.tag_name().name() == "polyline")
        .count();
    assert!(
        lines >= labels.len(),
        "{}: {lines} lines for {labels:?}",
        path.display()
    );
}

/// The Kafka broker of the tests, or `None` (after saying so) when there is none; with `CI=true` that fails.
pub fn kafka_broker() -> Option<String> {
    let brokers = std::env::var("PULSE_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned());
    let first = brokers.split(',').next().unwrap().to_owned();
    let reachable = TcpStream::connect_timeout(&first.parse().expect("host:port"), Duration::from_secs(1)).is_ok();
    match (reachable, std::env::var("CI").as_deref()) {
        (true, _) => Some(brokers),
        (false, Ok("true")) => panic!("no Kafka broker at {brokers}: CI requires one (scripts/test.sh starts it)"),
        (false, _) => {
            // Straight to the stderr handle: libtest captures `eprintln!`, and a skip must be seen.
            let warning =
                format!("\n*** SKIPPED: no Kafka broker at {brokers}; run ./scripts/test.sh to start one ***\n");
            let _ = std::io::stderr().write_all(warning.as_bytes());
            None
        }
    }
}

/// A name no other test or run uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}
