//! The live dashboard as a user meets it: `pulse run pipelines/demo.toml`,
//! a real headless Chromium at http://127.0.0.1:PORT/, the demo account's
//! login typed into the form, and the charts, counters and banner checked in
//! the DOM. Each test runs a demo at 20,000 events/s and a browser, so they
//! take turns (see [`one_at_a_time`]): the three-minute test of two tabs
//! shares the machine with nothing else of this file.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::browser::Browser;
use common::process::{free_port, http, pulse_token, terminate, wait_for_status, wait_until};
use common::{TempDir, pulse_bin, workspace_dir};
use serde_json::{Value, json};

const SECRET: &str = "a-dashboard-test-secret-of-more-than-32-characters";
const DEMO_PASSWORD: &str = "Dashboard-Demo-7";

/// Held by each test for its whole run: a demo and a browser at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    // A test that failed while holding it leaves nothing to repair.
    ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The demo pipeline, as the README runs it, on `port` with the given demo password.
fn run_demo(dir: &TempDir, port: u16) -> Child {
    run_pipeline(dir, port, Path::new("pipelines/demo.toml"))
}

/// The pipeline file `pipeline` (relative to the workspace, or absolute) as
/// the demo runs, on `port` with the given demo password.
fn run_pipeline(dir: &TempDir, port: u16, pipeline: &Path) -> Child {
    let child = Command::new(pulse_bin())
        .arg("run")
        .arg(pipeline)
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

/// The status line and headers of `GET path`, lower-cased.
fn raw_get(address: SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).to_ascii_lowercase();
    let head = response.split("\r\n\r\n").next().unwrap_or_default();
    head.replacen("http/1.1", "HTTP/1.1", 1)
}

/// The page's state, read the way the test asserts on it.
fn page_state(browser: &Browser) -> Value {
    browser.eval(
        r#"const text = (id) => document.getElementById(id).textContent;
           const pressed = document.querySelector('#metrics button[aria-pressed="true"]');
           return {
             points: Number(document.getElementById('charts').dataset.points || 0),
             charts: [...document.querySelectorAll('.chart')].map((c) => ({
               operator: c.dataset.operator, points: Number(c.dataset.points), series: Number(c.dataset.series),
               anomalies: Number(c.dataset.anomalies || 0), forecast: Number(c.dataset.forecast || 0) })),
             anomalies: Number(document.getElementById('anomalies').dataset.count || 0),
             anomaly_list: [...document.querySelectorAll('#anomaly-list li')].map((li) => li.textContent),
             events_per_second: Number(text('stat-events-rate').replace(/[^0-9]/g, '') || 0),
             clients: Number(text('stat-clients').replace(/[^0-9]/g, '') || 0),
             received: Number(text('stat-received').replace(/[^0-9]/g, '') || 0),
             connection: text('connection'),
             stats_at: Number(document.getElementById('live').dataset.statsAt || 0),
             banner: {
               visible: document.getElementById('banner').getClientRects().length > 0,
               text: text('banner'),
               kind: document.getElementById('banner').dataset.kind || null,
               refusals: Number(document.getElementById('banner').dataset.refusals || 0),
             },
             logout_visible: document.getElementById('logout').getClientRects().length > 0,
             login_visible: !document.getElementById('login').hidden,
             login_error: text('login-error'),
             metric: pressed ? pressed.dataset.metric : null,
           };"#,
    )
}

fn wait_for_page(browser: &Browser, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    wait_for_page_within(browser, what, Duration::from_secs(60), done)
}

fn wait_for_page_within(browser: &Browser, what: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
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
    let _turn = one_at_a_time();
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
    for asset in ["/dashboard.js", "/chart.js", "/dashboard.css"] {
        let (status, body) = http(address, "GET", asset, None, None);
        assert!(
            status == 200 && body.as_str().is_some_and(|b| b.len() > 500),
            "{asset}: {status}"
        );
    }

    // Browsers ask for /favicon.ico whether the page links an icon or not.
    let favicon = raw_get(address, "/favicon.ico");
    assert!(favicon.starts_with("HTTP/1.1 200"), "{favicon}");
    assert!(favicon.contains("content-type: image/x-icon"), "{favicon}");

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
    let _turn = one_at_a_time();
    let Some(browser) = Browser::start() else { return };
    let dir = TempDir::new("dashboard-browser");
    let port = free_port();
    let child = run_demo(&dir, port);
    let url = format!("http://127.0.0.1:{port}/");

    // Before anyone logs in, the page offers no "Log out".
    browser.open(&url);
    let first = wait_for_page(&browser, "the login shows", |s| s["login_visible"] == true);
    assert_eq!(first["logout_visible"], false, "{first:#}");

    // A wrong password is refused on the page, and the login stays.
    browser.type_into("#password", "Wrong-password-1");
    browser.click("#login-form button");
    let refused = wait_for_page(&browser, "the login is refused", |s| {
        !s["login_error"].as_str().unwrap_or_default().is_empty()
    });
    assert!(refused["login_visible"].as_bool().unwrap(), "{refused:#}");

    browser.type_into("#password", DEMO_PASSWORD);
    browser.click("#login-form button");
    let live = wait_for_page(&browser, "the charts plot windows and the counters move", |s| {
        let five_seconds = s["charts"].as_array().is_some_and(|charts| {
            charts
                .iter()
                .any(|c| c["operator"] == "by_metric_5s" && c["points"].as_u64().unwrap_or(0) > 0)
        });
        s["points"].as_u64().unwrap_or(0) >= 4 && s["events_per_second"].as_u64().unwrap_or(0) > 0 && five_seconds
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
    assert_eq!(live["logout_visible"], true, "{live:#}");
    assert_eq!(live["banner"]["visible"], false, "{live:#}");
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

    // Anomalies (the sensors' spikes) are listed and marked on the cpu charts, and the
    // forecast is drawn ahead of the per-metric chart, once the series have warmed up
    // (30 s of windows for anomalies, two 20 s seasons and 20 s of errors for the
    // forecast; a debug build of the demo runs behind the clock, hence the long wait).
    let analytics = wait_for_page_within(
        &browser,
        "anomalies are listed and marked, and a forecast band is drawn",
        Duration::from_secs(240),
        |s| {
            let charts = s["charts"].as_array().cloned().unwrap_or_default();
            s["metric"] == "cpu"
                && charts.iter().any(|c| c["anomalies"].as_u64().unwrap_or(0) > 0)
                && charts.iter().any(|c| c["forecast"].as_u64().unwrap_or(0) > 0)
        },
    );
    let listed = analytics["anomaly_list"].as_array().unwrap();
    assert!(!listed.is_empty(), "{analytics:#}");
    let first = listed[0].as_str().unwrap();
    assert!(first.contains("score") && first.contains("on host-"), "{first}");
    let forecast = analytics["charts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["forecast"].as_u64().unwrap_or(0) > 0)
        .unwrap();
    let steps = forecast["forecast"].as_u64().unwrap();
    assert!(
        (1..=20).contains(&steps),
        "up to 20 one-second steps ahead: {analytics:#}"
    );
    let screenshot = browser.screenshot();
    let saved = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-analytics.png");
    std::fs::write(&saved, &screenshot).unwrap();
    eprintln!(
        "dashboard screenshot with anomalies and a forecast: {}",
        saved.display()
    );

    // Switching the metric redraws the charts for it.
    browser.click("#metrics button[data-metric=\"mem\"]");
    let mem = wait_for_page(&browser, "the mem tab shows its windows", |s| {
        s["metric"] == "mem" && s["points"].as_u64().unwrap_or(0) > 0
    });
    assert_eq!(mem["metric"], "mem");

    // Logging out shows the login again; a token from `pulse token` logs in too.
    browser.click("#logout");
    let out = wait_for_page(&browser, "the login is back", |s| s["login_visible"] == true);
    assert_eq!(out["logout_visible"], false, "{out:#}");
    browser.type_into("#token", &pulse_token(SECRET, "demo", "read"));
    browser.click("#token-form button");
    wait_for_page(&browser, "the pasted token shows tenant demo live", |s| {
        s["connection"] == "live · tenant demo" && s["points"].as_u64().unwrap_or(0) > 0
    });
    drop(browser);
    assert_eq!(terminate(child), Some(0));
}

/// Logs the page at `url` in the current tab into the demo account and waits
/// until it plots windows and shows a rate.
fn log_in(browser: &Browser, url: &str) -> Value {
    browser.open(url);
    browser.type_into("#password", DEMO_PASSWORD);
    browser.click("#login-form button");
    wait_for_page(browser, "the charts plot windows and the counters move", |s| {
        s["points"].as_u64().unwrap_or(0) >= 2 && s["events_per_second"].as_u64().unwrap_or(0) > 0
    })
}

/// The value of every `pulse_http_requests_total` series of `/metrics` whose labels contain `label`.
fn http_requests_with(metrics: &str, label: &str) -> Vec<String> {
    metrics
        .lines()
        .filter(|line| line.starts_with("pulse_http_requests_total{") && line.contains(label))
        .map(str::to_owned)
        .collect()
}

/// Issue 25's acceptance: the demo with two dashboard tabs open for three
/// minutes meets no 429, and both keep showing advancing numbers.
#[test]
fn two_dashboard_tabs_watch_the_demo_for_three_minutes_without_a_429() {
    let _turn = one_at_a_time();
    let Some(browser) = Browser::start() else { return };
    let dir = TempDir::new("dashboard-two-tabs");
    let port = free_port();
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    let child = run_demo(&dir, port);
    let url = format!("http://127.0.0.1:{port}/");

    let first_tab = browser.current_tab();
    let mut last = vec![log_in(&browser, &url)];
    let second_tab = browser.new_tab();
    last.push(log_in(&browser, &url));
    let tabs = [first_tab, second_tab];

    let started = Instant::now();
    let mut rounds = 0;
    while started.elapsed() < Duration::from_secs(180) {
        std::thread::sleep(Duration::from_secs(15));
        rounds += 1;
        for (tab, before) in tabs.iter().zip(last.iter_mut()) {
            browser.switch_to(tab);
            // A tab in the background draws when it comes to the front: give it a moment.
            let now = wait_for_page(&browser, "the tab shows newer windows and counters", |s| {
                s["received"].as_u64() > before["received"].as_u64()
                    && s["stats_at"].as_u64() > before["stats_at"].as_u64()
            });
            assert_eq!(now["connection"], "live · tenant demo", "round {rounds}: {now:#}");
            assert_eq!(now["banner"]["visible"], false, "round {rounds}: {now:#}");
            assert_eq!(now["banner"]["refusals"], 0, "round {rounds}: {now:#}");
            assert!(
                now["events_per_second"].as_u64().unwrap() > 0,
                "round {rounds}: {now:#}"
            );
            assert!(
                now["clients"].as_u64().unwrap() >= 2,
                "both tabs are connected: {now:#}"
            );
            *before = now;
        }
    }
    assert!(rounds >= 10, "{rounds} rounds in three minutes");

    let (status, metrics) = http(address, "GET", "/metrics", None, None);
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap_or_default();
    assert_eq!(http_requests_with(metrics, "status=\"429\""), Vec::<String>::new());
    // The counters came over the socket: nobody polled the REST endpoint.
    assert_eq!(
        http_requests_with(metrics, "route=\"/api/v1/stats\""),
        Vec::<String>::new()
    );
    assert!(
        !http_requests_with(metrics, "route=\"/api/v1/analytics/query\"").is_empty(),
        "the charts were backfilled: {metrics}"
    );
    drop(browser);
    assert_eq!(terminate(child), Some(0));
}

/// A gateway whose demo account may make one request a minute refuses the
/// dashboard's second; the page says so, with the reason and when it
/// retries, while the socket keeps it live. When the gateway goes away,
/// the banner says that too.
#[test]
fn a_refused_request_and_a_closed_socket_show_a_banner() {
    let _turn = one_at_a_time();
    let Some(browser) = Browser::start() else { return };
    let dir = TempDir::new("dashboard-banner");
    let demo = std::fs::read_to_string(workspace_dir().join("pipelines/demo.toml")).unwrap();
    assert!(
        demo.contains("plan = \"pro\""),
        "demo.toml names the demo account's plan"
    );
    let tiny = demo.replacen("plan = \"pro\"", "plan = \"tiny\"", 1) + "\n[gateway.rate_limit]\nplans = { tiny = 1 }\n";
    let pipeline = dir.join("tiny-plan.toml");
    std::fs::write(&pipeline, tiny).unwrap();
    let port = free_port();
    let child = run_pipeline(&dir, port, &pipeline);
    let url = format!("http://127.0.0.1:{port}/");

    browser.open(&url);
    browser.type_into("#password", DEMO_PASSWORD);
    browser.click("#login-form button");
    let live = wait_for_page(&browser, "the page is live", |s| {
        s["points"].as_u64().unwrap_or(0) > 0 && s["connection"] == "live · tenant demo"
    });
    // Another metric's charts are backfilled too: more requests than the plan allows.
    if live["metric"] != "mem" {
        browser.click("#metrics button[data-metric=\"mem\"]");
    }
    let refused = wait_for_page(&browser, "the banner says a request was refused", |s| {
        s["banner"]["visible"] == true && s["banner"]["kind"] == "rate_limited"
    });
    let text = refused["banner"]["text"].as_str().unwrap();
    assert!(text.contains("rate limit reached (429"), "{refused:#}");
    let seconds: u64 = text
        .split("Retrying in ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the banner says when it retries: {text}"));
    assert!(seconds <= 60, "within the plan's window: {text}");
    assert!(refused["banner"]["refusals"].as_u64().unwrap() >= 1, "{refused:#}");
    // The socket is not rate limited: the counters keep coming.
    let before = refused["stats_at"].as_u64().unwrap();
    let later = wait_for_page(&browser, "the counters still advance", |s| {
        s["stats_at"].as_u64().unwrap_or(0) > before
    });
    assert_eq!(later["connection"], "live · tenant demo", "{later:#}");

    // The gateway stops: the live connection closes, and the banner says so.
    assert_eq!(terminate(child), Some(0));
    let closed = wait_for_page(&browser, "the banner says the live connection closed", |s| {
        s["banner"]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("live connection closed")
    });
    assert_eq!(closed["banner"]["visible"], true, "{closed:#}");
    assert!(
        closed["banner"]["text"].as_str().unwrap().contains("Retrying in"),
        "{closed:#}"
    );
}
