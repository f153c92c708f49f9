//! Auth and API-key endpoints through `oneshot`: success and every failure
//! (bad JSON, missing fields, policy, 409s, expired or foreign tokens, scopes).

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine as _;
use common::{Backend, PASSWORD, SECRET, TestApp, unique};
use pulse_gateway::auth::api_keys;
use pulse_gateway::auth::jwt::{Claims, JwtKeys, TokenKind};
use pulse_gateway::auth::password::PasswordHasher;
use pulse_gateway::store::{ApiKeyRecord, EmbeddedStore, Store};
use pulse_gateway::{JwtSecret, Scope, TenantId, issue_token};
use serde_json::json;
use uuid::Uuid;

async fn app() -> TestApp {
    TestApp::new(Backend::Embedded).await.unwrap()
}

fn register_body(username: &str) -> serde_json::Value {
    json!({ "username": username, "email": format!("{username}@example.com"), "password": PASSWORD })
}

#[tokio::test]
async fn register_login_refresh_and_me() {
    let app = app().await;
    let name = format!("alice{}", unique());
    let reply = app
        .call(Method::POST, "/api/v1/auth/register", None, Some(register_body(&name)))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    let tenant = reply.body["tenant_id"].as_str().unwrap().to_owned();
    assert!(Uuid::parse_str(&tenant).is_ok(), "tenant_id is a UUID");
    assert_eq!(reply.body["token_type"], "bearer");
    assert_eq!(reply.body["expires_in"], 1800);

    let keys = JwtKeys::new(&JwtSecret::new(SECRET).unwrap());
    let access = keys
        .verify(reply.body["access_token"].as_str().unwrap(), TokenKind::Access)
        .unwrap();
    assert_eq!(access.sub, tenant, "the tenant id is the subject");
    assert_eq!(access.exp - access.iat, 1800, "access tokens live 30 minutes");
    assert_eq!(access.scopes, Scope::ALL.to_vec());
    let refresh = keys
        .verify(reply.body["refresh_token"].as_str().unwrap(), TokenKind::Refresh)
        .unwrap();
    assert_eq!(refresh.exp - refresh.iat, 7 * 24 * 3600, "refresh tokens live 7 days");

    let login = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "username": name, "password": PASSWORD })),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{login:?}");
    assert_eq!(login.body["tenant_id"], tenant.as_str());
    let token = login.body["access_token"].as_str().unwrap();
    let me = app.get("/api/v1/auth/me", token).await;
    assert_eq!(me.status, StatusCode::OK, "{me:?}");
    assert_eq!(me.body["tenant_id"], tenant.as_str());
    assert_eq!(me.body["username"], name.as_str());
    assert_eq!(me.body["email"], format!("{name}@example.com"));
    assert_eq!(me.body["scopes"], json!(["read", "write", "admin"]));
    assert_eq!(me.body["auth_method"], "jwt");

    let refreshed = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": login.body["refresh_token"] })),
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{refreshed:?}");
    assert_ne!(refreshed.body["access_token"], login.body["access_token"]);
    assert_eq!(
        app.get("/api/v1/auth/me", refreshed.body["access_token"].as_str().unwrap())
            .await
            .status,
        StatusCode::OK
    );
    let access_as_refresh = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": token })),
        )
        .await;
    assert_eq!(
        access_as_refresh.status,
        StatusCode::UNAUTHORIZED,
        "an access token cannot refresh"
    );
    assert_eq!(
        access_as_refresh.body["error"]["message"],
        "expected a refresh token, not an access token"
    );
    let refresh_as_access = app
        .get("/api/v1/auth/me", login.body["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(
        refresh_as_access.status,
        StatusCode::UNAUTHORIZED,
        "a refresh token cannot authorise"
    );
    assert_eq!(
        refresh_as_access.body["error"]["message"],
        "expected an access token, not a refresh token"
    );
}

#[tokio::test]
async fn registration_failures() {
    let app = app().await;
    let name = format!("bob{}", unique());
    assert_eq!(
        app.call(Method::POST, "/api/v1/auth/register", None, Some(register_body(&name)))
            .await
            .status,
        StatusCode::CREATED
    );
    let same_name = app
        .call(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(json!({ "username": name, "email": "other@example.com", "password": PASSWORD })),
        )
        .await;
    assert_eq!(same_name.status, StatusCode::CONFLICT);
    assert_eq!(same_name.error_code(), "username_taken");
    let same_email = app
        .call(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(json!({ "username": format!("x{name}"), "email": format!("{}@EXAMPLE.com", name.to_uppercase()), "password": PASSWORD })),
        )
        .await;
    assert_eq!(
        same_email.status,
        StatusCode::CONFLICT,
        "e-mail addresses compare case-insensitively"
    );
    assert_eq!(same_email.error_code(), "email_taken");

    for (body, status, needle) in [
        (
            json!({ "username": "carol1", "email": "c@example.com", "password": "short1A" }),
            422,
            "8 characters",
        ),
        (
            json!({ "username": "carol1", "email": "c@example.com", "password": "nouppercase1" }),
            422,
            "upper-case",
        ),
        (
            json!({ "username": "carol1", "email": "c@example.com", "password": "NOLOWERCASE1" }),
            422,
            "lower-case",
        ),
        (
            json!({ "username": "carol1", "email": "c@example.com", "password": "NoDigitsAtAll" }),
            422,
            "digit",
        ),
        (
            json!({ "username": "carol1", "email": "not-an-email", "password": PASSWORD }),
            422,
            "email",
        ),
        (
            json!({ "username": "c", "email": "c@example.com", "password": PASSWORD }),
            422,
            "username",
        ),
        (
            json!({ "username": "carol 1", "email": "c@example.com", "password": PASSWORD }),
            422,
            "username",
        ),
        (json!({ "username": "carol1", "password": PASSWORD }), 422, "email"),
        (
            json!({ "username": "carol1", "email": "c@example.com" }),
            422,
            "password",
        ),
    ] {
        let reply = app
            .call(Method::POST, "/api/v1/auth/register", None, Some(body.clone()))
            .await;
        assert_eq!(reply.status.as_u16(), status, "{body}: {reply:?}");
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{body}: {message}");
    }
    let bad_json = Request::post("/api/v1/auth/register")
        .header("content-type", "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let reply = app.send(bad_json).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "invalid_json");
}

#[tokio::test]
async fn login_failures_do_not_say_which_part_was_wrong() {
    let app = app().await;
    let t = app.register("dave").await;
    for body in [
        json!({ "username": t.username, "password": "Wrong1password" }),
        json!({ "username": "nobody-at-all", "password": PASSWORD }),
    ] {
        let reply = app.call(Method::POST, "/api/v1/auth/login", None, Some(body)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(reply.error_code(), "invalid_credentials");
        assert_eq!(reply.body["error"]["message"], "invalid username or password");
    }
    let missing = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "username": "x" })),
        )
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// The fastest of five failed sign-ins made by `request`.
async fn fastest_refusal(app: &TestApp, request: impl Fn() -> Request<Body>) -> Duration {
    let mut fastest = Duration::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        let reply = app.send(request()).await;
        fastest = fastest.min(started.elapsed());
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{reply:?}");
        assert_eq!(reply.error_code(), "invalid_credentials");
    }
    fastest
}

/// A sign-in as a user who does not exist spends the argon2 time too, so the
/// time a refusal takes does not tell which user names exist: for login and for
/// Basic credentials, the fastest refusal of an unknown user and of a wrong
/// password each take at least a quarter of one argon2 verification measured
/// here (a refusal without one takes well under a millisecond; the margin
/// absorbs a machine busy with other tests while the verification is timed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_take_as_long_to_refuse_as_wrong_passwords() {
    const MEMORY_KIB: u32 = 2048;
    const ITERATIONS: u32 = 1;
    let app = TestApp::with(Backend::Embedded, |config| {
        config.auth.argon2_memory_kib = MEMORY_KIB;
        config.auth.argon2_iterations = ITERATIONS;
    })
    .await
    .unwrap();
    let t = app.register("timing").await;
    let hasher = PasswordHasher::new(MEMORY_KIB, ITERATIONS).unwrap();
    let hash = hasher.hash(PASSWORD);
    // The fastest of several verifications is the cost without load; measured
    // again after the refusals, so that a busy machine during the first
    // measurement cannot make the honest refusals look too fast.
    let fastest_verification = || {
        (0..5)
            .map(|_| {
                let started = Instant::now();
                assert!(!hasher.verify("Wrong1password", &hash));
                started.elapsed()
            })
            .min()
            .unwrap()
    };
    let verification = fastest_verification();
    assert!(
        verification >= Duration::from_millis(5),
        "one verification takes {verification:?}: too cheap to tell from request overhead; raise MEMORY_KIB"
    );
    let login = |username: &str| {
        let body = json!({ "username": username, "password": "Wrong1password" }).to_string();
        move || {
            Request::post("/api/v1/auth/login")
                .header("content-type", "application/json")
                .body(Body::from(body.clone()))
                .unwrap()
        }
    };
    let basic = |username: &str| {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{username}:Wrong1password"));
        move || {
            Request::post("/api/v1/auth/token")
                .header("authorization", format!("Basic {encoded}"))
                .body(Body::empty())
                .unwrap()
        }
    };
    let unknown = format!("nobody{}", unique());
    let timings = [
        ("login, wrong password", fastest_refusal(&app, login(&t.username)).await),
        ("login, unknown user", fastest_refusal(&app, login(&unknown)).await),
        ("Basic, wrong password", fastest_refusal(&app, basic(&t.username)).await),
        ("Basic, unknown user", fastest_refusal(&app, basic(&unknown)).await),
    ];
    let verification = verification.min(fastest_verification());
    for (case, fastest) in timings {
        assert!(
            fastest >= verification / 4,
            "{case}: refused in {fastest:?}, under a quarter of one argon2 verification ({verification:?}); all: {timings:?}"
        );
    }
}

#[tokio::test]
async fn basic_credentials_buy_an_access_token() {
    let app = app().await;
    let t = app.register("agent").await;
    let basic = |user: &str, password: &str| {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Request::post("/api/v1/auth/token")
            .header("authorization", format!("Basic {encoded}"))
            .body(Body::empty())
            .unwrap()
    };
    let reply = app.send(basic(&t.username, PASSWORD)).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let token = reply.body["access_token"].as_str().unwrap();
    assert_eq!(
        app.get("/api/v1/auth/me", token).await.body["tenant_id"],
        t.tenant_id.as_str()
    );
    assert_eq!(
        app.send(basic(&t.username, "Wrong1password")).await.status,
        StatusCode::UNAUTHORIZED
    );
    let none = app.call(Method::POST, "/api/v1/auth/token", None, None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    let garbage = Request::post("/api/v1/auth/token")
        .header("authorization", "Basic %%%")
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(garbage).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_tokens_are_refused() {
    let app = app().await;
    let t = app.register("eve").await;
    let keys = JwtKeys::new(&JwtSecret::new(SECRET).unwrap());
    let mut expired = Claims::new(&t.tenant_id, &Scope::ALL, TokenKind::Access, Duration::ZERO);
    expired.exp -= 120;
    let reply = app.get("/api/v1/kv/stats/count", &keys.sign(&expired)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.error_code(), "token_expired");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));

    let foreign = JwtSecret::new("some-other-secret-some-other-secret!").unwrap();
    let forged = issue_token(
        &foreign,
        t.tenant_id.parse().unwrap(),
        &Scope::ALL,
        Duration::from_secs(60),
    );
    let reply = app.get("/api/v1/kv/stats/count", &forged).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.error_code(), "invalid_token");

    for token in ["not.a.token", "", "x"] {
        assert_eq!(
            app.get("/api/v1/kv/stats/count", token).await.status,
            StatusCode::UNAUTHORIZED,
            "{token:?}"
        );
    }
    let no_auth = app.call(Method::GET, "/api/v1/kv/stats/count", None, None).await;
    assert_eq!(no_auth.status, StatusCode::UNAUTHORIZED);
    assert_eq!(no_auth.error_code(), "unauthorized");
    let odd_scheme = Request::get("/api/v1/kv/stats/count")
        .header("authorization", "Token abc")
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(odd_scheme).await.status, StatusCode::UNAUTHORIZED);
    let bad_key = app.get("/api/v1/kv/stats/count", "pk_nothing_0123456789").await;
    assert_eq!(bad_key.status, StatusCode::UNAUTHORIZED);
    assert_eq!(bad_key.error_code(), "invalid_api_key");
}

#[tokio::test]
async fn scopes_are_enforced() {
    let app = app().await;
    let t = app.register("scoped").await;
    app.post("/api/v1/kv", &t.access, json!({ "key": "k", "value": 1 }))
        .await;
    let tenant: TenantId = t.tenant_id.parse().unwrap();
    let secret = JwtSecret::new(SECRET).unwrap();
    let read_only = issue_token(&secret, tenant.clone(), &[Scope::Read], Duration::from_secs(60));
    let write_only = issue_token(&secret, tenant, &[Scope::Write], Duration::from_secs(60));
    assert_eq!(app.get("/api/v1/kv/k", &read_only).await.status, StatusCode::OK);
    assert_eq!(app.get("/api/v1/kv/k", &write_only).await.status, StatusCode::FORBIDDEN);
    let denied = app
        .post("/api/v1/kv", &read_only, json!({ "key": "n", "value": 1 }))
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.error_code(), "forbidden");
    assert!(denied.body["error"]["message"].as_str().unwrap().contains("write"));
    assert_eq!(
        app.put("/api/v1/kv/k", &read_only, json!({ "value": 2 })).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.delete("/api/v1/kv/k", &read_only).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.post("/api/v1/kv/batch", &read_only, json!({ "operations": [] }))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.post("/api/v1/kv", &write_only, json!({ "key": "n", "value": 1 }))
            .await
            .status,
        StatusCode::CREATED
    );
    for path in ["/api/v1/audit", "/api/v1/api-keys"] {
        assert_eq!(app.get(path, &read_only).await.status, StatusCode::FORBIDDEN, "{path}");
    }
    let me = app.get("/api/v1/auth/me", &read_only).await;
    assert_eq!(me.body["scopes"], json!(["read"]));
    assert_eq!(
        me.body["username"],
        t.username.as_str(),
        "a CLI token still finds the tenant's user"
    );
}

#[tokio::test]
async fn api_keys_authenticate_with_their_scopes_and_can_be_revoked() {
    let app = app().await;
    let t = app.register("keys").await;
    let reply = app
        .post(
            "/api/v1/api-keys",
            &t.access,
            json!({ "name": "ingest", "scopes": ["read"] }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    let key = reply.body["key"].as_str().unwrap().to_owned();
    let id = reply.body["id"].as_str().unwrap().to_owned();
    let prefix = format!("pk_{}_", t.tenant_id);
    assert!(key.starts_with(&prefix) && key.len() == prefix.len() + 32, "{key}");
    assert_eq!(
        reply.body["prefix"].as_str().unwrap(),
        &key[..prefix.len() + 4],
        "the whole tenant id shows"
    );

    let listed = app.get("/api/v1/api-keys", &t.access).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    assert_eq!(listed.body[0]["id"], id.as_str());
    assert_eq!(listed.body[0]["scopes"], json!(["read"]));
    assert!(!listed.body.to_string().contains(&key), "listings never show the key");

    app.post("/api/v1/kv", &t.access, json!({ "key": "k", "value": 1 }))
        .await;
    assert_eq!(app.get("/api/v1/kv/k", &key).await.body["value"], 1);
    assert_eq!(app.get("/api/v1/auth/me", &key).await.body["auth_method"], "api_key");
    let write = app.post("/api/v1/kv", &key, json!({ "key": "j", "value": 1 })).await;
    assert_eq!(write.status, StatusCode::FORBIDDEN, "a read key cannot write");
    assert_eq!(app.get("/api/v1/api-keys", &key).await.status, StatusCode::FORBIDDEN);

    let secret = JwtSecret::new(SECRET).unwrap();
    let reader = issue_token(
        &secret,
        t.tenant_id.parse().unwrap(),
        &[Scope::Read, Scope::Admin],
        Duration::from_secs(60),
    );
    let escalate = app
        .post("/api/v1/api-keys", &reader, json!({ "name": "x", "scopes": ["write"] }))
        .await;
    assert_eq!(
        escalate.status,
        StatusCode::FORBIDDEN,
        "a key cannot exceed its creator's scopes"
    );
    for body in [
        json!({ "name": "" }),
        json!({ "name": "x", "scopes": [] }),
        json!({ "name": "x", "scopes": ["root"] }),
    ] {
        let reply = app.post("/api/v1/api-keys", &t.access, body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {reply:?}");
    }

    assert_eq!(
        app.delete(&format!("/api/v1/api-keys/{id}"), &t.access).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/api/v1/kv/k", &key).await.status,
        StatusCode::UNAUTHORIZED,
        "revoked"
    );
    assert_eq!(
        app.delete(&format!("/api/v1/api-keys/{id}"), &t.access).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(
        app.get("/api/v1/api-keys", &t.access)
            .await
            .body
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// A key made before keys carried the whole tenant id (`pk_` and its first 8
/// letters and digits) still authenticates: keys are found by their hash.
#[tokio::test]
async fn api_keys_in_the_old_short_format_keep_working() {
    let app = app().await;
    let t = app.register("oldkey").await;
    let old_key = format!(
        "pk_{}_{}",
        &t.tenant_id.replace('-', "")[..8],
        "0123456789abcdefghijABCDEFGHIJxy"
    );
    let (config, dir) = app.close();
    let store = EmbeddedStore::open(&config.data_dir).unwrap();
    store
        .create_api_key(&ApiKeyRecord {
            id: Uuid::new_v4().to_string(),
            tenant_id: t.tenant_id.clone(),
            name: "made by an earlier version".to_owned(),
            prefix: old_key[..old_key.len() - 28].to_owned(),
            key_hash: api_keys::hash(&old_key),
            scopes: vec!["read".to_owned()],
            plan: "enterprise".to_owned(),
            created_at: 0,
        })
        .await
        .unwrap();
    drop(store);
    let app = TestApp::open(config, dir).await;
    let me = app.get("/api/v1/auth/me", &old_key).await;
    assert_eq!(me.status, StatusCode::OK, "{me:?}");
    assert_eq!(me.body["tenant_id"], t.tenant_id.as_str());
    assert_eq!(me.body["auth_method"], "api_key");
    let (new_key, _) = app.api_key(&t, &["read"]).await;
    assert!(new_key.starts_with(&format!("pk_{}_", t.tenant_id)), "{new_key}");
    let listed = app.get("/api/v1/api-keys", &t.access).await;
    let prefixes: Vec<&str> = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["prefix"].as_str().unwrap())
        .collect();
    assert_eq!(
        prefixes,
        [&old_key[..old_key.len() - 28], &new_key[..new_key.len() - 28]]
    );
}
