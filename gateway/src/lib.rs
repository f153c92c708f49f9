//! The pulse gateway: an HTTP API in front of the engine with JWT and API-key
//! auth, a tenant-scoped key-value store (embedded redb or Redis) with TTLs,
//! tags, batches and an audit log, sliding-window rate limits by plan, and the
//! operations endpoints (`/health*`, `/metrics`, `/api/v1/openapi.json`, `/docs`).
//!
//! The engine opens a [`Gateway`] from a [`GatewayConfig`], serves its
//! [`Gateway::router`] with [`serve`], flips its [`Readiness`], and prints tokens
//! with [`issue_token`]. Live results (`/ws`, `/api/v1/analytics/query`,
//! `/api/v1/stats`) are served once the engine calls [`Gateway::attach_live`]
//! with the hub and views its `websocket` sinks publish to, and events are
//! accepted at `POST /api/v1/events` once it calls [`Gateway::attach_ingest`]
//! with the queue of its `http` source:
//!
//! ```no_run
//! # async fn run() -> Result<(), pulse_gateway::GatewayError> {
//! use pulse_gateway::{Gateway, GatewayConfig, serve};
//! let config = GatewayConfig::default();
//! let gateway = Gateway::open(config.clone()).await?; // reads PULSE_JWT_SECRET
//! gateway.readiness().set_pipeline_ready(true); // no pipeline: ready once the store is
//! let listener = pulse_gateway::bind(config.listen).await?;
//! let readiness = gateway.readiness();
//! serve(listener, gateway.router(), async move {
//!     let _ = tokio::signal::ctrl_c().await;
//!     readiness.set_shutting_down();
//! })
//! .await
//! # }
//! ```

pub mod audit;
pub mod auth;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod graph_query;
pub mod graph_reply;
pub mod ingest;
pub mod kv;
pub mod live;
pub mod middleware;
pub mod ml;
pub mod ml_train;
pub mod openapi;
pub mod ops;
pub mod rate_limit;
pub mod readiness;
pub mod state;
pub mod store;
pub mod timestamp;

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::routing::{delete, get, post};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::timeout::TimeoutLayer;

pub use auth::demo::DemoLogin;
pub use auth::jwt::{JwtSecret, issue_token};
pub use auth::{Scope, TenantId};
pub use config::{DemoAccountConfig, GatewayConfig, GraphQueryConfig, StoreConfig};
pub use error::{AppError, GatewayError};
pub use live::{LiveServices, StatsSource};
pub use ml::{MlError, ModelService};
pub use ml_train::{TrainJob, TrainKind, TrainedVersion};
pub use readiness::Readiness;

use auth::jwt::JwtKeys;
use auth::password::PasswordHasher;
use rate_limit::{InMemoryRateLimiter, RateLimiter, RateLimits, RedisRateLimiter};
use state::{AppState, Shared};
use store::{EmbeddedStore, RedisStore, Store};

/// An opened gateway: store connected, secret checked, expiry sweeper running.
pub struct Gateway {
    state: AppState,
    demo_login: Option<DemoLogin>,
}

impl Gateway {
    /// Opens the gateway with the signing secret from `PULSE_JWT_SECRET`
    /// (an ephemeral one, announced in the log, when it is unset and `config.demo` is on).
    pub async fn open(config: GatewayConfig) -> Result<Self, GatewayError> {
        let secret = JwtSecret::from_env(|name| std::env::var(name).ok(), config.demo)?;
        Self::open_with_secret(config, secret).await
    }

    /// Opens the gateway with an explicit signing secret.
    pub async fn open_with_secret(config: GatewayConfig, secret: JwtSecret) -> Result<Self, GatewayError> {
        config.validate()?;
        let (store, limiter): (Arc<dyn Store>, Arc<dyn RateLimiter>) = match &config.store {
            StoreConfig::Embedded => {
                let data_dir = config.data_dir.clone();
                let store = tokio::task::spawn_blocking(move || EmbeddedStore::open(&data_dir))
                    .await
                    .map_err(|e| GatewayError::Config(format!("opening the store failed: {e}")))??;
                (Arc::new(store), Arc::new(InMemoryRateLimiter::new()))
            }
            StoreConfig::Redis { url, key_prefix } => {
                let store = RedisStore::connect(url, key_prefix).await?;
                store.ping().await?;
                let limiter = RedisRateLimiter::new(store.connection(), key_prefix);
                (Arc::new(store), Arc::new(limiter))
            }
        };
        tracing::info!(backend = store.backend(), "gateway store opened");
        spawn_reaper(Arc::downgrade(&store), Duration::from_secs(config.reap_interval_secs));
        let passwords = PasswordHasher::new(config.auth.argon2_memory_kib, config.auth.argon2_iterations)?;
        let demo_login = match &config.demo_account {
            Some(account) => Some(auth::demo::ensure(store.as_ref(), &passwords, account).await?),
            None => None,
        };
        let shared = Shared {
            jwt: JwtKeys::new(&secret),
            passwords,
            rate_limits: RateLimits::new(config.rate_limit.clone(), limiter),
            readiness: Readiness::new(),
            metrics: ops::prometheus_handle(),
            live: std::sync::OnceLock::new(),
            ingest: std::sync::OnceLock::new(),
            history: config.history.as_ref().map(live::history::HistoryReader::new),
            models: std::sync::OnceLock::new(),
            store,
            config,
        };
        Ok(Self {
            state: AppState(Arc::new(shared)),
            demo_login,
        })
    }

    /// How to log into the `[gateway.demo_account]`, made ready when the gateway opened.
    pub fn demo_login(&self) -> Option<&DemoLogin> {
        self.demo_login.as_ref()
    }

    /// The readiness flags behind `/health/ready`.
    pub fn readiness(&self) -> Readiness {
        self.state.readiness.clone()
    }

    /// Hands the gateway the engine's live hub, window views and stats hook,
    /// which `/ws`, `/api/v1/analytics/query` and `/api/v1/stats` serve (they
    /// answer 503 until then). Works before or after [`Gateway::router`];
    /// fails if live services were attached already.
    pub fn attach_live(&self, live: LiveServices) -> Result<(), GatewayError> {
        self.state
            .live
            .set(live)
            .map_err(|_| GatewayError::Config("live services are attached already".into()))
    }

    /// Hands the gateway the queue of the pipeline's `http` source, which
    /// `POST /api/v1/events` fills (it answers 503 until then). Works before
    /// or after [`Gateway::router`]; fails if a queue was attached already.
    pub fn attach_ingest(&self, queue: pulse_core::ingest::IngestQueue) -> Result<(), GatewayError> {
        self.state
            .ingest
            .set(queue)
            .map_err(|_| GatewayError::Config("an ingest queue is attached already".into()))
    }

    /// Hands the gateway the engine's model registry, which the `/api/v1/ml/*`
    /// routes serve (they answer 503 until then). Fails if one was attached already.
    pub fn attach_models(&self, models: std::sync::Arc<dyn ModelService>) -> Result<(), GatewayError> {
        self.state
            .models
            .set(models)
            .map_err(|_| GatewayError::Config("a model registry is attached already".into()))
    }

    /// The configuration the gateway was opened with.
    pub fn config(&self) -> &GatewayConfig {
        &self.state.config
    }

    /// The HTTP routes with all middleware, ready for [`serve`] (or `oneshot` in tests).
    pub fn router(&self) -> Router {
        let state = self.state.clone();
        // These take no access token, so they are limited per client address instead of per tenant.
        let sign_in = Router::new()
            .route("/auth/register", post(auth::handlers::register))
            .route("/auth/login", post(auth::handlers::login))
            .route("/auth/refresh", post(auth::handlers::refresh))
            .route("/auth/token", post(auth::handlers::basic_token))
            .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::limit_sign_in));
        let api = Router::new()
            .route("/auth/me", get(auth::handlers::me))
            .route(
                "/api-keys",
                post(auth::handlers::create_api_key).get(auth::handlers::list_api_keys),
            )
            .route("/api-keys/{id}", delete(auth::handlers::delete_api_key))
            .route("/kv", post(kv::handlers::create).get(kv::handlers::list))
            .route(
                "/kv/batch",
                post(kv::handlers::batch).merge(kv::handlers::batch_named_key()),
            )
            .route("/kv/stats/count", get(kv::handlers::count))
            .route(
                "/kv/{key}",
                get(kv::handlers::get)
                    .put(kv::handlers::replace)
                    .delete(kv::handlers::delete),
            )
            .route("/kv/{key}/exists", get(kv::handlers::exists))
            .route("/kv/{key}/ttl", get(kv::handlers::ttl))
            .route("/audit", get(audit::audit_log))
            .route("/events", post(ingest::post_events))
            .route("/analytics/query", post(live::analytics::query))
            .route("/analytics/anomalies/{metric}", get(live::detections::anomalies))
            .route("/analytics/forecast", post(live::detections::forecast))
            .route("/stats", get(live::analytics::stats))
            .route("/incidents", get(live::rca_api::list_incidents))
            .route("/incidents/{id}", get(live::rca_api::get_incident))
            .route("/rca", get(live::rca_api::rca))
            .route("/resources", get(live::rca_api::list_resources))
            .route("/resources/{kind}/{namespace}/{name}", get(live::rca_api::get_resource))
            .route("/query/cypher", post(graph_query::cypher))
            .route("/ml/models", get(ml::list_models))
            .route("/ml/models/{id}", get(ml::get_model))
            .route("/ml/models/{id}/activate", post(ml::activate))
            .route("/ml/predict/{model_id}", post(ml::predict))
            .route("/ml/train", post(ml_train::train))
            .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::authenticate))
            .merge(sign_in)
            .route("/openapi.json", get(openapi::openapi_json));
        let router = Router::new()
            .nest("/api/v1", api)
            .route("/health", get(ops::health))
            .route("/health/live", get(ops::live))
            .route("/health/ready", get(ops::ready))
            .route("/metrics", get(ops::metrics))
            .route("/docs", get(ops::docs))
            .route("/", get(dashboard::index))
            .route("/dashboard.js", get(dashboard::script))
            .route("/chart.js", get(dashboard::chart_script))
            .route("/incidents.js", get(dashboard::incidents_script))
            .route("/dashboard.css", get(dashboard::stylesheet))
            .route("/favicon.svg", get(dashboard::icon_svg))
            .route("/favicon.ico", get(dashboard::icon_ico))
            // Authenticates itself: browsers pass `?token=`, which the API middleware does not read.
            .route("/ws", get(live::ws::connect))
            .fallback(ops::not_found)
            .method_not_allowed_fallback(ops::method_not_allowed)
            .with_state(state.clone())
            .layer(DefaultBodyLimit::max(state.config.limits.max_body_bytes))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                Duration::from_secs(state.config.request_timeout_secs),
            ));
        let router = match cors_layer(&state.config.cors_origins) {
            Some(cors) => router.layer(cors),
            None => router,
        };
        router.layer(axum::middleware::from_fn(middleware::observe))
    }
}

/// CORS for the configured origins (`*` for any), or none when the list is empty.
fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::from(Any)
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS])
            .allow_headers([
                axum::http::header::AUTHORIZATION,
                axum::http::header::CONTENT_TYPE,
                HeaderName::from_static("x-api-key"),
                HeaderName::from_static(middleware::CORRELATION_ID),
            ])
            .expose_headers([
                HeaderName::from_static(middleware::CORRELATION_ID),
                HeaderName::from_static(middleware::PROCESS_TIME),
                HeaderName::from_static("x-ratelimit-limit"),
                HeaderName::from_static("x-ratelimit-remaining"),
                HeaderName::from_static("x-ratelimit-window"),
                axum::http::header::RETRY_AFTER,
            ]),
    )
}

/// Reclaims expired KV entries every `interval` until the store is dropped.
fn spawn_reaper(store: Weak<dyn Store>, interval: Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let Some(store) = store.upgrade() else { break };
            match store.reap_expired(store::now_millis()).await {
                Ok(0) => {}
                Ok(reaped) => {
                    metrics::counter!("pulse_kv_expired_reclaimed_total").increment(reaped);
                    tracing::debug!(reaped, "expired keys reclaimed");
                }
                Err(error) => tracing::warn!(%error, "reclaiming expired keys failed"),
            }
        }
    });
}

/// Binds the gateway's `listen` address. An address another process holds is
/// [`GatewayError::AddressInUse`], which says how to choose another one.
pub async fn bind(address: std::net::SocketAddr) -> Result<tokio::net::TcpListener, GatewayError> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AddrInUse => GatewayError::AddressInUse(address),
            _ => GatewayError::Listen { address, source },
        })
}

/// Serves `router` on `listener` until `shutdown` completes, then lets
/// in-flight requests finish (each is bounded by the request timeout).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "gateway listening");
    }
    // The peer's address is what sign-in requests are rate limited by.
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(shutdown).await?;
    Ok(())
}
