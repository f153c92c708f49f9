//! `[gateway.demo_account]`: the demo login is ready every time the gateway
//! opens (created once, its password reset after), on both stores; a named
//! tenant works end to end; and the dashboard's files are served at `/`.

mod common;

use axum::http::{Method, StatusCode};
use common::{Backend, TempDir, TestApp, config_for};
use pulse_gateway::config::{DEMO_PLAN, PlanLimit};
use pulse_gateway::{DemoAccountConfig, Gateway, JwtSecret};
use serde_json::json;

fn demo(password: &str) -> DemoAccountConfig {
    DemoAccountConfig {
        password: password.to_owned(),
        ..DemoAccountConfig::default()
    }
}

async fn login(app: &TestApp, username: &str, password: &str) -> common::Reply {
    app.call(
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({"username": username, "password": password})),
    )
    .await
}

async fn demo_account_is_ready_on_every_open(backend: Backend) {
    let Some(app) = TestApp::with(backend, |c| c.demo_account = Some(demo("First-pass-1"))).await else {
        return;
    };
    assert_eq!(app.gateway.demo_login().unwrap().generated_password, None);
    let reply = login(&app, "demo", "First-pass-1").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body["tenant_id"], "demo");
    let token = reply.body["access_token"].as_str().unwrap().to_owned();
    let me = app.get("/api/v1/auth/me", &token).await;
    assert_eq!(
        (me.body["tenant_id"].as_str(), me.body["username"].as_str()),
        (Some("demo"), Some("demo"))
    );
    // The named tenant uses the KV API like any other.
    let created = app.post("/api/v1/kv", &token, json!({"key": "k", "value": 1})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let refreshed = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": reply.body["refresh_token"]})),
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{refreshed:?}");

    // Reopened with no password configured: a new one is generated and the old one stops working.
    let (mut config, dir) = app.close();
    config.demo_account = Some(demo(""));
    let app = TestApp::open(config, dir).await;
    let generated = app.gateway.demo_login().unwrap().generated_password.clone().unwrap();
    assert_eq!(
        login(&app, "demo", "First-pass-1").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(login(&app, "demo", &generated).await.status, StatusCode::OK);
    assert_eq!(
        app.get("/api/v1/kv/k", &token).await.body["value"],
        1,
        "the tenant's data stayed"
    );
}

#[tokio::test]
async fn demo_account_is_ready_on_every_open_embedded() {
    demo_account_is_ready_on_every_open(Backend::Embedded).await;
}

#[tokio::test]
async fn demo_account_is_ready_on_every_open_redis() {
    demo_account_is_ready_on_every_open(Backend::Redis).await;
}

/// `n` calls of `/api/v1/auth/me` with `token`: their statuses and the last reply.
async fn call_me(app: &TestApp, token: &str, n: usize) -> (Vec<StatusCode>, common::Reply) {
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..n {
        let reply = app.get("/api/v1/auth/me", token).await;
        statuses.push(reply.status);
        last = Some(reply);
    }
    (statuses, last.unwrap())
}

async fn demo_account_gets_its_own_plan_on_every_open(backend: Backend) {
    // Everyone else is on a plan of 3 requests a minute.
    let tiny = |config: &mut pulse_gateway::GatewayConfig| {
        config.rate_limit.plans.insert("tiny".into(), PlanLimit::PerWindow(3));
        config.rate_limit.default_plan = "tiny".into();
    };
    let Some(app) = TestApp::with(backend, |c| {
        tiny(c);
        c.demo_account = Some(DemoAccountConfig {
            plan: "tiny".into(),
            ..demo("Plan-pass-1")
        });
    })
    .await
    else {
        return;
    };
    let token = login(&app, "demo", "Plan-pass-1").await.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (statuses, last) = call_me(&app, &token, 4).await;
    assert_eq!(statuses[..3], [StatusCode::OK; 3]);
    assert_eq!(last.status, StatusCode::TOO_MANY_REQUESTS, "{last:?}");

    // Reopened with the default demo plan: the account created before moves to it.
    let (mut config, dir) = app.close();
    config.demo_account = Some(demo("Plan-pass-1"));
    let app = TestApp::open(config, dir).await;
    let token = login(&app, "demo", "Plan-pass-1").await.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (statuses, last) = call_me(&app, &token, 10).await;
    assert_eq!(statuses, [StatusCode::OK; 10], "{last:?}");
    assert_eq!(last.body["plan"], DEMO_PLAN);
    assert_eq!(last.header("x-ratelimit-limit"), Some("10000"));
    // A registered user still has the default plan.
    let other = app.register("plan").await;
    let (statuses, _) = call_me(&app, &other.access, 4).await;
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn demo_account_gets_its_own_plan_on_every_open_embedded() {
    demo_account_gets_its_own_plan_on_every_open(Backend::Embedded).await;
}

#[tokio::test]
async fn demo_account_gets_its_own_plan_on_every_open_redis() {
    demo_account_gets_its_own_plan_on_every_open(Backend::Redis).await;
}

#[tokio::test]
async fn a_demo_account_never_takes_over_a_registered_user() {
    let app = TestApp::new(Backend::Embedded).await.unwrap();
    let registered = app.register("taken").await;
    let (mut config, dir) = app.close();
    config.demo_account = Some(DemoAccountConfig {
        username: registered.username.clone(),
        ..demo("Another-pass-2")
    });
    let error = Gateway::open_with_secret(config, JwtSecret::new(common::SECRET).unwrap())
        .await
        .err()
        .expect("the gateway refuses the demo account");
    assert!(error.to_string().contains("already exists for tenant"), "{error}");
    drop(dir);
}

#[test]
fn demo_account_settings_are_checked() {
    let dir = TempDir::new("demo-config");
    let mut config = config_for(Backend::Embedded, &dir).unwrap();
    for (account, expected) in [
        (demo("short"), "password"),
        (
            DemoAccountConfig {
                tenant: "has space".into(),
                ..demo("")
            },
            "tenant id",
        ),
        (
            DemoAccountConfig {
                tenant: "a:b".into(),
                ..demo("")
            },
            "tenant id",
        ),
        (
            DemoAccountConfig {
                username: "x".into(),
                ..demo("")
            },
            "username",
        ),
        (
            DemoAccountConfig {
                plan: "gold".into(),
                ..demo("")
            },
            "plan \"gold\" is not one of the plans",
        ),
    ] {
        config.demo_account = Some(account);
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("demo_account") && error.contains(expected), "{error}");
    }
    config.demo_account = Some(demo(""));
    config.validate().unwrap();
    let parsed: pulse_gateway::GatewayConfig = toml::from_str("[demo_account]\npassword = \"\"").unwrap();
    assert_eq!(parsed.demo_account, Some(DemoAccountConfig::default()));
}

#[tokio::test]
async fn the_dashboard_is_served_at_the_root_with_a_strict_policy() {
    let app = TestApp::new(Backend::Embedded).await.unwrap();
    for (path, content_type, marker) in [
        ("/", "text/html", "/dashboard.js"),
        ("/dashboard.js", "text/javascript", "new WebSocket("),
        ("/chart.js", "text/javascript", "window.PulseChart"),
        ("/dashboard.css", "text/css", ".chart"),
    ] {
        let reply = app.call(Method::GET, path, None, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert!(
            reply.header("content-type").unwrap().starts_with(content_type),
            "{path}"
        );
        let policy = reply.header("content-security-policy").unwrap();
        assert!(policy.contains("default-src 'self'"), "{policy}");
        assert!(
            reply.body.as_str().unwrap_or_default().contains(marker),
            "{path} lacks {marker}"
        );
    }
    // The icon, which browsers request as /favicon.ico whether linked or not.
    let svg = app.call(Method::GET, "/favicon.svg", None, None).await;
    assert_eq!(svg.status, StatusCode::OK);
    assert_eq!(svg.header("content-type"), Some("image/svg+xml"));
    assert!(svg.body.as_str().unwrap_or_default().starts_with("<svg"), "{svg:?}");
    let ico = app
        .send(
            axum::http::Request::get("/favicon.ico")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(ico.status, StatusCode::OK, "{ico:?}");
    assert_eq!(ico.header("content-type"), Some("image/x-icon"));
    let bytes = include_bytes!("../dashboard/favicon.ico");
    assert_eq!(bytes[..4], [0, 0, 1, 0], "an ICO header");
    assert!(bytes.len() < 1024, "tiny: {} bytes", bytes.len());
    assert_eq!(ico.body, json!(String::from_utf8_lossy(bytes)), "the compiled-in icon");
    assert!(
        include_str!("../dashboard/index.html").contains(r#"<link rel="icon" href="/favicon.svg""#),
        "the page links its icon"
    );

    // No other file is served, and nothing is loaded from elsewhere.
    assert_eq!(
        app.call(Method::GET, "/dashboard.json", None, None).await.status,
        StatusCode::NOT_FOUND
    );
    let page = include_str!("../dashboard/index.html");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no CDN or remote asset"
    );
}
