//! Rate limits: headers, 429 with `Retry-After`, per tenant and per API key,
//! exemptions, and (with Redis) a window shared by two gateway processes.

mod common;

use axum::http::{Method, StatusCode};
use common::{Backend, TempDir, TestApp};
use pulse_gateway::config::PlanLimit;
use serde_json::json;

fn tiny_plan(config: &mut pulse_gateway::GatewayConfig) {
    config.rate_limit.plans.insert("tiny".into(), PlanLimit::PerWindow(3));
    config.rate_limit.default_plan = "tiny".into();
}

async fn limits_a_tenant(app: &TestApp) {
    let t = app.register("limited").await;
    for remaining in ["2", "1", "0"] {
        let reply = app.get("/api/v1/kv/stats/count", &t.access).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        assert_eq!(reply.header("x-ratelimit-limit"), Some("3"));
        assert_eq!(reply.header("x-ratelimit-remaining"), Some(remaining));
        assert_eq!(reply.header("x-ratelimit-window"), Some("60"));
    }
    let refused = app
        .post("/api/v1/kv", &t.access, json!({ "key": "k", "value": 1 }))
        .await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{refused:?}");
    assert_eq!(refused.error_code(), "rate_limited");
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(refused.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(
        app.get("/api/v1/kv/k", &t.access).await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "nothing was written"
    );

    for path in ["/health", "/health/live", "/metrics", "/api/v1/openapi.json", "/docs"] {
        let reply = app.call(Method::GET, path, None, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path} is exempt");
        assert!(reply.header("x-ratelimit-limit").is_none(), "{path}");
    }
    let other = app.register("unlimitedneighbour").await;
    assert_eq!(
        app.get("/api/v1/kv/stats/count", &other.access).await.status,
        StatusCode::OK,
        "tenants are separate"
    );
}

#[tokio::test]
async fn in_process_limiter() {
    let app = TestApp::with(Backend::Embedded, tiny_plan).await.unwrap();
    limits_a_tenant(&app).await;
}

#[tokio::test]
async fn redis_limiter() {
    if let Some(app) = TestApp::with(Backend::Redis, tiny_plan).await {
        limits_a_tenant(&app).await;
    }
}

#[tokio::test]
async fn api_keys_have_their_own_window_and_plans_apply() {
    let app = TestApp::with(Backend::Embedded, |config| {
        tiny_plan(config);
        config
            .rate_limit
            .plans
            .insert("roomy".into(), PlanLimit::PerWindow(1000));
    })
    .await
    .unwrap();
    let t = app.register("keyed").await;
    let (key, _) = app.api_key(&t, &["read"]).await; // one request of the tenant's three
    for _ in 0..2 {
        assert_eq!(
            app.get("/api/v1/kv/stats/count", &t.access).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(
        app.get("/api/v1/kv/stats/count", &t.access).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let by_key = app.get("/api/v1/kv/stats/count", &key).await;
    assert_eq!(by_key.status, StatusCode::OK, "the key counts separately: {by_key:?}");
    assert_eq!(by_key.header("x-ratelimit-remaining"), Some("2"));

    let secret = pulse_gateway::JwtSecret::new(common::SECRET).unwrap();
    let keys = pulse_gateway::auth::jwt::JwtKeys::new(&secret);
    let mut claims = pulse_gateway::auth::jwt::Claims::new(
        &t.tenant_id,
        &[pulse_gateway::Scope::Read],
        pulse_gateway::auth::jwt::TokenKind::Access,
        std::time::Duration::from_secs(60),
    );
    claims.plan = Some("roomy".into());
    let roomy = keys.sign(&claims);
    // Same tenant, so the same window, but a larger plan.
    let reply = app.get("/api/v1/kv/stats/count", &roomy).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("x-ratelimit-limit"), Some("1000"));
}

#[tokio::test]
async fn two_gateways_share_a_redis_window() {
    let dir = TempDir::new("shared");
    let Some(mut config) = common::config_for(Backend::Redis, &dir) else {
        return;
    };
    tiny_plan(&mut config);
    let first = TestApp::open(config.clone(), dir).await;
    let second = TestApp::open(config, TempDir::new("shared2")).await;
    let t = first.register("shared").await;
    assert_eq!(
        first.get("/api/v1/kv/stats/count", &t.access).await.status,
        StatusCode::OK
    );
    assert_eq!(
        second.get("/api/v1/kv/stats/count", &t.access).await.status,
        StatusCode::OK
    );
    let third = first.get("/api/v1/kv/stats/count", &t.access).await;
    assert_eq!(
        third.header("x-ratelimit-remaining"),
        Some("0"),
        "both gateways counted: {third:?}"
    );
    let fourth = second.get("/api/v1/kv/stats/count", &t.access).await;
    assert_eq!(fourth.status, StatusCode::TOO_MANY_REQUESTS);
}

/// A login from `client`, with `password`.
async fn login_from(app: &TestApp, client: [u8; 4], username: &str, password: &str) -> common::Reply {
    let mut request = axum::http::Request::post("/api/v1/auth/login")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(
            json!({ "username": username, "password": password }).to_string(),
        ))
        .unwrap();
    let peer = std::net::SocketAddr::from((client, 40_000));
    request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
    app.send(request).await
}

async fn limits_sign_in_per_client_address(app: &TestApp) {
    let t = app.register("signin").await;
    let guesser = [10, 0, 0, 1];
    for remaining in ["2", "1", "0"] {
        let guess = login_from(app, guesser, &t.username, "Wrong-guess-1").await;
        assert_eq!(guess.status, StatusCode::UNAUTHORIZED, "{guess:?}");
        assert_eq!(guess.header("x-ratelimit-limit"), Some("3"));
        assert_eq!(guess.header("x-ratelimit-remaining"), Some(remaining));
    }
    let refused = login_from(app, guesser, &t.username, common::PASSWORD).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password: {refused:?}"
    );
    assert!(refused.header("retry-after").is_some());

    let other = login_from(app, [10, 0, 0, 2], &t.username, common::PASSWORD).await;
    assert_eq!(
        other.status,
        StatusCode::OK,
        "another address has its own window: {other:?}"
    );
    let access = other.body["access_token"].as_str().unwrap();
    let reply = app.get("/api/v1/kv/stats/count", access).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(
        reply.header("x-ratelimit-limit"),
        Some("1000"),
        "token requests count against the tenant's plan, not the sign-in limit"
    );
}

fn tiny_sign_in(config: &mut pulse_gateway::GatewayConfig) {
    config.rate_limit.sign_in = PlanLimit::PerWindow(3);
    config.rate_limit.default_plan = "basic".into();
}

#[tokio::test]
async fn sign_in_is_limited_per_client_address() {
    let app = TestApp::with(Backend::Embedded, tiny_sign_in).await.unwrap();
    limits_sign_in_per_client_address(&app).await;
}

#[tokio::test]
async fn sign_in_is_limited_per_client_address_in_redis() {
    if let Some(app) = TestApp::with(Backend::Redis, tiny_sign_in).await {
        limits_sign_in_per_client_address(&app).await;
    }
}
