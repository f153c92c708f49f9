//! `GET /api/v1/analytics/anomalies/{metric}` and `POST /api/v1/analytics/forecast`:
//! the caller's tenant's anomalies (newest first, paginated) and the latest
//! forecast of each key, from the views the engine's anomaly and forecast
//! operators feed ([`pulse_live::AnalyticsViews`]).

use axum::Json;
use axum::extract::State;
use pulse_live::{AnomalyQuery, KeyForecast};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Principal, Scope};
use crate::error::AppError;
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::live::analytics::{MAX_TIME_MS, parse_step};
use crate::live::services;
use crate::state::AppState;

/// Most anomalies one page holds.
pub const MAX_PAGE_SIZE: usize = 100;
/// Anomalies per page by default.
const DEFAULT_PAGE_SIZE: usize = 20;

/// The `{metric}` path parameter.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MetricPath {
    /// The `metric` key field of the anomalies.
    pub metric: String,
}

/// `GET /api/v1/analytics/anomalies/{metric}` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AnomalyParams {
    /// Only anomalies at or after this time (epoch ms).
    #[param(minimum = 0, maximum = 253_402_300_799_999_u64)]
    pub start: Option<u64>,
    /// Only anomalies before this time (epoch ms).
    #[param(minimum = 0, maximum = 253_402_300_799_999_u64)]
    pub end: Option<u64>,
    /// Only anomalies scoring at least this (0 to 1).
    #[param(minimum = 0, maximum = 1)]
    pub min_score: Option<f64>,
    /// Only anomalies of this `source` key field (e.g. a host).
    pub source: Option<String>,
    /// Page number from 1 (default 1).
    #[param(format = Int64, minimum = 1, maximum = 4_294_967_295_u64)]
    pub page: Option<u32>,
    /// Anomalies per page, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u64>,
}

/// A page of anomalies, newest first.
#[derive(Serialize, ToSchema)]
pub struct AnomalyPageView {
    /// The metric asked for.
    pub metric: String,
    /// This page's number.
    pub page: u64,
    /// Anomalies per page.
    pub page_size: u64,
    /// Matching anomalies in all.
    pub total: u64,
    /// The anomalies: `operator`, `key` (`tenant`, `source`, `metric`, …), then the
    /// anomaly row's fields (`ts`, `value`, `score`, `is_anomaly`, `severity`, `detectors`,
    /// `explanation`, `expected`, `lower`, `upper`, `warming_up`).
    #[schema(value_type = Vec<Object>)]
    pub anomalies: Vec<Value>,
}

/// The tenant's anomalies of a metric (rows its anomaly operators flagged
/// `is_anomaly`), newest first, a page at a time (read scope).
///
/// The most recent anomalies of each tenant are kept (10,000 by default); older
/// ones are for a database sink.
#[utoipa::path(get, path = "/api/v1/analytics/anomalies/{metric}", tag = "live",
    params(MetricPath, AnomalyParams), security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = AnomalyPageView),
              (status = 422, description = "paging out of range, `min_score` outside [0, 1], `end` not after `start`"),
              (status = 503, description = "no pipeline with live views runs in this process")))]
pub async fn anomalies(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(metric): PathParams<String>,
    QueryParams(params): QueryParams<AnomalyParams>,
) -> Result<Json<AnomalyPageView>, AppError> {
    principal.require(Scope::Read)?;
    let live = services(&state)?;
    let page = params.page.unwrap_or(1) as usize;
    let page_size = params
        .page_size
        .map_or(DEFAULT_PAGE_SIZE, |n| n.min(u64::MAX >> 1) as usize);
    if page == 0 || !(1..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(AppError::invalid(format!(
            "page must be at least 1 and page_size between 1 and {MAX_PAGE_SIZE}"
        )));
    }
    if params.min_score.is_some_and(|score| !(0.0..=1.0).contains(&score)) {
        return Err(AppError::invalid("min_score must be a number from 0 to 1".to_owned()));
    }
    for (name, time) in [("start", params.start), ("end", params.end)] {
        if time.is_some_and(|t| t > MAX_TIME_MS) {
            return Err(AppError::invalid(format!(
                "{name} is after 9999-12-31 (epoch ms {MAX_TIME_MS})"
            )));
        }
    }
    if let (Some(start), Some(end)) = (params.start, params.end)
        && end <= start
    {
        return Err(AppError::invalid("end must be after start".to_owned()));
    }
    let query = AnomalyQuery {
        metric: metric.clone(),
        start: params.start,
        end: params.end,
        min_score: params.min_score,
        source: params.source,
        page,
        page_size,
    };
    let found = live.analytics.anomalies(&principal.tenant, &query);
    Ok(Json(AnomalyPageView {
        metric,
        page: page as u64,
        page_size: page_size as u64,
        total: found.total as u64,
        anomalies: found.anomalies,
    }))
}

/// The body of `POST /api/v1/analytics/forecast`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"metric_name": "cpu", "horizon": "30s", "interval": 95}))]
pub struct ForecastRequest {
    /// The `metric` key field of the forecasts.
    pub metric_name: String,
    /// Only the steps up to this long after each forecast was issued, e.g. `"15m"`
    /// (default: every step the operator forecasts).
    #[serde(default)]
    #[schema(
        nullable = true,
        max_length = 32,
        pattern = "^((0|[1-9][0-9]{0,8})(ms|s|m|h|d))*[1-9][0-9]{0,8}(ms|s|m|h|d)((0|[1-9][0-9]{0,8})(ms|s|m|h|d))*$"
    )]
    pub horizon: Option<String>,
    /// The prediction interval, 80 or 95 (percent; default 95).
    #[serde(default)]
    #[schema(schema_with = interval_schema)]
    pub interval: Option<u8>,
}

/// The schema of `interval`: 80, 95 or null.
fn interval_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .enum_values(Some([Some(80), Some(95), None]))
        .description(Some("The prediction interval in percent: 80 or 95 (default 95)."))
        .build()
}

/// The latest forecasts of a metric.
#[derive(Serialize, ToSchema)]
pub struct ForecastView {
    /// The metric asked for.
    pub metric_name: String,
    /// The interval of `lower`/`upper`, percent.
    pub interval: u8,
    /// One per key (and operator): `operator`, `key`, `issued_at`, and `points`
    /// (`ts`, `yhat`, `lower`, `upper`), in time order.
    #[schema(value_type = Vec<Object>)]
    pub forecasts: Vec<KeyForecast>,
}

/// The latest forecast of each key of the tenant's metric, with its 80 % or
/// 95 % prediction interval (read scope). Keys still warming up have none yet.
#[utoipa::path(post, path = "/api/v1/analytics/forecast", tag = "live", request_body = ForecastRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = ForecastView),
              (status = 422, description = "an interval other than 80 or 95, or a malformed horizon"),
              (status = 503, description = "no pipeline with live views runs in this process")))]
pub async fn forecast(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(request): JsonBody<ForecastRequest>,
) -> Result<Json<ForecastView>, AppError> {
    principal.require(Scope::Read)?;
    let live = services(&state)?;
    let interval = request.interval.unwrap_or(95);
    if interval != 80 && interval != 95 {
        return Err(AppError::invalid(format!(
            "interval {interval} is not offered: 80 or 95"
        )));
    }
    let horizon_ms = request.horizon.as_deref().map(parse_step).transpose()?;
    let forecasts = live
        .analytics
        .forecasts(&principal.tenant, &request.metric_name, horizon_ms, interval);
    Ok(Json(ForecastView {
        metric_name: request.metric_name,
        interval,
        forecasts,
    }))
}
