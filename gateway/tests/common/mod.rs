//! Helpers shared by the gateway's integration tests: gateways on a scratch
//! data directory or a private Redis key prefix, requests through `oneshot`
//! (no socket), and registration shortcuts.
//!
//! Each test file includes this module with `mod common;` and uses only part
//! of it, hence the `dead_code` allowance below.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use pulse_gateway::{Gateway, GatewayConfig, JwtSecret, StoreConfig};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The secret every test gateway signs with.
pub const SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// A password that meets the policy.
pub const PASSWORD: &str = "Correct1horse";

/// A number no other call in this process gets.
pub fn unique() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A fresh directory under the system temp dir, removed when dropped unless the test failed.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<tmp>/pulse-gateway-tests/<label>-<pid>-<n>`.
    pub fn new(label: &str) -> Self {
        let path = std::env::temp_dir().join("pulse-gateway-tests").join(format!(
            "{label}-{}-{}",
            std::process::id(),
            unique()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        Self { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("keeping {} for inspection", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A cheap configuration for tests: low argon2 cost and no rate limit unless a test sets one.
pub fn test_config(data_dir: &Path) -> GatewayConfig {
    let mut config: GatewayConfig = toml::from_str(
        r#"
        [auth]
        argon2_memory_kib = 256
        argon2_iterations = 1
        [rate_limit]
        default_plan = "enterprise"
        "#,
    )
    .expect("the test configuration parses");
    config.data_dir = data_dir.to_owned();
    config
}

/// The Redis URL of the test server, or `None` (after saying so loudly) when none
/// answers; under `CI=true` a missing Redis fails the test instead.
pub fn redis_url() -> Option<String> {
    let url = std::env::var("PULSE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let address = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or("127.0.0.1:6379")
        .to_owned();
    let reachable = address
        .parse::<SocketAddr>()
        .is_ok_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok());
    match (reachable, std::env::var("CI").as_deref()) {
        (true, _) => Some(url),
        (false, Ok("true")) => panic!("no Redis at {url}: CI requires one (scripts/test.sh starts it)"),
        (false, _) => {
            // Straight to the stderr handle: libtest captures `eprintln!`, and a skip must be seen.
            let warning = format!("\n*** SKIPPED: no Redis at {url}; run ./scripts/test.sh to start one ***\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr(), warning.as_bytes());
            None
        }
    }
}

/// Which store a test gateway uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// redb in a scratch directory.
    Embedded,
    /// The test Redis, under a key prefix of the test's own.
    Redis,
}

/// A gateway under test and its router.
pub struct TestApp {
    /// The gateway (kept so that its readiness can be flipped).
    pub gateway: Gateway,
    /// Its routes.
    pub router: Router,
    /// The scratch directory (the embedded store lives here).
    pub dir: TempDir,
    /// The configuration it was opened with.
    pub config: GatewayConfig,
}

/// A response, read whole.
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body as JSON (`Value::Null` when empty, a string when not JSON).
    pub body: Value,
}

impl Reply {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The error code of a JSON error body.
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.body)
    }
}

/// The configuration for `backend` with a fresh directory or Redis prefix; `None` when Redis is absent.
pub fn config_for(backend: Backend, dir: &TempDir) -> Option<GatewayConfig> {
    let mut config = test_config(dir.path());
    if backend == Backend::Redis {
        config.store = StoreConfig::Redis {
            url: redis_url()?,
            key_prefix: format!("test-{}-{}-{}:", std::process::id(), unique(), nanos()),
        };
    }
    Some(config)
}

fn nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

impl TestApp {
    /// A gateway on `backend` with the test configuration; `None` when Redis is absent.
    pub async fn new(backend: Backend) -> Option<Self> {
        Self::with(backend, |_| {}).await
    }

    /// Like [`TestApp::new`], after `adjust` has changed the configuration.
    pub async fn with(backend: Backend, adjust: impl FnOnce(&mut GatewayConfig)) -> Option<Self> {
        let dir = TempDir::new("gateway");
        let mut config = config_for(backend, &dir)?;
        adjust(&mut config);
        Some(Self::open(config, dir).await)
    }

    /// Opens a gateway on `config` (its data directory inside `dir`).
    pub async fn open(config: GatewayConfig, dir: TempDir) -> Self {
        let gateway = Gateway::open_with_secret(config.clone(), JwtSecret::new(SECRET).unwrap())
            .await
            .unwrap_or_else(|e| panic!("the gateway does not open: {e}"));
        let router = gateway.router();
        Self {
            gateway,
            router,
            dir,
            config,
        }
    }

    /// Closes the gateway (releasing its store) and hands back what reopens
    /// it with [`TestApp::open`]: its configuration and directory.
    pub fn close(self) -> (GatewayConfig, TempDir) {
        let Self {
            gateway,
            router,
            dir,
            config,
        } = self;
        drop((router, gateway));
        (config, dir)
    }

    /// Sends a request; `auth` is a bearer token, or `X-API-Key` when it starts with `pk_`.
    pub async fn call(&self, method: Method, path: &str, auth: Option<&str>, body: Option<Value>) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(auth) = auth {
            request = if auth.starts_with("pk_") {
                request.header("x-api-key", auth)
            } else {
                request.header("authorization", format!("Bearer {auth}"))
            };
        }
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        };
        self.send(request.unwrap()).await
    }

    /// Sends a prepared request.
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.expect("the body reads").to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply { status, headers, body }
    }

    /// `GET path` with `auth`.
    pub async fn get(&self, path: &str, auth: &str) -> Reply {
        self.call(Method::GET, path, Some(auth), None).await
    }

    /// `POST path` with `auth` and a JSON body.
    pub async fn post(&self, path: &str, auth: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(auth), Some(body)).await
    }

    /// `PUT path` with `auth` and a JSON body.
    pub async fn put(&self, path: &str, auth: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, Some(auth), Some(body)).await
    }

    /// `DELETE path` with `auth`.
    pub async fn delete(&self, path: &str, auth: &str) -> Reply {
        self.call(Method::DELETE, path, Some(auth), None).await
    }

    /// Registers a new user with a unique name; returns the registration reply's body.
    pub async fn register(&self, label: &str) -> Tenant {
        let username = format!("{label}{}", unique());
        let reply = self
            .call(
                Method::POST,
                "/api/v1/auth/register",
                None,
                Some(json!({ "username": username, "email": format!("{username}@example.com"), "password": PASSWORD })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "registration failed: {reply:?}");
        Tenant {
            username,
            tenant_id: reply.body["tenant_id"].as_str().unwrap().to_owned(),
            access: reply.body["access_token"].as_str().unwrap().to_owned(),
            refresh: reply.body["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    /// Creates an API key with `scopes` for `tenant`; returns (key, id).
    pub async fn api_key(&self, tenant: &Tenant, scopes: &[&str]) -> (String, String) {
        let reply = self
            .post(
                "/api/v1/api-keys",
                &tenant.access,
                json!({ "name": "test key", "scopes": scopes }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
        (
            reply.body["key"].as_str().unwrap().to_owned(),
            reply.body["id"].as_str().unwrap().to_owned(),
        )
    }
}

/// A registered tenant and its tokens.
pub struct Tenant {
    /// The user name.
    pub username: String,
    /// The tenant id.
    pub tenant_id: String,
    /// An access token with every scope.
    pub access: String,
    /// A refresh token.
    pub refresh: String,
}

/// Runs a behaviour against both stores: `both_backends!(name, behaviour_fn)`
/// makes `name::embedded` and `name::redis` tests (the latter skips without Redis).
#[macro_export]
macro_rules! both_backends {
    ($($name:ident => $behaviour:path),* $(,)?) => {$(
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                let app = common::TestApp::new(common::Backend::Embedded).await.expect("embedded always opens");
                $behaviour(app).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                if let Some(app) = common::TestApp::new(common::Backend::Redis).await {
                    $behaviour(app).await;
                }
            }
        }
    )*};
}
