//! `POST /api/v1/analytics/query` and `GET /api/v1/stats`.
//!
//! A query reads the caller's tenant's retained windows (see
//! [`pulse_live::query`] for how windows select, group, re-bucket and combine):
//!
//! ```json
//! {"metric_name": "cpu", "start_time": "2024-11-23T06:00:00Z", "end_time": 1732345678000,
//!  "aggregation": "avg", "group_by": ["labels.region"], "step": "1m", "operator": "cpu_10s"}
//! ```
//!
//! Times are RFC 3339 or epoch milliseconds; windows whose start lies in
//! `[start_time, end_time)` count. Bad values answer 422 naming the field.

use axum::Json;
use axum::extract::State;
use pulse_core::DurationSpec;
use pulse_live::{Aggregation, SeriesQuery, SeriesResult};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::auth::{Principal, Scope};
use crate::error::AppError;
use crate::extract::JsonBody;
use crate::live::services;
use crate::state::AppState;

/// A point in time: epoch milliseconds or RFC 3339 text.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum TimeArg {
    /// Epoch milliseconds.
    Millis(u64),
    /// RFC 3339, e.g. `2024-11-23T06:00:00Z`.
    Text(String),
}

impl TimeArg {
    fn to_millis(&self, field: &str) -> Result<u64, AppError> {
        match self {
            TimeArg::Millis(ms) => Ok(*ms),
            TimeArg::Text(text) => {
                let parsed = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| {
                    AppError::invalid(format!(
                        "{field} {text:?} is not RFC 3339 ({e}) nor epoch milliseconds; e.g. \"2024-11-23T06:00:00Z\""
                    ))
                })?;
                u64::try_from(parsed.unix_timestamp_nanos() / 1_000_000)
                    .map_err(|_| AppError::invalid(format!("{field} is before 1970")))
            }
        }
    }
}

/// The body of `POST /api/v1/analytics/query`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// The `metric` key field to select.
    pub metric_name: String,
    /// Inclusive start.
    pub start_time: TimeArg,
    /// Exclusive end.
    pub end_time: TimeArg,
    /// `avg`, `min`, `max`, `sum`, `count` or a quantile such as `p95`.
    pub aggregation: String,
    /// Key fields to split series by.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Re-bucketing width such as `"1m"`.
    #[serde(default)]
    pub step: Option<String>,
    /// The window operator, when several carry the metric.
    #[serde(default)]
    pub operator: Option<String>,
    /// The pipeline, when operators of several pipelines share a name.
    #[serde(default)]
    pub pipeline: Option<String>,
}

impl QueryRequest {
    fn parse(self) -> Result<SeriesQuery, AppError> {
        let aggregation: Aggregation = self
            .aggregation
            .parse()
            .map_err(|e: pulse_live::QueryError| AppError::invalid(e.to_string()))?;
        let step_ms = match &self.step {
            None => None,
            Some(text) => {
                let step: DurationSpec = text.parse().map_err(|e| AppError::invalid(format!("step: {e}")))?;
                Some(step.as_millis())
            }
        };
        Ok(SeriesQuery {
            start_ms: self.start_time.to_millis("start_time")?,
            end_ms: self.end_time.to_millis("end_time")?,
            metric_name: self.metric_name,
            aggregation,
            group_by: self.group_by,
            step_ms,
            operator: self.operator,
            pipeline: self.pipeline,
        })
    }
}

/// `POST /api/v1/analytics/query`: series of the caller's tenant (read scope).
pub async fn query(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(request): JsonBody<QueryRequest>,
) -> Result<Json<SeriesResult>, AppError> {
    principal.require(Scope::Read)?;
    let live = services(&state)?;
    let query = request.parse()?;
    let views = live.views.clone();
    let tenant = principal.tenant;
    // A scan of up to max_rows_per_operator rows per operator: off the async workers.
    let result = tokio::task::spawn_blocking(move || views.query(&tenant, &query))
        .await
        .map_err(AppError::internal)?;
    result.map(Json).map_err(|e| AppError::invalid(e.to_string()))
}

/// `GET /api/v1/stats`: the engine's pipeline counters, the hub's and the views'.
pub async fn stats(State(state): State<AppState>, principal: Principal) -> Result<Json<Value>, AppError> {
    principal.require(Scope::Read)?;
    let live = services(&state)?;
    Ok(Json(json!({
        "pipeline": live.stats.stats(),
        "live": live.hub.stats(),
        "views": live.views.stats(),
    })))
}
