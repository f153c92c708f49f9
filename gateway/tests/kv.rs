//! The KV behaviour suite, run against the embedded store and against Redis
//! (skipped with a loud message when no Redis answers, failing under `CI=true`).
//! Each Redis run uses a key prefix of its own, so tests run in parallel.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::TestApp;
use serde_json::json;

both_backends! {
    create_get_update_delete => crud_round_trip,
    put_keeps_the_fields_it_omits => put_keeps_omitted_fields,
    put_keeps_the_expiry_time => put_keeps_expiry_time,
    create_conflicts_and_missing_keys => conflicts_and_missing_keys,
    listing_is_paged_stable_and_filtered => listing,
    batches_are_all_or_nothing => batches,
    invalid_writes_are_refused => invalid_writes,
    ttls_expire_for_real => ttl_expiry,
    writes_are_audited => audit_log,
    keys_named_like_routes_are_ordinary_keys => route_named_keys,
}

async fn crud_round_trip(app: TestApp) {
    let t = app.register("crud").await;
    let value = json!({ "cpu": 0.93, "hosts": ["a", "b"], "nested": { "n": null } });
    let created = app
        .post(
            "/api/v1/kv",
            &t.access,
            json!({ "key": "cfg/alpha", "value": value, "tags": { "env": "prod" } }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(created.body["key"], "cfg/alpha");
    let meta = &created.body["metadata"];
    assert_eq!(meta["version"], 1);
    assert_eq!(meta["ttl"], json!(null));
    assert_eq!(meta["tags"], json!({ "env": "prod" }));
    assert!(meta["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(meta["created_at"], meta["updated_at"]);

    let read = app.get("/api/v1/kv/cfg%2Falpha", &t.access).await;
    assert_eq!(read.status, StatusCode::OK, "{read:?}");
    assert_eq!(read.body["value"], value, "the value round-trips exactly");
    assert_eq!(read.body["metadata"]["version"], 1);

    let updated = app
        .put(
            "/api/v1/kv/cfg%2Falpha",
            &t.access,
            json!({ "value": "v2", "ttl": 300 }),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{updated:?}");
    assert_eq!(updated.body["metadata"]["version"], 2);
    assert_eq!(updated.body["metadata"]["ttl"], 300);
    assert_eq!(
        updated.body["metadata"]["tags"],
        json!({ "env": "prod" }),
        "PUT keeps the tags it does not give"
    );
    assert_eq!(updated.body["metadata"]["created_at"], meta["created_at"]);
    let read = app.get("/api/v1/kv/cfg%2Falpha", &t.access).await;
    assert_eq!(read.body["value"], "v2");
    assert_eq!(read.body["metadata"]["version"], 2);
    let third = app
        .put("/api/v1/kv/cfg%2Falpha", &t.access, json!({ "value": 3 }))
        .await;
    assert_eq!(third.body["metadata"]["version"], 3);

    let exists = app.get("/api/v1/kv/cfg%2Falpha/exists", &t.access).await;
    assert_eq!(exists.body, json!({ "key": "cfg/alpha", "exists": true }));
    assert_eq!(third.body["metadata"]["ttl"], 300, "a PUT without ttl keeps the expiry");
    let ttl = app.get("/api/v1/kv/cfg%2Falpha/ttl", &t.access).await;
    let secs = ttl.body["ttl"].as_i64().unwrap();
    assert!((299..=300).contains(&secs), "{ttl:?}");
    let count = app.get("/api/v1/kv/stats/count", &t.access).await;
    assert_eq!(count.body, json!({ "count": 1 }));

    let deleted = app.delete("/api/v1/kv/cfg%2Falpha", &t.access).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{deleted:?}");
    assert_eq!(
        app.get("/api/v1/kv/cfg%2Falpha", &t.access).await.status,
        StatusCode::NOT_FOUND
    );
    let exists = app.get("/api/v1/kv/cfg%2Falpha/exists", &t.access).await;
    assert_eq!(exists.body["exists"], false);
    assert_eq!(app.get("/api/v1/kv/stats/count", &t.access).await.body["count"], 0);

    let recreated = app
        .post("/api/v1/kv", &t.access, json!({ "key": "cfg/alpha", "value": 1 }))
        .await;
    assert_eq!(recreated.body["metadata"]["version"], 1, "a deleted key starts over");
}

/// The README's steps: a key created with a TTL and tags, then `PUT` with only a
/// value, is still found by `tag_filter` and still expires; an explicit
/// `"ttl": null` or empty `tags` clears them, and given ones replace them.
async fn put_keeps_omitted_fields(app: TestApp) {
    let t = app.register("keep").await;
    let created = app
        .post(
            "/api/v1/kv",
            &t.access,
            json!({ "key": "k1", "value": { "any": "json" }, "ttl": 3600, "tags": { "env": "dev" } }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let updated = app.put("/api/v1/kv/k1", &t.access, json!({ "value": 2 })).await;
    assert_eq!(updated.status, StatusCode::OK, "{updated:?}");
    let meta = &updated.body["metadata"];
    assert_eq!(
        (meta["version"].as_u64(), meta["ttl"].as_u64()),
        (Some(2), Some(3600)),
        "{updated:?}"
    );
    assert_eq!(meta["tags"], json!({ "env": "dev" }), "{updated:?}");
    let read = app.get("/api/v1/kv/k1", &t.access).await;
    assert_eq!(read.body["value"], 2);
    assert_eq!(&read.body["metadata"], meta, "the store kept what the PUT answered");
    let ttl = app.get("/api/v1/kv/k1/ttl", &t.access).await.body["ttl"]
        .as_i64()
        .unwrap();
    assert!((3599..=3600).contains(&ttl), "the expiry is kept: {ttl}");
    let found = app.get("/api/v1/kv?tag_filter=env:dev", &t.access).await;
    assert_eq!(found.body["total"], 1, "{found:?}");
    assert_eq!(found.body["items"][0]["key"], "k1");
    assert_eq!(found.body["items"][0]["metadata"]["version"], 2);

    let cleared = app
        .put(
            "/api/v1/kv/k1",
            &t.access,
            json!({ "value": 3, "ttl": null, "tags": {} }),
        )
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{cleared:?}");
    assert_eq!(cleared.body["metadata"]["ttl"], json!(null));
    assert_eq!(cleared.body["metadata"]["tags"], json!({}));
    assert_eq!(app.get("/api/v1/kv/k1/ttl", &t.access).await.body["ttl"], -1);
    assert_eq!(
        app.get("/api/v1/kv?tag_filter=env:dev", &t.access).await.body["total"],
        0
    );

    let replaced = app
        .put(
            "/api/v1/kv/k1",
            &t.access,
            json!({ "value": 4, "ttl": 60, "tags": { "team": "a", "tier": "1" } }),
        )
        .await;
    assert_eq!(replaced.body["metadata"]["ttl"], 60, "{replaced:?}");
    assert_eq!(replaced.body["metadata"]["tags"], json!({ "team": "a", "tier": "1" }));
    let ttl = app.get("/api/v1/kv/k1/ttl", &t.access).await.body["ttl"]
        .as_i64()
        .unwrap();
    assert!((59..=60).contains(&ttl), "a given ttl restarts the expiry: {ttl}");
    let retagged = app
        .put(
            "/api/v1/kv/k1",
            &t.access,
            json!({ "value": 5, "tags": { "team": "b" } }),
        )
        .await;
    assert_eq!(
        retagged.body["metadata"]["tags"],
        json!({ "team": "b" }),
        "given tags replace all"
    );
    assert_eq!(retagged.body["metadata"]["ttl"], 60, "{retagged:?}");
    for empty in [json!([]), json!(null)] {
        let reply = app
            .put("/api/v1/kv/k1", &t.access, json!({ "value": 6, "tags": empty }))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{empty}: {reply:?}");
        assert_eq!(reply.body["metadata"]["tags"], json!({}), "{empty}: {reply:?}");
        app.put(
            "/api/v1/kv/k1",
            &t.access,
            json!({ "value": 6, "tags": { "team": "b" } }),
        )
        .await;
    }
    let version = app.get("/api/v1/kv/k1", &t.access).await.body["metadata"]["version"].clone();
    assert_eq!(version, 9);

    for bad in [
        json!({ "value": 7, "tags": ["team"] }),
        json!({ "value": 7, "tags": { "team": 1 } }),
        json!({ "value": 7, "tags": "team:b" }),
        json!({ "value": 7, "ttl": 0 }),
        json!({ "value": 7, "ttl": "1h" }),
        json!({ "ttl": 5 }),
    ] {
        let reply = app.put("/api/v1/kv/k1", &t.access, bad.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {reply:?}");
        assert!(reply.body["error"]["message"].is_string(), "{bad}: {reply:?}");
    }
    let after = app.get("/api/v1/kv/k1", &t.access).await;
    assert_eq!(
        after.body["metadata"]["version"], version,
        "refused writes change nothing"
    );
    assert_eq!(after.body["metadata"]["tags"], json!({ "team": "b" }));
    assert_eq!(after.body["metadata"]["ttl"], 60);
}

/// A `PUT` without `ttl` keeps the entry's expiry time rather than restarting
/// it, and the entry really goes at that time.
async fn put_keeps_expiry_time(app: TestApp) {
    let t = app.register("expiry").await;
    let created = app
        .post("/api/v1/kv", &t.access, json!({ "key": "k", "value": 1, "ttl": 2 }))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let updated = app.put("/api/v1/kv/k", &t.access, json!({ "value": 2 })).await;
    assert_eq!(updated.status, StatusCode::OK, "{updated:?}");
    assert_eq!(updated.body["metadata"]["ttl"], 2);
    assert_eq!(
        app.get("/api/v1/kv/k/ttl", &t.access).await.body["ttl"],
        1,
        "under a second left, not two"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app.get("/api/v1/kv/k", &t.access).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/api/v1/kv/stats/count", &t.access).await.body["count"], 0);
}

/// `batch` and `stats` are also path segments of the API (`POST kv/batch`,
/// `GET kv/stats/count`); as keys they behave like any other.
async fn route_named_keys(app: TestApp) {
    let t = app.register("routes").await;
    for key in ["batch", "stats", "count"] {
        let created = app
            .post("/api/v1/kv", &t.access, json!({ "key": key, "value": key }))
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{key}: {created:?}");
        let read = app.get(&format!("/api/v1/kv/{key}"), &t.access).await;
        assert_eq!(
            (read.status, &read.body["value"]),
            (StatusCode::OK, &json!(key)),
            "{key}: {read:?}"
        );
        let updated = app
            .put(&format!("/api/v1/kv/{key}"), &t.access, json!({ "value": 2 }))
            .await;
        assert_eq!(updated.body["metadata"]["version"], 2, "{key}: {updated:?}");
        let exists = app.get(&format!("/api/v1/kv/{key}/exists"), &t.access).await;
        assert_eq!(exists.status, StatusCode::OK, "{key}: {exists:?}");
        assert_eq!(exists.body["exists"], true, "{key}: {exists:?}");
        let ttl = app.get(&format!("/api/v1/kv/{key}/ttl"), &t.access).await;
        assert_eq!(ttl.body["ttl"], -1, "{key}: {ttl:?}");
    }
    let count = app.get("/api/v1/kv/stats/count", &t.access).await;
    assert_eq!(count.body["count"], 3, "{count:?}");
    for key in ["batch", "stats", "count"] {
        let deleted = app.delete(&format!("/api/v1/kv/{key}"), &t.access).await;
        assert!(deleted.status.is_success(), "{key}: {deleted:?}");
        let read = app.get(&format!("/api/v1/kv/{key}"), &t.access).await;
        assert_eq!(read.status, StatusCode::NOT_FOUND, "{key}: {read:?}");
    }
}

async fn conflicts_and_missing_keys(app: TestApp) {
    let t = app.register("conflict").await;
    assert_eq!(
        app.post("/api/v1/kv", &t.access, json!({ "key": "k", "value": 1 }))
            .await
            .status,
        StatusCode::CREATED
    );
    let again = app
        .post("/api/v1/kv", &t.access, json!({ "key": "k", "value": 2 }))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.error_code(), "key_exists");
    assert_eq!(
        app.get("/api/v1/kv/k", &t.access).await.body["value"],
        1,
        "a refused create changes nothing"
    );

    for (reply, what) in [
        (app.get("/api/v1/kv/missing", &t.access).await, "GET"),
        (
            app.put("/api/v1/kv/missing", &t.access, json!({ "value": 1 })).await,
            "PUT",
        ),
        (app.delete("/api/v1/kv/missing", &t.access).await, "DELETE"),
        (app.get("/api/v1/kv/missing/ttl", &t.access).await, "GET ttl"),
    ] {
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{what}: {reply:?}");
        assert_eq!(reply.error_code(), "not_found", "{what}");
        assert!(reply.body["error"]["message"].as_str().unwrap().contains("missing"));
    }
    assert_eq!(
        app.get("/api/v1/kv/missing/exists", &t.access).await.body["exists"],
        false
    );
    let stats_key = app
        .post("/api/v1/kv", &t.access, json!({ "key": "stats", "value": 1 }))
        .await;
    assert_eq!(stats_key.status, StatusCode::CREATED);
    assert_eq!(app.get("/api/v1/kv/stats", &t.access).await.body["value"], 1);
    assert_eq!(
        app.get("/api/v1/kv/stats/ttl", &t.access).await.body["ttl"],
        -1,
        "a key named stats stays addressable"
    );
}

async fn listing(app: TestApp) {
    let t = app.register("list").await;
    for i in (0..25).rev() {
        let tags = if i % 5 == 0 {
            json!({ "kind": "fives" })
        } else {
            json!({ "kind": "other" })
        };
        let reply = app
            .post(
                "/api/v1/kv",
                &t.access,
                json!({ "key": format!("key-{i:02}"), "value": i, "tags": tags }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    let keys = |reply: &common::Reply| -> Vec<String> {
        reply.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["key"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = app.get("/api/v1/kv?page=1&page_size=10", &t.access).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    assert_eq!(first.body["total"], 25);
    assert_eq!(
        keys(&first),
        (0..10).map(|i| format!("key-{i:02}")).collect::<Vec<_>>(),
        "key order"
    );
    assert_eq!(first.body["items"][3]["metadata"]["version"], 1);
    let third = app.get("/api/v1/kv?page=3&page_size=10", &t.access).await;
    assert_eq!(
        keys(&third),
        (20..25).map(|i| format!("key-{i:02}")).collect::<Vec<_>>()
    );
    let beyond = app.get("/api/v1/kv?page=9&page_size=10", &t.access).await;
    assert!(keys(&beyond).is_empty());
    assert_eq!(beyond.body["total"], 25);
    assert_eq!(
        app.get("/api/v1/kv?page=1&page_size=10", &t.access).await.body,
        first.body,
        "stable order"
    );
    let default = app.get("/api/v1/kv", &t.access).await;
    assert_eq!(default.body["page_size"], 20);
    assert_eq!(keys(&default).len(), 20);

    let fives = app
        .get("/api/v1/kv?tag_filter=kind:fives&page_size=2&page=2", &t.access)
        .await;
    assert_eq!(fives.body["total"], 5, "{fives:?}");
    assert_eq!(keys(&fives), vec!["key-10", "key-15"]);
    let none = app.get("/api/v1/kv?tag_filter=kind:nothing", &t.access).await;
    assert_eq!(none.body["total"], 0);

    for bad in [
        "page_size=101",
        "page_size=0",
        "page=0",
        "tag_filter=novalue",
        "page=abc",
        "sort=desc",
    ] {
        let reply = app.get(&format!("/api/v1/kv?{bad}"), &t.access).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}: {reply:?}");
        assert_eq!(reply.error_code(), "invalid_query", "{bad}");
    }
}

async fn batches(app: TestApp) {
    let t = app.register("batch").await;
    app.post("/api/v1/kv", &t.access, json!({ "key": "existing", "value": "old" }))
        .await;
    let ok = app
        .post(
            "/api/v1/kv/batch",
            &t.access,
            json!({ "operations": [
                { "op": "set", "key": "a", "value": 1 },
                { "op": "set", "key": "existing", "value": "new", "ttl": 60, "tags": { "t": "x" } },
                { "op": "set", "key": "a", "value": 2 },
                { "op": "delete", "key": "a" },
                { "op": "set", "key": "b", "value": [1, 2] },
            ]}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");
    assert_eq!(ok.body["committed"], true);
    let statuses: Vec<(&str, u64)> = ok.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["status"].as_str().unwrap(), r["version"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("created", 1),
            ("updated", 2),
            ("updated", 2),
            ("deleted", 2),
            ("created", 1)
        ]
    );
    assert_eq!(app.get("/api/v1/kv/existing", &t.access).await.body["value"], "new");
    assert_eq!(app.get("/api/v1/kv/a", &t.access).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/api/v1/kv/stats/count", &t.access).await.body["count"], 2);

    let rejected = app
        .post(
            "/api/v1/kv/batch",
            &t.access,
            json!({ "operations": [
                { "op": "set", "key": "c", "value": 1 },
                { "op": "delete", "key": "never-there" },
                { "op": "set", "key": "b", "value": "changed" },
            ]}),
        )
        .await;
    assert_eq!(rejected.status, StatusCode::CONFLICT, "{rejected:?}");
    assert_eq!(rejected.error_code(), "batch_rejected");
    let results = &rejected.body["error"]["details"]["results"];
    assert_eq!(results[0]["status"], "not_applied");
    assert_eq!(results[1]["status"], "not_found");
    assert_eq!(results[2]["status"], "not_applied");
    assert_eq!(
        app.get("/api/v1/kv/c", &t.access).await.status,
        StatusCode::NOT_FOUND,
        "nothing applied"
    );
    assert_eq!(app.get("/api/v1/kv/b", &t.access).await.body["value"], json!([1, 2]));

    let invalid = app
        .post(
            "/api/v1/kv/batch",
            &t.access,
            json!({ "operations": [
                { "op": "set", "key": "d", "value": 1 },
                { "op": "set", "key": "", "value": 1 },
            ]}),
        )
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY, "{invalid:?}");
    assert_eq!(invalid.body["error"]["details"]["results"][1]["status"], "invalid");
    assert_eq!(app.get("/api/v1/kv/d", &t.access).await.status, StatusCode::NOT_FOUND);

    let too_many: Vec<_> = (0..1001)
        .map(|i| json!({ "op": "set", "key": format!("k{i}"), "value": i }))
        .collect();
    let reply = app
        .post("/api/v1/kv/batch", &t.access, json!({ "operations": too_many }))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{reply:?}");
    let empty = app
        .post("/api/v1/kv/batch", &t.access, json!({ "operations": [] }))
        .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    let unknown_op = app
        .post(
            "/api/v1/kv/batch",
            &t.access,
            json!({ "operations": [{ "op": "merge", "key": "x" }] }),
        )
        .await;
    assert_eq!(unknown_op.status, StatusCode::UNPROCESSABLE_ENTITY, "{unknown_op:?}");

    let full: Vec<_> = (0..1000)
        .map(|i| json!({ "op": "set", "key": format!("bulk-{i:04}"), "value": i }))
        .collect();
    let reply = app
        .post("/api/v1/kv/batch", &t.access, json!({ "operations": full }))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "a batch of exactly 1000 is accepted");
    assert_eq!(app.get("/api/v1/kv/stats/count", &t.access).await.body["count"], 1002);
}

async fn invalid_writes(app: TestApp) {
    let t = app.register("invalid").await;
    let long_key = "k".repeat(257);
    let reply = app
        .post("/api/v1/kv", &t.access, json!({ "key": long_key, "value": 1 }))
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{reply:?}");
    let ok_key = "k".repeat(256);
    assert_eq!(
        app.post("/api/v1/kv", &t.access, json!({ "key": ok_key, "value": 1 }))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.get(&format!("/api/v1/kv/{}", "k".repeat(257)), &t.access)
            .await
            .status,
        StatusCode::PAYLOAD_TOO_LARGE
    );

    let big = "x".repeat(2 * 1024 * 1024);
    let reply = app
        .post("/api/v1/kv", &t.access, json!({ "key": "big", "value": big }))
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{reply:?}");
    assert_eq!(reply.error_code(), "payload_too_large");
    let just_fits = "x".repeat(2 * 1024 * 1024 - 2);
    let reply = app
        .post("/api/v1/kv", &t.access, json!({ "key": "fits", "value": just_fits }))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "a value of exactly 2 MiB is accepted"
    );
    let huge_body = "y".repeat(5 * 1024 * 1024);
    let reply = app
        .post("/api/v1/kv", &t.access, json!({ "key": "huge", "value": huge_body }))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "over the body limit: {reply:?}"
    );

    for (body, status) in [
        (json!({ "key": "", "value": 1 }), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({ "key": "a\u{1}b", "value": 1 }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({ "key": "x:metadata", "value": 1 }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({ "key": "t", "value": 1, "ttl": 0 }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({ "key": "t", "value": 1, "ttl": -5 }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({ "key": "t", "value": 1, "tags": { "a:b": "c" } }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({ "key": "t" }), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({ "value": 1 }), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({ "key": "t", "value": 1, "extra": true }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({ "key": 5, "value": 1 }), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let reply = app.post("/api/v1/kv", &t.access, body.clone()).await;
        assert_eq!(reply.status, status, "{body}: {reply:?}");
        assert!(reply.body["error"]["message"].is_string(), "{body}: JSON error");
    }
    let bad_json = axum::http::Request::post("/api/v1/kv")
        .header("authorization", format!("Bearer {}", t.access))
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{\"key\": \"a\", \"value\": "))
        .unwrap();
    let reply = app.send(bad_json).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{reply:?}");
    assert_eq!(reply.error_code(), "invalid_json");
    let no_type = axum::http::Request::post("/api/v1/kv")
        .header("authorization", format!("Bearer {}", t.access))
        .body(axum::body::Body::from("{\"key\": \"a\", \"value\": 1}"))
        .unwrap();
    assert_eq!(app.send(no_type).await.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        app.get("/api/v1/kv/stats/count", &t.access).await.body["count"],
        2,
        "only the valid writes landed"
    );
}

async fn ttl_expiry(app: TestApp) {
    let t = app.register("ttl").await;
    let reply = app
        .post("/api/v1/kv", &t.access, json!({ "key": "short", "value": 1, "ttl": 1 }))
        .await;
    assert_eq!(reply.body["metadata"]["ttl"], 1);
    app.post(
        "/api/v1/kv",
        &t.access,
        json!({ "key": "long", "value": 2, "ttl": 3600 }),
    )
    .await;
    app.post("/api/v1/kv", &t.access, json!({ "key": "forever", "value": 3 }))
        .await;
    let ttl = app.get("/api/v1/kv/long/ttl", &t.access).await;
    let secs = ttl.body["ttl"].as_i64().unwrap();
    assert!((3599..=3600).contains(&secs), "{ttl:?}");
    assert_eq!(app.get("/api/v1/kv/short/ttl", &t.access).await.body["ttl"], 1);
    assert_eq!(app.get("/api/v1/kv/stats/count", &t.access).await.body["count"], 3);

    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        app.get("/api/v1/kv/short", &t.access).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/api/v1/kv/short/exists", &t.access).await.body["exists"],
        false
    );
    assert_eq!(
        app.get("/api/v1/kv/short/ttl", &t.access).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.get("/api/v1/kv/stats/count", &t.access).await.body["count"], 2);
    let listed = app.get("/api/v1/kv", &t.access).await;
    assert_eq!(listed.body["total"], 2);
    assert!(!listed.body.to_string().contains("\"short\""), "{listed:?}");
    assert_eq!(
        app.put("/api/v1/kv/short", &t.access, json!({ "value": 9 }))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let again = app
        .post("/api/v1/kv", &t.access, json!({ "key": "short", "value": "again" }))
        .await;
    assert_eq!(
        again.status,
        StatusCode::CREATED,
        "an expired key can be created anew: {again:?}"
    );
    assert_eq!(again.body["metadata"]["version"], 1);
    assert_eq!(app.get("/api/v1/kv/short/ttl", &t.access).await.body["ttl"], -1);
}

async fn audit_log(app: TestApp) {
    let t = app.register("audit").await;
    app.post("/api/v1/kv", &t.access, json!({ "key": "k", "value": 1 }))
        .await;
    app.put("/api/v1/kv/k", &t.access, json!({ "value": 2 })).await;
    app.delete("/api/v1/kv/k", &t.access).await;
    app.post("/api/v1/kv", &t.access, json!({ "key": "k", "value": 1 }))
        .await;
    app.post("/api/v1/kv", &t.access, json!({ "key": "k", "value": 1 }))
        .await; // 409: not audited
    app.post(
        "/api/v1/kv/batch",
        &t.access,
        json!({ "operations": [{ "op": "set", "key": "b", "value": 1 }] }),
    )
    .await;
    let log = app.get("/api/v1/audit", &t.access).await;
    assert_eq!(log.status, StatusCode::OK, "{log:?}");
    assert_eq!(log.body["total"], 5);
    let ops: Vec<(String, String, u64, u64)> = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["tenant_id"], t.tenant_id.as_str());
            assert_eq!(r["user"], t.username.as_str());
            assert!(r["time"].as_str().unwrap().ends_with('Z'));
            (
                r["op"].as_str().unwrap().to_owned(),
                r["key"].as_str().unwrap().to_owned(),
                r["version"].as_u64().unwrap(),
                r["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("create", "k", 1),
        ("update", "k", 2),
        ("delete", "k", 2),
        ("create", "k", 1),
        ("create", "b", 1),
    ];
    for (i, ((op, key, version, seq), (eop, ekey, eversion))) in ops.iter().zip(expected).enumerate() {
        assert_eq!(
            (op.as_str(), key.as_str(), *version, *seq),
            (eop, ekey, eversion, i as u64 + 1)
        );
    }
    let page2 = app.get("/api/v1/audit?page=2&page_size=2", &t.access).await;
    assert_eq!(page2.body["items"][0]["seq"], 3);
    assert_eq!(page2.body["items"].as_array().unwrap().len(), 2);

    let (key, _) = app.api_key(&t, &["read", "write"]).await;
    app.post("/api/v1/kv", &key, json!({ "key": "by-key", "value": 1 }))
        .await;
    let log = app.get("/api/v1/audit?page=1&page_size=100", &t.access).await;
    let last = &log.body["items"][5];
    assert_eq!(last["key"], "by-key");
    assert!(last["user"].as_str().unwrap().starts_with("api_key:"), "{last}");
    let forbidden = app.get("/api/v1/audit", &key).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN, "audit needs admin");
}
