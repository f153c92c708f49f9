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
//! Times are epoch milliseconds or ISO-8601 text (RFC 3339 and the other forms
//! [`parse_instant`] takes); windows whose start lies in `[start_time,
//! end_time)` count, and a missing `end_time` means now. Without `operator`
//! the finest-grained operator that can answer does
//! ([`pulse_live::query::choose_operator`]), and the response names it. Bad
//! values answer 422 naming the field.
//!
//! With window history configured ([`super::history`]), a range that starts
//! before what memory retains is answered from ClickHouse's
//! `window_aggregates` up to each operator's oldest retained window and from
//! memory after it: the same response, one point per window either way.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use pulse_live::{Aggregation, SeriesQuery, SeriesResult};
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, SchemaType, Type};
use utoipa::openapi::{KnownFormat, RefOr};

use crate::auth::{Principal, Scope};
use crate::error::AppError;
use crate::extract::JsonBody;
use crate::live::history::HistoryError;
use crate::live::services;
use crate::state::AppState;
use crate::timestamp::parse_instant;

/// The latest time a query may name: 9999-12-31T23:59:59.999Z.
pub const MAX_TIME_MS: u64 = 253_402_300_799_999;

/// Longest `step` text.
const MAX_STEP_LEN: usize = 32;

/// What `step` must look like (the OpenAPI pattern; [`parse_step`] checks the same):
/// one or more `<number><unit>` parts, each number 0 or up to 9 digits without
/// a leading zero, units `ms`, `s`, `m`, `h`, `d`, at least one part non-zero.
pub const STEP_PATTERN: &str =
    "^((0|[1-9][0-9]{0,8})(ms|s|m|h|d))*[1-9][0-9]{0,8}(ms|s|m|h|d)((0|[1-9][0-9]{0,8})(ms|s|m|h|d))*$";

/// What `aggregation` must be (the OpenAPI pattern; [`Aggregation`] parses the same).
pub const AGGREGATION_PATTERN: &str = "^(avg|min|max|sum|count|p[0-9]{1,4})$";

/// A point in time: epoch milliseconds or text (see [`parse_instant`]).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum TimeArg {
    /// Epoch milliseconds (checked to be a whole number in range).
    Millis(Number),
    /// ISO-8601 / RFC 3339 text, or epoch milliseconds as digits.
    Text(String),
}

impl TimeArg {
    /// Epoch milliseconds; times before 1970 (as text) are clamped to 0, since no window starts earlier.
    fn to_millis(&self, field: &str) -> Result<u64, AppError> {
        let ms = match self {
            TimeArg::Millis(number) => crate::extract::whole_number(number).ok_or_else(|| {
                AppError::invalid(format!(
                    "{field} {number} is not epoch milliseconds: a whole number from 0 to {MAX_TIME_MS}, or ISO-8601 text"
                ))
            })?,
            TimeArg::Text(text) => {
                let ms = parse_instant(text).map_err(|e| AppError::invalid(format!("{field}: {e}")))?;
                u64::try_from(ms.max(0)).unwrap_or(u64::MAX)
            }
        };
        if ms > MAX_TIME_MS {
            return Err(AppError::invalid(format!(
                "{field} is after 9999-12-31 (epoch ms {MAX_TIME_MS})"
            )));
        }
        Ok(ms)
    }
}

/// The OpenAPI schema of a time field.
fn time_schema() -> Schema {
    let millis = ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::Integer))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(0))
        .maximum(Some(MAX_TIME_MS))
        .description(Some("epoch milliseconds"));
    let text = ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .description(Some(
            "RFC 3339 (`2024-11-23T06:00:00Z`); other ISO-8601 forms are accepted too: basic \
             (`20241123T060000Z`), without offset (UTC), a date alone (its midnight UTC), or epoch \
             milliseconds as digits",
        ));
    Schema::OneOf(OneOfBuilder::new().item(millis).item(text).build())
}

/// The schema of the optional `end_time`: a time or null.
fn optional_time_schema() -> Schema {
    let null = ObjectBuilder::new().schema_type(SchemaType::Type(Type::Null));
    match time_schema() {
        Schema::OneOf(mut one_of) => {
            one_of.items.push(RefOr::T(Schema::Object(null.build())));
            Schema::OneOf(one_of)
        }
        other => other,
    }
}

/// Checks `step` against [`STEP_PATTERN`] and returns its milliseconds.
pub fn parse_step(text: &str) -> Result<u64, AppError> {
    let invalid = || {
        AppError::invalid(format!(
            "step {text:?} is not a duration such as \"30s\", \"1m\" or \"1h30m\": parts of a number \
             (up to 9 digits, no leading zero) and a unit (ms, s, m, h, d), at most {MAX_STEP_LEN} characters, \
             not zero"
        ))
    };
    if text.is_empty() || text.len() > MAX_STEP_LEN {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let number = &rest[..digits];
        if digits == 0 || digits > 9 || (digits > 1 && number.starts_with('0')) {
            return Err(invalid());
        }
        rest = &rest[digits..];
        let (unit_ms, unit_len) = if rest.starts_with("ms") {
            (1, 2)
        } else {
            match rest.bytes().next() {
                Some(b's') => (1_000, 1),
                Some(b'm') => (60_000, 1),
                Some(b'h') => (3_600_000, 1),
                Some(b'd') => (86_400_000, 1),
                _ => return Err(invalid()),
            }
        };
        rest = &rest[unit_len..];
        let value: u64 = number.parse().map_err(|_| invalid())?;
        // 32 characters of at most 999,999,999 days each cannot overflow.
        total += value * unit_ms;
    }
    if total == 0 {
        return Err(invalid());
    }
    Ok(total)
}

/// The body of `POST /api/v1/analytics/query`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(
    example = json!({"metric_name": "cpu", "start_time": "2024-11-23T06:00:00Z", "aggregation": "avg"})
)]
pub struct QueryRequest {
    /// The `metric` key field to select.
    pub metric_name: String,
    /// Inclusive start: windows starting at or after it count.
    #[schema(schema_with = time_schema)]
    pub start_time: TimeArg,
    /// Exclusive end; omitted or null means now. Must be after `start_time`.
    #[serde(default)]
    #[schema(schema_with = optional_time_schema)]
    pub end_time: Option<TimeArg>,
    /// `avg`, `min`, `max`, `sum`, `count` or a quantile such as `p95`; the
    /// operator must carry it.
    #[schema(pattern = "^(avg|min|max|sum|count|p[0-9]{1,4})$")]
    pub aggregation: String,
    /// Key fields to split series by (at most 16).
    #[serde(default)]
    #[schema(max_items = 16)]
    pub group_by: Vec<String>,
    /// Re-bucketing width such as `"1m"` (parts `<number><unit>`, units ms, s, m, h, d; not zero).
    #[serde(default)]
    #[schema(
        nullable = true,
        max_length = 32,
        pattern = "^((0|[1-9][0-9]{0,8})(ms|s|m|h|d))*[1-9][0-9]{0,8}(ms|s|m|h|d)((0|[1-9][0-9]{0,8})(ms|s|m|h|d))*$"
    )]
    pub step: Option<String>,
    /// The window operator to read. Omitted: the finest-grained operator that
    /// carries the metric, the aggregate and the `group_by` fields (shortest
    /// windows, ties by operator name); the response names it.
    #[serde(default)]
    #[schema(nullable = true)]
    pub operator: Option<String>,
    /// The pipeline, when operators of several pipelines share a name.
    #[serde(default)]
    #[schema(nullable = true)]
    pub pipeline: Option<String>,
}

impl QueryRequest {
    fn parse(self, now_ms: u64) -> Result<SeriesQuery, AppError> {
        let aggregation: Aggregation = self
            .aggregation
            .parse()
            .map_err(|e: pulse_live::QueryError| AppError::invalid(e.to_string()))?;
        let step_ms = self.step.as_deref().map(parse_step).transpose()?;
        let end_ms = match &self.end_time {
            Some(end) => end.to_millis("end_time")?,
            None => now_ms,
        };
        Ok(SeriesQuery {
            start_ms: self.start_time.to_millis("start_time")?,
            end_ms,
            metric_name: self.metric_name,
            aggregation,
            group_by: self.group_by,
            step_ms,
            operator: self.operator,
            pipeline: self.pipeline,
        })
    }
}

/// One point of a series (the OpenAPI shape of [`pulse_live::query::Point`]).
#[derive(ToSchema)]
#[schema(as = SeriesPoint)]
pub struct PointSchema {
    /// The window start (or bucket start), epoch ms.
    pub timestamp: u64,
    /// The combined value; null when no window had a defined one.
    #[schema(value_type = Option<f64>)]
    pub value: Value,
    /// How many windows it combines.
    pub windows: u64,
}

/// The points of one group (the OpenAPI shape of [`pulse_live::query::Series`]).
#[derive(ToSchema)]
#[schema(as = Series)]
pub struct SeriesSchema {
    /// The group's key values (empty without `group_by`).
    #[schema(value_type = Object)]
    pub group: Value,
    /// Points in time order.
    pub points: Vec<PointSchema>,
}

/// The answer of a query (the OpenAPI shape of [`SeriesResult`]).
#[derive(ToSchema)]
#[schema(as = QueryResult)]
pub struct QueryResultSchema {
    /// The metric queried.
    pub metric_name: String,
    /// The aggregation applied.
    pub aggregation: String,
    /// The pipeline of the operator that answered (null when no window matched).
    pub pipeline: Option<String>,
    /// The operator that answered: the one named, or the default one (null when no window matched).
    pub operator: Option<String>,
    /// The bucket width in ms, if re-bucketed.
    pub step_ms: Option<u64>,
    /// Whether some point merged quantiles (or unweighted averages) of several windows.
    pub approximate: bool,
    /// One series per distinct `group_by` value combination.
    pub series: Vec<SeriesSchema>,
}

/// What `GET /api/v1/stats` answers.
#[derive(Serialize, ToSchema)]
pub struct Stats {
    /// The engine's counters: `events_in_total`, `windows_out_total`, `late_events_total`,
    /// `dead_letters_total`, `sink_errors_total`, `counters` (every counter by component).
    #[schema(value_type = Object)]
    pub pipeline: Value,
    /// The WebSocket hub: `connections`, `subscription_groups`, `rows_published_total`,
    /// `messages_enqueued_total`, `messages_sent_total`, `dropped_total`.
    #[schema(value_type = Object)]
    pub live: pulse_live::HubStats,
    /// Per window operator: `pipeline`, `operator`, `rows` retained, `recorded_total`, `evicted_total`.
    #[schema(value_type = Vec<Object>)]
    pub views: Vec<pulse_live::ViewStats>,
}

/// Series of the caller's tenant from the retained windows (read scope),
/// and from the window history in ClickHouse (when configured) for a range
/// older than the retention.
///
/// Without `operator` the finest-grained window operator that carries the
/// metric, the aggregate and the `group_by` fields answers (shortest windows,
/// ties by operator name) and `operator` in the response names it; operators
/// that still tie (one name and window length in several pipelines) are a 422
/// listing them. A missing `end_time` means now.
#[utoipa::path(post, path = "/api/v1/analytics/query", tag = "live", request_body = QueryRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = QueryResultSchema),
              (status = 422, description = "a bad field, `end_time` not after `start_time`, an aggregate or \
                group field the windows lack, or several operators no rule can choose between (listed)"),
              (status = 503, description = "no pipeline with window views runs in this process, or \
                the window history (ClickHouse) a range older than the retention needs cannot be read")))]
pub async fn query(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(request): JsonBody<QueryRequest>,
) -> Result<Json<SeriesResult>, AppError> {
    principal.require(Scope::Read)?;
    let live = services(&state)?;
    let now_ms = u64::try_from(crate::store::now_millis()).unwrap_or_default();
    let query = request.parse(now_ms)?;
    query.validate().map_err(|e| AppError::invalid(e.to_string()))?;
    let views = live.views.clone();
    let tenant = principal.tenant;
    // Older than what memory holds: the windows stored in ClickHouse fill in.
    let history =
        match &state.history {
            Some(reader) if !views.covers_since(query.start_ms) => reader
                .windows(tenant.as_str(), &query)
                .await
                .map_err(|error| match error {
                    HistoryError::TooManyRows(_) => AppError::invalid(error.to_string()),
                    HistoryError::Unavailable(_) => AppError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "history_unavailable",
                        error.to_string(),
                    ),
                })?,
            _ => Vec::new(),
        };
    // A scan of up to max_rows_per_operator rows per operator: off the async workers.
    let result = tokio::task::spawn_blocking(move || views.query_with_history(&tenant, &query, &history))
        .await
        .map_err(AppError::internal)?;
    result.map(Json).map_err(|e| AppError::invalid(e.to_string()))
}

/// The engine's pipeline counters, the WebSocket hub's and the views' (read scope).
#[utoipa::path(get, path = "/api/v1/stats", tag = "live", security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Stats),
              (status = 503, description = "no pipeline with window views runs in this process")))]
pub async fn stats(State(state): State<AppState>, principal: Principal) -> Result<Json<Stats>, AppError> {
    principal.require(Scope::Read)?;
    Ok(Json(services(&state)?.stats_snapshot()))
}
