//! [`AppState`]: what every handler shares.

use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::jwt::JwtKeys;
use crate::auth::password::PasswordHasher;
use crate::config::GatewayConfig;
use crate::live::LiveServices;
use crate::rate_limit::RateLimits;
use crate::readiness::Readiness;
use crate::store::Store;
use pulse_core::ingest::IngestQueue;

/// The shared parts of the gateway.
pub struct Shared {
    /// The configuration it was opened with.
    pub config: GatewayConfig,
    /// Users, keys, KV entries and audit.
    pub store: Arc<dyn Store>,
    /// Token signing and checking.
    pub jwt: JwtKeys,
    /// Password hashing.
    pub passwords: PasswordHasher,
    /// Plans and the limiter.
    pub rate_limits: RateLimits,
    /// Readiness flags.
    pub readiness: Readiness,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// The live hub, window views and stats hook, once the engine attaches them.
    pub live: OnceLock<LiveServices>,
    /// The queue of the pipeline's `http` source, once the engine attaches it.
    pub ingest: OnceLock<IngestQueue>,
    /// Window history in ClickHouse, when configured.
    pub history: Option<crate::live::history::HistoryReader>,
    /// The model registry behind `/api/v1/ml/*`, once the engine attaches it.
    pub models: OnceLock<Arc<dyn crate::ml::ModelService>>,
}

/// The router state: one `Arc`, cheap to clone per request.
#[derive(Clone)]
pub struct AppState(pub Arc<Shared>);

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
