//! The live dashboard as a user meets it: `pulse run pipelines/demo.toml`,
//! a real headless Chromium at http://127.0.0.1:PORT/, the demo account's
//! login typed into the form, and the charts and counters checked in the DOM.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::browser::Browser;
use common::process::{free_port, http, pulse_token, terminate, wait_for_status, wait_until};
use common::{TempDir, pulse_bin, workspace_dir};
use serde_json::{Value, json};

const SECRET: &str = "a-dashboard-test-secret-of-more-than-32-characters";
const DEMO_PASSWORD: &str = "Dashboard-Demo-7";

/// The demo pipeline, as the README runs it, on `port` with the given demo password.
fn run_demo(dir: &TempDir, port: u16) -> Child {
    let child = Command::new(pulse_bin())
        .args(["run", "pipelines/demo.toml"])
        .current_dir(workspace_dir())
        .env("PULSE_OUT_DIR", dir.path())
        .env("PULSE_LISTEN", format!("127.0.0.1:{port}"))
        .env("PULSE_DEMO_PASSWORD", DEMO_PASSWORD)
        .env("PULSE_JWT_SECRET", SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pulse starts");
    wait_for_status(([127, 0, 0, 1], port).into(), "/health/ready", 200);
    child
}

/// The page's state, read the way the test asserts on it.
fn page_state(browser: &Browser) -> Value {
    browser.eval(
        r#"const text = (id) => document.getElementById(id).textContent;
           const pressed = document.querySelector('#metrics button[aria-pressed="true"]');
           return {
             points: Number(document.getElementById('charts').dataset.points || 0),
             charts: [...document.querySelectorAll('.chart')].map((c) => ({
               operator: c.dataset.operator, points: Number(c.dataset.points), series: Number(c.dataset.series) })),
             events_per_second: Number(text('stat-events-rate').replace(/[^0-9]/g, '') || 0),
             clients: Number(text('stat-clients').replace(/[^0-9]/g, '') || 0),
             received: Number(text('stat-received').replace(/[^0-9]/g, '') || 0),
             connection: text('connection'),
             login_visible: !document.getElementById('login').hidden,
             login_error: text('login-error'),
             metric: pressed ? pressed.dataset.metric : null,
           };"#,
    )
}

fn wait_for_page(browser: &Browser, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = page_state(browser);
        if done(&state) {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {what}; the page: {state:#}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn the_demo_serves_its_dashboard_and_logs_in_its_demo_account() {
    let dir = TempDir::new("dashboard-http");
    let port = free_port();
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    let child = run_demo(&dir, port);

    let (status, page) = http(address, "GET", "/", None, None);
    assert_eq!(status, 200);
    let page = page.as_str().unwrap_or_default();
    assert!(
        page.contains("/dashboard.js") && page.contains("id=\"charts\""),
        "{page}"
    );
    for asset in ["/dashboard.js", "/dashboard.css"] {
        let (status, body) = http(address, "GET", asset, None, None);
        assert!(
            status == 200 && body.as_str().is_some_and(|b| b.len() > 500),
            "{asset}: {status}"
        );
    }

    // The demo account of demo.toml logs in to tenant `demo`, which the generator feeds.
    let login = json!({"username": "demo", "password": DEMO_PASSWORD});
    let (status, pair) = http(address, "POST", "/api/v1/auth/login", None, Some(&login));
    assert_eq!(status, 200, "{pair}");
    assert_eq!(pair["tenant_id"], "demo");
    let token = pair["access_token"].as_str().unwrap().to_owned();
    let wrong = json!({"username": "demo", "password": "Not-the-password-1"});
    assert_eq!(http(address, "POST", "/api/v1/auth/login", None, Some(&wrong)).0, 401);

    let query = |now: u64| {
        json!({"metric_name": "cpu", "operator": "by_metric_5s", "aggregation": "avg",
               "start_time": now - 600_000, "end_time": now})
    };
    let mut answer = Value::Null;
    wait_until("tenant demo's windows are queryable", Duration::from_secs(60), || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let (status, body) = http(
            address,
            "POST",
            "/api/v1/analytics/query",
            Some(&token),
            Some(&query(now)),
        );
        answer = body;
        status == 200 && answer["series"][0]["points"].as_array().is_some_and(|p| !p.is_empty())
    });
    let (status, stats) = http(address, "GET", "/api/v1/stats", Some(&token), None);
    assert_eq!(status, 200, "{stats}");
    assert!(
        stats["pipeline"]["events_in_total"].as_u64().unwrap_or(0) > 0,
        "{stats}"
    );
    assert!(
        stats["pipeline"]["windows_out_total"].as_u64().unwrap_or(0) > 0,
        "{stats}"
    );
    assert_eq!(terminate(child), Some(0));
}

#[test]
fn a_browser_watches_the_demo_windows_update_live() {
    let Some(browser) = Browser::start() else { return };
    let dir = TempDir::new("dashboard-browser");
    let port = free_port();
    let child = run_demo(&dir, port);
    let url = format!("http://127.0.0.1:{port}/");

    // A wrong password is refused on the page, and the login stays.
    browser.open(&url);
    browser.type_into("#password", "Wrong-password-1");
    browser.click("#login-form button");
    let refused = wait_for_page(&browser, "the login is refused", |s| {
        !s["login_error"].as_str().unwrap_or_default().is_empty()
    });
    assert!(refused["login_visible"].as_bool().unwrap(), "{refused:#}");

    browser.type_into("#password", DEMO_PASSWORD);
    browser.click("#login-form button");
    let live = wait_for_page(&browser, "the charts plot windows and the counters move", |s| {
        s["points"].as_u64().unwrap_or(0) >= 4 && s["events_per_second"].as_u64().unwrap_or(0) > 0
    });
    let screenshot = browser.screenshot();
    let saved = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&saved, &screenshot).unwrap();
    eprintln!("dashboard screenshot: {}", saved.display());
    assert!(
        screenshot.starts_with(b"\x89PNG") && screenshot.len() > 20_000,
        "{} bytes",
        screenshot.len()
    );

    assert!(!live["login_visible"].as_bool().unwrap(), "{live:#}");
    assert_eq!(live["connection"], "live · tenant demo", "{live:#}");
    assert_eq!(live["metric"], "cpu", "the cpu tab is selected first: {live:#}");
    assert!(live["clients"].as_u64().unwrap() >= 1, "{live:#}");
    let charts = live["charts"].as_array().unwrap();
    let operators: Vec<&str> = charts.iter().filter_map(|c| c["operator"].as_str()).collect();
    assert!(operators.contains(&"by_metric_5s"), "{live:#}");
    // A rate near the generator's 20,000 events/s, not a total.
    let events_per_second = live["events_per_second"].as_u64().unwrap();
    assert!((1_000..=40_000).contains(&events_per_second), "{live:#}");

    // The charts keep moving: more windows arrive as they close.
    let before = live["received"].as_u64().unwrap();
    let later = wait_for_page(&browser, "more windows arrive", |s| {
        s["received"].as_u64().unwrap_or(0) > before
    });
    let per_host = later["charts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["operator"] == "cpu_per_host_30s");
    if let Some(per_host) = per_host {
        assert_eq!(per_host["series"], 20, "one cpu series per demo host: {later:#}");
    }

    // Switching the metric redraws the charts for it.
    browser.click("#metrics button[data-metric=\"mem\"]");
    let mem = wait_for_page(&browser, "the mem tab shows its windows", |s| {
        s["metric"] == "mem" && s["points"].as_u64().unwrap_or(0) > 0
    });
    assert_eq!(mem["metric"], "mem");

    // Logging out shows the login again; a token from `pulse token` logs in too.
    browser.click("#logout");
    wait_for_page(&browser, "the login is back", |s| s["login_visible"] == true);
    browser.type_into("#token", &pulse_token(SECRET, "demo", "read"));
    browser.click("#token-form button");
    wait_for_page(&browser, "the pasted token shows tenant demo live", |s| {
        s["connection"] == "live · tenant demo" && s["points"].as_u64().unwrap_or(0) > 0
    });
    drop(browser);
    assert_eq!(terminate(child), Some(0));
}
