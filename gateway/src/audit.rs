//! `GET /api/v1/audit`: the tenant's log of KV changes (admin scope). The store
//! appends a record in the same transaction as every KV write.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Principal, Scope};
use crate::error::AppError;
use crate::extract::QueryParams;
use crate::state::AppState;
use crate::store::AuditRecord;
use crate::timestamp::rfc3339;

/// Largest page.
const MAX_PAGE_SIZE: u64 = 100;

/// `GET /audit` parameters.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Page number from 1 (default 1).
    #[param(format = Int64, minimum = 1, maximum = 4_294_967_295_u64)]
    pub page: Option<u32>,
    /// Records per page, 1–100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u64>,
}

/// One audit record.
#[derive(Serialize, ToSchema)]
pub struct AuditEntry {
    /// Position in the tenant's log, from 1.
    pub seq: u64,
    /// The tenant.
    pub tenant_id: String,
    /// Who made the change.
    pub user: String,
    /// `create`, `update` or `delete`.
    pub op: String,
    /// The key.
    pub key: String,
    /// The version written or removed.
    pub version: u64,
    /// RFC 3339.
    pub time: String,
}

/// A page of the audit log, oldest first.
#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    /// Records of this page.
    pub items: Vec<AuditEntry>,
    /// This page's number.
    pub page: u64,
    /// Records per page.
    pub page_size: u64,
    /// Records in all.
    pub total: u64,
}

impl From<AuditRecord> for AuditEntry {
    fn from(record: AuditRecord) -> Self {
        Self {
            seq: record.seq,
            tenant_id: record.tenant_id,
            user: record.user,
            op: record.op,
            key: record.key,
            version: record.version,
            time: rfc3339(record.at),
        }
    }
}

/// The tenant's audit log.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditParams), security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = AuditPage), (status = 403, description = "needs admin")))]
pub async fn audit_log(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(params): QueryParams<AuditParams>,
) -> Result<Json<AuditPage>, AppError> {
    principal.require(Scope::Admin)?;
    let page = u64::from(params.page.unwrap_or(1));
    let page_size = params.page_size.unwrap_or(50);
    if page == 0 || !(1..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(AppError::bad_request(
            "invalid_query",
            format!("page must be at least 1 and page_size between 1 and {MAX_PAGE_SIZE}"),
        ));
    }
    let offset = (page - 1).saturating_mul(page_size);
    let (records, total) = state.store.audit_page(&principal.tenant, offset, page_size).await?;
    Ok(Json(AuditPage {
        items: records.into_iter().map(AuditEntry::from).collect(),
        page,
        page_size,
        total,
    }))
}
