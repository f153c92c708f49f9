//! `GET /api/v1/incidents`, `GET /api/v1/incidents/{id}`, `GET /api/v1/rca`,
//! `GET /api/v1/resources` and `GET /api/v1/resources/{kind}/{namespace}/{name}`:
//! the caller's tenant's incidents, their ranked causes and its clusters'
//! resources, from the views the engine keeps from its `incidents` operators
//! ([`IncidentViews`](super::incidents::IncidentViews),
//! [`ResourceViews`](super::resources::ResourceViews)). Read scope; another
//! tenant's incidents and resources are never found (404).
//!
//! Cluster-wide resources such as Nodes have the namespace `""`: in a path
//! it is written `_` (`/api/v1/resources/Node/_/node-3`), in a query either
//! `namespace=_` or `namespace=`.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Principal, Scope};
use crate::error::AppError;
use crate::extract::{PathParams, QueryParams};
use crate::live::analytics::MAX_TIME_MS;
use crate::live::incidents::{IncidentQuery, IncidentRecord, ResourceName};
use crate::live::resources::{ResourceDetail, ResourceSummary};
use crate::live::services;
use crate::state::AppState;

/// Most items one page holds.
pub const MAX_PAGE_SIZE: u64 = 500;
/// Items per page by default.
const DEFAULT_PAGE_SIZE: u64 = 50;

/// Which incidents a list shows.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IncidentStatus {
    /// Still open.
    Open,
    /// Closed after a quiet period.
    Closed,
    /// Both (the default).
    All,
}

/// `GET /api/v1/incidents` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IncidentParams {
    /// `open`, `closed` or `all` (default).
    #[param(inline)]
    pub status: Option<IncidentStatus>,
    /// Only incidents opened at or after this time (epoch ms).
    #[param(minimum = 0, maximum = 253_402_300_799_999_u64)]
    pub start: Option<u64>,
    /// Only incidents opened before this time (epoch ms).
    #[param(minimum = 0, maximum = 253_402_300_799_999_u64)]
    pub end: Option<u64>,
    /// Page number from 1 (default 1).
    #[param(format = Int64, minimum = 1, maximum = 4_294_967_295_u64)]
    pub page: Option<u32>,
    /// Incidents per page, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub page_size: Option<u64>,
}

/// A page of incidents, newest opened first.
#[derive(Serialize, ToSchema)]
pub struct IncidentPageView {
    /// This page's number.
    pub page: u64,
    /// Incidents per page.
    pub page_size: u64,
    /// Matching incidents in all.
    pub total: u64,
    /// The incidents without their causes (`cause_count` says how many):
    /// `tenant`, `incident_id`, `status`, `opened_at`, `closed_at`, `symptom`,
    /// `symptom_reason`, `top_cause`, `top_confidence`, `revision`.
    #[schema(value_type = Vec<Object>)]
    pub incidents: Vec<Value>,
}

/// Checks paging; the (page, page size).
fn paging(page: Option<u32>, page_size: Option<u64>) -> Result<(u64, u64), AppError> {
    let page = u64::from(page.unwrap_or(1));
    let page_size = page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    if page == 0 || !(1..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(AppError::invalid(format!(
            "page must be at least 1 and page_size between 1 and {MAX_PAGE_SIZE}"
        )));
    }
    Ok((page, page_size))
}

fn page_of<T>(items: Vec<T>, page: u64, page_size: u64) -> Vec<T> {
    let skip = (page - 1).saturating_mul(page_size);
    items
        .into_iter()
        .skip(usize::try_from(skip).unwrap_or(usize::MAX))
        .take(page_size as usize)
        .collect()
}

/// The tenant's incidents, newest opened first, a page at a time (read scope).
///
/// The gateway keeps the newest 5,000 incidents of each tenant; older ones are
/// for the file and database sinks.
#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents", params(IncidentParams),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = IncidentPageView),
              (status = 422, description = "paging out of range, a time after 9999"),
              (status = 503, description = "no pipeline with live views runs in this process")))]
pub async fn list_incidents(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(params): QueryParams<IncidentParams>,
) -> Result<Json<IncidentPageView>, AppError> {
    principal.require(Scope::Read)?;
    let live = services(&state)?;
    let (page, page_size) = paging(params.page, params.page_size)?;
    for (name, time) in [("start", params.start), ("end", params.end)] {
        if time.is_some_and(|t| t > MAX_TIME_MS) {
            return Err(AppError::invalid(format!(
                "{name} is after 9999-12-31 (epoch ms {MAX_TIME_MS})"
            )));
        }
    }
    // `end` at or before `start` is an empty range: no incident, not an error.
    let query = IncidentQuery {
        open: match params.status.unwrap_or(IncidentStatus::All) {
            IncidentStatus::Open => Some(true),
            IncidentStatus::Closed => Some(false),
            IncidentStatus::All => None,
        },
        start: params.start,
        end: params.end,
    };
    let found = live.incidents.list(&principal.tenant, &query);
    let total = found.len() as u64;
    let incidents = page_of(found, page, page_size).iter().map(|r| r.summary()).collect();
    Ok(Json(IncidentPageView {
        page,
        page_size,
        total,
        incidents,
    }))
}

/// The `{id}` path parameter.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct IncidentPath {
    /// The incident's id.
    pub id: String,
}

/// One incident of the tenant as it stands now, with its ranked causes (read scope).
#[utoipa::path(get, path = "/api/v1/incidents/{id}", tag = "incidents", params(IncidentPath),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = IncidentRecord),
              (status = 404, description = "no such incident of this tenant"),
              (status = 503, description = "no pipeline with live views runs in this process")))]
pub async fn get_incident(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
) -> Result<Json<IncidentRecord>, AppError> {
    principal.require(Scope::Read)?;
    let live = services(&state)?;
    live.incidents
        .get(&principal.tenant, &id)
        .map(|record| Json(record.as_ref().clone()))
        .ok_or_else(|| AppError::not_found(format!("no incident {id:?}")))
}

/// `GET /api/v1/rca` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RcaParams {
    /// The incident whose causes to show.
    pub incident_id: String,
}

/// An incident's root-cause analysis.
#[derive(Serialize, ToSchema)]
pub struct RcaView {
    /// The incident.
    pub incident_id: String,
    /// `open` or `closed`: an open incident's causes may still change.
    pub status: String,
    /// The resource whose error opened it.
    pub symptom: ResourceName,
    /// The opening error's reason.
    pub symptom_reason: String,
    /// Event time of the opening error, epoch ms.
    pub opened_at: u64,
    /// The candidate causes, best first (at most 10): `rank` (from 1),
    /// `resource` (`kind`, `namespace`, `name`), `event_ts`, `reason`,
    /// `confidence` in [0, 1] and `explanation`.
    #[schema(value_type = Vec<Object>)]
    pub causes: Vec<Value>,
    /// Versions of the incident published so far.
    pub revision: u64,
}

/// The ranked root causes of one of the tenant's incidents, with their
/// confidence and explanation (read scope).
#[utoipa::path(get, path = "/api/v1/rca", tag = "incidents", params(RcaParams),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = RcaView),
              (status = 404, description = "no such incident of this tenant"),
              (status = 503, description = "no pipeline with live views runs in this process")))]
pub async fn rca(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(params): QueryParams<RcaParams>,
) -> Result<Json<RcaView>, AppError> {
    principal.require(Scope::Read)?;
    let live = services(&state)?;
    let record = live
        .incidents
        .get(&principal.tenant, &params.incident_id)
        .ok_or_else(|| AppError::not_found(format!("no incident {:?}", params.incident_id)))?;
    let causes = record
        .causes
        .iter()
        .enumerate()
        .map(|(rank, cause)| {
            let mut cause = cause.clone();
            if let Value::Object(fields) = &mut cause {
                fields.insert("rank".into(), (rank + 1).into());
            }
            cause
        })
        .collect();
    Ok(Json(RcaView {
        incident_id: record.incident_id.clone(),
        status: record.status.clone(),
        symptom: record.symptom.clone(),
        symptom_reason: record.symptom_reason.clone(),
        opened_at: record.opened_at,
        causes,
        revision: record.revision,
    }))
}

/// `GET /api/v1/resources` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ResourceParams {
    /// Only resources of this kind (`Pod`, `Service`, `Node`, ...).
    pub kind: Option<String>,
    /// Only resources of this namespace (`_` or empty: cluster-wide resources such as Nodes).
    pub namespace: Option<String>,
    /// Page number from 1 (default 1).
    #[param(format = Int64, minimum = 1, maximum = 4_294_967_295_u64)]
    pub page: Option<u32>,
    /// Resources per page, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub page_size: Option<u64>,
}

/// A page of resources, by kind, namespace and name.
#[derive(Serialize, ToSchema)]
pub struct ResourcePageView {
    /// This page's number.
    pub page: u64,
    /// Resources per page.
    pub page_size: u64,
    /// Matching resources in all.
    pub total: u64,
    /// The resources.
    pub resources: Vec<ResourceSummary>,
}

/// `_` (a path's or query's spelling of the empty namespace) as `""`.
fn namespace_of(segment: &str) -> &str {
    if segment == "_" { "" } else { segment }
}

/// The resources of the tenant's clusters, as the topology, k8s events and
/// logs an incidents operator reads describe them (read scope).
#[utoipa::path(get, path = "/api/v1/resources", tag = "incidents", params(ResourceParams),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = ResourcePageView),
              (status = 422, description = "paging out of range"),
              (status = 503, description = "no pipeline with live views runs in this process")))]
pub async fn list_resources(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(params): QueryParams<ResourceParams>,
) -> Result<Json<ResourcePageView>, AppError> {
    principal.require(Scope::Read)?;
    let live = services(&state)?;
    let (page, page_size) = paging(params.page, params.page_size)?;
    let found = live.resources.list(
        &principal.tenant,
        params.kind.as_deref(),
        params.namespace.as_deref().map(namespace_of),
    );
    let total = found.len() as u64;
    Ok(Json(ResourcePageView {
        page,
        page_size,
        total,
        resources: page_of(found, page, page_size),
    }))
}

/// The `{kind}/{namespace}/{name}` path parameters.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ResourcePath {
    /// `Pod`, `Service`, `Node`, ...
    pub kind: String,
    /// The namespace; `_` for cluster-wide resources such as Nodes.
    pub namespace: String,
    /// The name.
    pub name: String,
}

/// One resource of the tenant's clusters: its neighbours (edges both ways),
/// its recent k8s events and log lines, and its latest metrics (read scope).
#[utoipa::path(get, path = "/api/v1/resources/{kind}/{namespace}/{name}", tag = "incidents",
    params(ResourcePath), security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = ResourceDetail),
              (status = 404, description = "no such resource of this tenant"),
              (status = 503, description = "no pipeline with live views runs in this process")))]
pub async fn get_resource(
    State(state): State<AppState>,
    principal: Principal,
    PathParams((kind, namespace, name)): PathParams<(String, String, String)>,
) -> Result<Json<ResourceDetail>, AppError> {
    principal.require(Scope::Read)?;
    let live = services(&state)?;
    live.resources
        .get(&principal.tenant, &kind, namespace_of(&namespace), &name)
        .map(Json)
        .ok_or_else(|| AppError::not_found(format!("no resource {kind}/{namespace}/{name}")))
}
