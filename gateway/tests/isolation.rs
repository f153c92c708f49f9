//! Tenant isolation, systematically: tenant B, by every KV, audit and API-key
//! endpoint, with a token and with an API key, can never read, list, count,
//! overwrite or delete what tenant A owns. Run against both stores.

mod common;

use axum::http::{Method, StatusCode};
use common::TestApp;
use serde_json::json;

both_backends! {
    tenants_cannot_reach_each_other => isolation,
}

async fn isolation(app: TestApp) {
    let a = app.register("tenanta").await;
    let b = app.register("tenantb").await;
    for key in ["shared-name", "only-a"] {
        let reply = app
            .post(
                "/api/v1/kv",
                &a.access,
                json!({ "key": key, "value": "a's secret", "tags": { "owner": "a" } }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    let (a_key, a_key_id) = app.api_key(&a, &["read", "write", "admin"]).await;
    let (b_key, _) = app.api_key(&b, &["read", "write", "admin"]).await;

    for b_auth in [b.access.as_str(), b_key.as_str()] {
        // Reads of A's keys look exactly like reads of keys that do not exist.
        for path in ["/api/v1/kv/only-a", "/api/v1/kv/shared-name", "/api/v1/kv/only-a/ttl"] {
            let reply = app.get(path, b_auth).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}: {reply:?}");
            assert!(!reply.body.to_string().contains("a's secret"));
        }
        assert_eq!(app.get("/api/v1/kv/only-a/exists", b_auth).await.body["exists"], false);
        let listed = app.get("/api/v1/kv?page_size=100", b_auth).await;
        assert_eq!(listed.body["total"], 0, "{listed:?}");
        assert_eq!(app.get("/api/v1/kv?tag_filter=owner:a", b_auth).await.body["total"], 0);
        assert_eq!(app.get("/api/v1/kv/stats/count", b_auth).await.body["count"], 0);
        // Writes cannot land on A's keys.
        assert_eq!(
            app.put("/api/v1/kv/only-a", b_auth, json!({ "value": "b" }))
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.delete("/api/v1/kv/only-a", b_auth).await.status,
            StatusCode::NOT_FOUND
        );
        let batch = app
            .post(
                "/api/v1/kv/batch",
                b_auth,
                json!({ "operations": [{ "op": "delete", "key": "only-a" }] }),
            )
            .await;
        assert_eq!(batch.status, StatusCode::CONFLICT, "{batch:?}");
        // A's audit log and API keys are invisible and untouchable.
        let audit = app.get("/api/v1/audit", b_auth).await;
        assert!(
            audit.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["tenant_id"] == b.tenant_id.as_str()),
            "{audit:?}"
        );
        let keys = app.get("/api/v1/api-keys", b_auth).await;
        assert!(!keys.body.to_string().contains(&a_key_id), "{keys:?}");
        let revoke = app.delete(&format!("/api/v1/api-keys/{a_key_id}"), b_auth).await;
        assert_eq!(revoke.status, StatusCode::NOT_FOUND);
        let me = app.get("/api/v1/auth/me", b_auth).await;
        assert_eq!(me.body["tenant_id"], b.tenant_id.as_str());
    }

    // B's own key of the same name is B's alone.
    let own = app
        .post("/api/v1/kv", &b.access, json!({ "key": "shared-name", "value": "b's" }))
        .await;
    assert_eq!(
        own.status,
        StatusCode::CREATED,
        "the same key name is free in another tenant"
    );
    assert_eq!(own.body["metadata"]["version"], 1);
    let batch = app
        .post(
            "/api/v1/kv/batch",
            &b_key,
            json!({ "operations": [{ "op": "set", "key": "only-a", "value": "b's" }] }),
        )
        .await;
    assert_eq!(
        batch.body["results"][0]["status"], "created",
        "B's batch creates B's key: {batch:?}"
    );

    // A sees exactly what it wrote, with its API key too.
    for a_auth in [a.access.as_str(), a_key.as_str()] {
        for key in ["shared-name", "only-a"] {
            let reply = app.get(&format!("/api/v1/kv/{key}"), a_auth).await;
            assert_eq!(reply.body["value"], "a's secret", "{key}");
            assert_eq!(reply.body["metadata"]["version"], 1, "{key}: never touched by B");
        }
        assert_eq!(app.get("/api/v1/kv/stats/count", a_auth).await.body["count"], 2);
    }
    let audit = app.get("/api/v1/audit", &a.access).await;
    assert_eq!(audit.body["total"], 2, "B's writes are not in A's log: {audit:?}");
    assert_eq!(
        app.get("/api/v1/api-keys", &a.access)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(app.get("/api/v1/kv/stats/count", &b.access).await.body["count"], 2);
    assert_eq!(
        app.call(Method::GET, "/api/v1/kv/only-a", Some(&a_key), None)
            .await
            .status,
        StatusCode::OK
    );
}
