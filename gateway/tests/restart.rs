//! The embedded store persists across a gateway restart, and keys that expired
//! (while it ran or while it was down) stay gone. Also checks the background
//! sweeper reclaims expired keys without any request touching them.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{Backend, TestApp};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_restart_and_expired_keys_stay_gone() {
    let app = TestApp::new(Backend::Embedded).await.unwrap();
    let t = app.register("restart").await;
    app.post(
        "/api/v1/kv",
        &t.access,
        json!({ "key": "durable", "value": { "n": 1 }, "tags": { "a": "b" } }),
    )
    .await;
    app.put("/api/v1/kv/durable", &t.access, json!({ "value": { "n": 2 } }))
        .await;
    app.post("/api/v1/kv", &t.access, json!({ "key": "brief", "value": 1, "ttl": 1 }))
        .await;
    app.post(
        "/api/v1/kv",
        &t.access,
        json!({ "key": "lasting", "value": 1, "ttl": 3600 }),
    )
    .await;
    let (key, _) = app.api_key(&t, &["read"]).await;
    let (config, dir) = app.close();

    tokio::time::sleep(Duration::from_millis(1200)).await; // `brief` expires while the gateway is down
    let app = TestApp::open(config, dir).await;
    let durable = app.get("/api/v1/kv/durable", &t.access).await;
    assert_eq!(durable.status, StatusCode::OK, "{durable:?}");
    assert_eq!(durable.body["value"], json!({ "n": 2 }));
    assert_eq!(durable.body["metadata"]["version"], 2);
    assert_eq!(
        app.get("/api/v1/kv/brief", &t.access).await.status,
        StatusCode::NOT_FOUND
    );
    let ttl = app.get("/api/v1/kv/lasting/ttl", &t.access).await.body["ttl"]
        .as_i64()
        .unwrap();
    assert!((3590..=3600).contains(&ttl), "{ttl}");
    assert_eq!(app.get("/api/v1/kv/stats/count", &t.access).await.body["count"], 2);
    assert_eq!(
        app.get("/api/v1/audit", &t.access).await.body["total"],
        4,
        "the audit log persists"
    );
    assert_eq!(
        app.get("/api/v1/kv/durable", &key).await.status,
        StatusCode::OK,
        "API keys persist"
    );
    let login = app
        .call(
            axum::http::Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "username": t.username, "password": common::PASSWORD })),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "users persist");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_reclaims_expired_keys() {
    let app = TestApp::with(Backend::Embedded, |config| config.reap_interval_secs = 1)
        .await
        .unwrap();
    let t = app.register("sweep").await;
    app.post("/api/v1/kv", &t.access, json!({ "key": "gone", "value": 1, "ttl": 1 }))
        .await;
    app.post("/api/v1/kv", &t.access, json!({ "key": "kept", "value": 1 }))
        .await;
    let path = app.dir.path().join("gateway.redb");
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let (config, dir) = app.close();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Read the file directly: the entry itself must be gone, not just hidden.
    let store = pulse_gateway::store::EmbeddedStore::open(dir.path()).unwrap();
    use pulse_gateway::store::Store;
    let far_past = 0; // with `now` = 0 nothing counts as expired, so only reclaimed entries are missing
    assert!(
        store.kv_get(&t.tenant_id, "gone", far_past).await.unwrap().is_none(),
        "reclaimed"
    );
    assert!(store.kv_get(&t.tenant_id, "kept", far_past).await.unwrap().is_some());
    assert!(path.exists());
    drop(config);
}
