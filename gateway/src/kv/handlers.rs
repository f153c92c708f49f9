//! `/api/v1/kv` handlers. Reads need the `read` scope, writes `write`; every
//! call is confined to the caller's tenant by passing `principal.tenant` to the store.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::value::RawValue;

use super::{
    BatchItemResult, BatchOpKind, BatchOperation, BatchRequest, BatchResponse, Count, CreateEntry, EntryInfo,
    EntryPage, EntryView, Exists, KeyPath, ListParams, ReplaceEntry, TtlView, remaining_secs, validate_key,
    validate_write,
};
use crate::auth::{Principal, Scope};
use crate::error::AppError;
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::state::AppState;
use crate::store::{Actor, FieldChange, KvApplied, KvOp, KvOutcome, Millis, now_millis};

/// `GET`, `PUT` and `DELETE` of the key named `batch`, whose path `kv/batch`
/// is also the batch endpoint's (`POST`): the router cannot tell them apart by
/// path, so this path answers the other methods for that key.
pub fn batch_named_key() -> axum::routing::MethodRouter<AppState> {
    fn key() -> PathParams<String> {
        PathParams("batch".to_owned())
    }
    axum::routing::get(|state: State<AppState>, principal: Principal| get(state, principal, key()))
        .put(
            |state: State<AppState>, principal: Principal, body: JsonBody<ReplaceEntry>| {
                replace(state, principal, key(), body)
            },
        )
        .delete(|state: State<AppState>, principal: Principal| delete(state, principal, key()))
}

/// Largest page.
const MAX_PAGE_SIZE: u64 = 100;
/// Page size when none is asked for.
const DEFAULT_PAGE_SIZE: u64 = 20;

fn count_op(state: &AppState, op: &'static str) {
    metrics::counter!("pulse_kv_operations_total", "op" => op, "backend" => state.store.backend()).increment(1);
}

fn actor(principal: &Principal) -> Actor {
    Actor {
        tenant: principal.tenant.clone(),
        user: principal.user.clone(),
    }
}

async fn apply_one(state: &AppState, principal: &Principal, op: KvOp, now: Millis) -> Result<KvOutcome, AppError> {
    let applied = state.store.kv_apply(&actor(principal), vec![op], now).await?;
    applied
        .outcomes
        .into_iter()
        .next()
        .ok_or_else(|| AppError::internal("the store returned no outcome"))
}

/// Creates a key; 409 if it exists.
#[utoipa::path(post, path = "/api/v1/kv", tag = "kv", request_body = CreateEntry, security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = EntryInfo), (status = 409, description = "the key exists"),
              (status = 413, description = "key or value too large"), (status = 422, description = "invalid key, ttl or tags")))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(request): JsonBody<CreateEntry>,
) -> Result<(StatusCode, Json<EntryInfo>), AppError> {
    principal.require(Scope::Write)?;
    let write = validate_write(
        &state.config.limits,
        request.key,
        &request.value,
        FieldChange::Set(request.ttl),
        FieldChange::Set(request.tags),
    )?;
    let key = write.key.clone();
    let outcome = apply_one(&state, &principal, KvOp::Create(write), now_millis()).await?;
    count_op(&state, "create");
    match outcome {
        KvOutcome::Created(metadata) => Ok((
            StatusCode::CREATED,
            Json(EntryInfo {
                key,
                metadata: metadata.into(),
            }),
        )),
        KvOutcome::Exists => Err(AppError::new(
            StatusCode::CONFLICT,
            "key_exists",
            format!("key {key:?} already exists"),
        )),
        other => Err(AppError::internal(format!("unexpected create outcome {other:?}"))),
    }
}

/// Reads a key's value and metadata.
#[utoipa::path(get, path = "/api/v1/kv/{key}", tag = "kv", security(("bearer" = []), ("api_key" = [])),
    params(KeyPath), responses((status = 200, body = EntryView), (status = 404, description = "no such key"),
              (status = 413, description = "the key is over `limits.max_key_chars`"), (status = 422, description = "the key has control characters or ends in `:metadata`")))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(key): PathParams<String>,
) -> Result<Json<EntryView>, AppError> {
    principal.require(Scope::Read)?;
    validate_key(&state.config.limits, &key)?;
    count_op(&state, "get");
    let entry = state
        .store
        .kv_get(&principal.tenant, &key, now_millis())
        .await?
        .ok_or_else(|| AppError::not_found(format!("no key {key:?}")))?;
    let value = RawValue::from_string(entry.value).map_err(AppError::internal)?;
    Ok(Json(EntryView {
        key: entry.key,
        value,
        metadata: entry.metadata.into(),
    }))
}

/// Replaces a key's value, and its TTL and tags when the body gives them
/// (omitted, they are kept); the version goes up by one.
#[utoipa::path(put, path = "/api/v1/kv/{key}", tag = "kv", request_body = ReplaceEntry, security(("bearer" = []), ("api_key" = [])),
    params(KeyPath), responses((status = 200, body = EntryInfo), (status = 404, description = "no such key"),
              (status = 413, description = "the key or the value is too large"),
              (status = 422, description = "an invalid key, ttl or tags")))]
pub async fn replace(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(key): PathParams<String>,
    JsonBody(request): JsonBody<ReplaceEntry>,
) -> Result<Json<EntryInfo>, AppError> {
    principal.require(Scope::Write)?;
    let write = validate_write(&state.config.limits, key, &request.value, request.ttl, request.tags)?;
    let key = write.key.clone();
    let outcome = apply_one(&state, &principal, KvOp::Replace(write), now_millis()).await?;
    count_op(&state, "update");
    match outcome {
        KvOutcome::Updated(metadata) => Ok(Json(EntryInfo {
            key,
            metadata: metadata.into(),
        })),
        KvOutcome::NotFound => Err(AppError::not_found(format!("no key {key:?}"))),
        other => Err(AppError::internal(format!("unexpected update outcome {other:?}"))),
    }
}

/// Deletes a key.
#[utoipa::path(delete, path = "/api/v1/kv/{key}", tag = "kv", security(("bearer" = []), ("api_key" = [])),
    params(KeyPath), responses((status = 204), (status = 404, description = "no such key"),
              (status = 413, description = "the key is over `limits.max_key_chars`"), (status = 422, description = "the key has control characters or ends in `:metadata`")))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(key): PathParams<String>,
) -> Result<StatusCode, AppError> {
    principal.require(Scope::Write)?;
    validate_key(&state.config.limits, &key)?;
    count_op(&state, "delete");
    match apply_one(&state, &principal, KvOp::Delete { key: key.clone() }, now_millis()).await? {
        KvOutcome::Deleted { .. } => Ok(StatusCode::NO_CONTENT),
        _ => Err(AppError::not_found(format!("no key {key:?}"))),
    }
}

/// Lists keys in key order, a page at a time, optionally by tag.
#[utoipa::path(get, path = "/api/v1/kv", tag = "kv", params(ListParams), security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = EntryPage), (status = 400, description = "bad paging or tag filter")))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<EntryPage>, AppError> {
    principal.require(Scope::Read)?;
    let page = u64::from(params.page.unwrap_or(1));
    let page_size = params.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    if page == 0 || !(1..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(AppError::bad_request(
            "invalid_query",
            format!("page must be at least 1 and page_size between 1 and {MAX_PAGE_SIZE}"),
        ));
    }
    let tag = match params.tag_filter.as_deref() {
        Some(filter) => Some(
            filter
                .split_once(':')
                .ok_or_else(|| AppError::bad_request("invalid_query", "tag_filter must look like name:value"))?,
        ),
        None => None,
    };
    count_op(&state, "list");
    let offset = (page - 1).saturating_mul(page_size);
    let found = state
        .store
        .kv_list(&principal.tenant, tag, offset, page_size, now_millis())
        .await?;
    Ok(Json(EntryPage {
        items: found
            .items
            .into_iter()
            .map(|item| EntryInfo {
                key: item.key,
                metadata: item.metadata.into(),
            })
            .collect(),
        page,
        page_size,
        total: found.total,
    }))
}

/// Whether a live key exists.
#[utoipa::path(get, path = "/api/v1/kv/{key}/exists", tag = "kv", security(("bearer" = []), ("api_key" = [])),
    params(KeyPath), responses((status = 200, body = Exists),
              (status = 413, description = "the key is over `limits.max_key_chars`"), (status = 422, description = "the key has control characters or ends in `:metadata`")))]
pub async fn exists(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(key): PathParams<String>,
) -> Result<Json<Exists>, AppError> {
    principal.require(Scope::Read)?;
    validate_key(&state.config.limits, &key)?;
    count_op(&state, "exists");
    let exists = state
        .store
        .kv_metadata(&principal.tenant, &key, now_millis())
        .await?
        .is_some();
    Ok(Json(Exists { key, exists }))
}

/// Seconds until a key expires (-1: never).
#[utoipa::path(get, path = "/api/v1/kv/{key}/ttl", tag = "kv", security(("bearer" = []), ("api_key" = [])),
    params(KeyPath), responses((status = 200, body = TtlView), (status = 404, description = "no such key"),
              (status = 413, description = "the key is over `limits.max_key_chars`"), (status = 422, description = "the key has control characters or ends in `:metadata`")))]
pub async fn ttl(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(key): PathParams<String>,
) -> Result<Json<TtlView>, AppError> {
    principal.require(Scope::Read)?;
    validate_key(&state.config.limits, &key)?;
    count_op(&state, "ttl");
    let now = now_millis();
    let metadata = state
        .store
        .kv_metadata(&principal.tenant, &key, now)
        .await?
        .ok_or_else(|| AppError::not_found(format!("no key {key:?}")))?;
    Ok(Json(TtlView {
        key,
        ttl: remaining_secs(metadata.expires_at, now),
    }))
}

/// How many live keys the tenant has.
#[utoipa::path(get, path = "/api/v1/kv/stats/count", tag = "kv", security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Count)))]
pub async fn count(State(state): State<AppState>, principal: Principal) -> Result<Json<Count>, AppError> {
    principal.require(Scope::Read)?;
    count_op(&state, "count");
    let count = state.store.kv_count(&principal.tenant, now_millis()).await?;
    Ok(Json(Count { count }))
}

/// Applies up to 1000 sets and deletes in order, all or nothing.
#[utoipa::path(post, path = "/api/v1/kv/batch", tag = "kv", request_body = BatchRequest, security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = BatchResponse),
              (status = 409, description = "rejected: an item failed (details.results says which); nothing applied"),
              (status = 422, description = "rejected: an item is invalid; nothing applied")))]
pub async fn batch(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(request): JsonBody<BatchRequest>,
) -> Result<Json<BatchResponse>, AppError> {
    principal.require(Scope::Write)?;
    let limits = &state.config.limits;
    let count = request.operations.len();
    if count == 0 || count > limits.max_batch_items {
        return Err(AppError::invalid(format!(
            "a batch holds 1 to {} operations, not {count}",
            limits.max_batch_items
        )));
    }
    let mut ops = Vec::with_capacity(count);
    let mut results = Vec::with_capacity(count);
    let mut invalid = false;
    for (index, operation) in request.operations.into_iter().enumerate() {
        let BatchOperation {
            op,
            key,
            value,
            ttl,
            tags,
        } = operation;
        let (op_name, validated) = match (op, value) {
            (BatchOpKind::Set, Some(value)) => (
                "set",
                validate_write(
                    limits,
                    key.clone(),
                    &value,
                    FieldChange::Set(ttl),
                    FieldChange::Set(tags),
                )
                .map(KvOp::Upsert),
            ),
            (BatchOpKind::Set, None) => ("set", Err(AppError::invalid("a set operation needs a value"))),
            (BatchOpKind::Delete, None) if ttl.is_none() && tags.is_empty() => (
                "delete",
                validate_key(limits, &key).map(|()| KvOp::Delete { key: key.clone() }),
            ),
            (BatchOpKind::Delete, _) => ("delete", Err(AppError::invalid("a delete operation takes only a key"))),
        };
        let error = validated.as_ref().err().map(ToString::to_string);
        invalid |= error.is_some();
        results.push(BatchItemResult {
            index,
            key,
            op: op_name,
            status: if error.is_some() { "invalid" } else { "not_applied" },
            version: None,
            error,
        });
        if let Ok(op) = validated {
            ops.push(op);
        }
    }
    if invalid {
        return Err(
            AppError::invalid("the batch has invalid operations; nothing was applied")
                .with_details(serde_json::json!({ "committed": false, "results": results })),
        );
    }
    count_op(&state, "batch");
    let KvApplied { committed, outcomes } = state.store.kv_apply(&actor(&principal), ops, now_millis()).await?;
    for (result, outcome) in results.iter_mut().zip(&outcomes) {
        result.status = match outcome {
            KvOutcome::Created(_) => "created",
            KvOutcome::Updated(_) => "updated",
            KvOutcome::Deleted { .. } => "deleted",
            KvOutcome::NotFound => "not_found",
            KvOutcome::Exists => "exists",
        };
        if outcome.is_success() {
            result.version = committed.then(|| outcome.version());
        } else {
            result.error = Some("the key does not exist".to_owned());
        }
        if !committed && outcome.is_success() {
            result.status = "not_applied";
        }
    }
    if !committed {
        return Err(AppError::new(
            StatusCode::CONFLICT,
            "batch_rejected",
            "an operation of the batch failed; nothing was applied",
        )
        .with_details(serde_json::json!({ "committed": false, "results": results })));
    }
    Ok(Json(BatchResponse { committed, results }))
}
