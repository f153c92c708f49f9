//! Live results over HTTP: `GET /ws` (WebSocket subscriptions to closed
//! windows), `POST /api/v1/analytics/query` (series from retained windows, and
//! from ClickHouse for older ranges: [`history`]) and
//! `GET /api/v1/stats` (pipeline and component counters), and the incident,
//! RCA and resource APIs ([`rca_api`]).
//!
//! The engine owns the [`LiveHub`] and [`WindowViews`] (it attaches them to the
//! dataflow's `websocket` sinks) and hands them to the gateway with
//! [`Gateway::attach_live`](crate::Gateway::attach_live); until it does, these
//! routes answer 503 `live_unavailable`.

pub mod analytics;
pub mod detections;
pub mod history;
pub mod incidents;
pub mod rca_api;
pub mod resources;
pub mod ws;

use std::sync::Arc;

use axum::http::StatusCode;
use pulse_live::{AnalyticsViews, LiveHub, WindowViews};
use serde_json::Value;

use crate::error::AppError;
use crate::state::AppState;

/// Anomalies kept per tenant for `GET /api/v1/analytics/anomalies/{metric}`.
pub const DEFAULT_ANOMALIES_PER_TENANT: usize = 10_000;

/// What `GET /api/v1/stats` reports about the pipeline, supplied by the engine.
pub trait StatsSource: Send + Sync + 'static {
    /// Pipeline and component counters, as a JSON object.
    fn stats(&self) -> Value;
}

impl<F: Fn() -> Value + Send + Sync + 'static> StatsSource for F {
    fn stats(&self) -> Value {
        self()
    }
}

/// The live side the engine hands to the gateway.
#[derive(Clone)]
pub struct LiveServices {
    /// Fan-out to WebSocket clients.
    pub hub: LiveHub,
    /// Retained windows for the query API.
    pub views: WindowViews,
    /// Pipeline counters for `/api/v1/stats`.
    pub stats: Arc<dyn StatsSource>,
    /// Retained anomalies and latest forecasts for their APIs.
    pub analytics: AnalyticsViews,
    /// Current incidents of `incidents` operators, for the incident and RCA APIs.
    pub incidents: incidents::IncidentViews,
    /// The clusters' resources those operators read, for the resource API.
    pub resources: resources::ResourceViews,
}

impl LiveServices {
    /// Bundles the hub, the views and the stats hook (with empty analytics
    /// views; see [`LiveServices::with_analytics`]).
    pub fn new(hub: LiveHub, views: WindowViews, stats: impl StatsSource) -> Self {
        Self {
            hub,
            views,
            stats: Arc::new(stats),
            analytics: AnalyticsViews::new(DEFAULT_ANOMALIES_PER_TENANT),
            incidents: incidents::IncidentViews::default(),
            resources: resources::ResourceViews::default(),
        }
    }

    /// The same, answering the incident, RCA and resource APIs from these views.
    pub fn with_incidents(mut self, incidents: incidents::IncidentViews, resources: resources::ResourceViews) -> Self {
        self.incidents = incidents;
        self.resources = resources;
        self
    }

    /// The same, answering the anomaly and forecast APIs from `analytics`.
    pub fn with_analytics(mut self, analytics: AnalyticsViews) -> Self {
        self.analytics = analytics;
        self
    }
}

impl LiveServices {
    /// What `GET /api/v1/stats` answers and `stats` messages on `/ws` carry:
    /// the engine's pipeline counters, the hub's and the views'.
    pub fn stats_snapshot(&self) -> analytics::Stats {
        analytics::Stats {
            pipeline: self.stats.stats(),
            live: self.hub.stats(),
            views: self.views.stats(),
        }
    }
}

/// The attached live services, or 503 when the engine has attached none.
pub(crate) fn services(state: &AppState) -> Result<&LiveServices, AppError> {
    state.live.get().ok_or_else(|| {
        AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "live_unavailable",
            "live results are not available: no pipeline with window views is running in this process",
        )
    })
}
