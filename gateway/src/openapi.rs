//! The OpenAPI 3 document, generated from the handlers' `#[utoipa::path]`
//! annotations and served at `/api/v1/openapi.json`.
//!
//! Each handler documents its own answers; [`ErrorResponses`] then adds the
//! errors that the shared layers give on every route of a kind — 401/403/429
//! from authentication and rate limits, 400/413/415/422 from JSON bodies,
//! 400 from path and query parameters, 500/503 from the store — and gives
//! every error response the one [`ErrorBody`] schema. A test walks the
//! router's routes and fails when one is missing here.

use axum::Json;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorDetail};
use crate::{audit, auth, dashboard, graph_query, ingest, kv, live, ml, ml_train, ops};

/// The gateway's API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "pulse gateway", description = "Auth, API keys, tenant-scoped key-value store, audit, event \
        ingest, live results (WebSocket, series queries, counters), read-only Cypher on the tenant's graph and operations. Every error is \
        `{\"error\": {\"code\", \"message\"}}` with the matching status."),
    paths(
        auth::handlers::register, auth::handlers::login, auth::handlers::refresh, auth::handlers::me,
        auth::handlers::basic_token, auth::handlers::create_api_key, auth::handlers::list_api_keys,
        auth::handlers::delete_api_key,
        kv::handlers::create, kv::handlers::get, kv::handlers::replace, kv::handlers::delete, kv::handlers::list,
        kv::handlers::exists, kv::handlers::ttl, kv::handlers::count, kv::handlers::batch,
        audit::audit_log, ingest::post_events,
        live::analytics::query, live::analytics::stats, live::ws::connect,
        live::detections::anomalies, live::detections::forecast, graph_query::cypher,
        live::rca_api::list_incidents, live::rca_api::get_incident, live::rca_api::rca,
        live::rca_api::list_resources, live::rca_api::get_resource,
        ml::list_models, ml::get_model, ml::activate, ml::predict, ml_train::train,
        ops::health, ops::live, ops::ready, ops::metrics, ops::docs, openapi_json,
        dashboard::index, dashboard::script, dashboard::incidents_script, dashboard::chart_script, dashboard::stylesheet,
        dashboard::icon_svg, dashboard::icon_ico,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&SecuritySchemes, &KeyNamedBatch, &ErrorResponses),
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// `GET`, `PUT` and `DELETE /api/v1/kv/batch`: the key `batch`, whose path is
/// the batch endpoint's too (see `kv::handlers::batch_named_key`). Documented
/// as copies of the `/api/v1/kv/{key}` operations without the path parameter.
struct KeyNamedBatch;

impl Modify for KeyNamedBatch {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(key_item) = openapi.paths.paths.get("/api/v1/kv/{key}").cloned() else {
            return;
        };
        let Some(batch_item) = openapi.paths.paths.get_mut("/api/v1/kv/batch") else {
            return;
        };
        let for_batch = |operation: Option<Operation>| {
            operation.map(|mut operation| {
                if let Some(parameters) = &mut operation.parameters {
                    parameters.retain(|p| p.parameter_in != ParameterIn::Path);
                }
                operation.operation_id = operation.operation_id.map(|id| format!("{id}_key_named_batch"));
                let summary = operation.summary.take().unwrap_or_default();
                operation.summary = Some(format!("{summary} (the key `batch`)"));
                operation
            })
        };
        batch_item.get = for_batch(key_item.get);
        batch_item.put = for_batch(key_item.put);
        batch_item.delete = for_batch(key_item.delete);
    }
}

/// The sign-in routes: no access token, rate limited per client address.
pub const SIGN_IN_PATHS: [&str; 4] = [
    "/api/v1/auth/register",
    "/api/v1/auth/login",
    "/api/v1/auth/refresh",
    "/api/v1/auth/token",
];

/// Adds the errors the shared layers give and the [`ErrorBody`] schema to every error response.
struct ErrorResponses;

impl Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                add_error_responses(path, operation);
            }
        }
    }
}

/// The errors a route of this kind can give, beyond what its handler documents.
fn shared_errors(path: &str, operation: &Operation) -> Vec<(u16, &'static str)> {
    let mut errors = Vec::new();
    let api = path.starts_with("/api/v1/") && path != "/api/v1/openapi.json";
    let sign_in = SIGN_IN_PATHS.contains(&path);
    if api && !sign_in {
        errors.push((401, "missing, invalid or expired credentials (`unauthorized`)"));
        errors.push((403, "the credential lacks the scope this operation needs (`forbidden`)"));
    }
    if api {
        errors.push((
            429,
            "over the rate limit (`rate_limited`; `Retry-After` says when to retry). Sign-in routes \
             are limited per client address, the others per tenant or API key",
        ));
        errors.push((500, "an internal error (`internal_error`); the cause is logged"));
        errors.push((503, "the store is unavailable (`store_unavailable`)"));
    }
    if operation.request_body.is_some() {
        errors.push((400, "the body is not valid JSON (`invalid_json`)"));
        errors.push((413, "the body is over the size limit (`payload_too_large`)"));
        errors.push((415, "the body is not `application/json` (`unsupported_media_type`)"));
        errors.push((
            422,
            "the body does not fit the schema (`invalid_body`) or a value is not acceptable (`validation_failed`)",
        ));
    }
    let parameters = operation.parameters.iter().flatten();
    for parameter in parameters {
        match parameter.parameter_in {
            ParameterIn::Path => errors.push((400, "a malformed path parameter (`invalid_path`)")),
            ParameterIn::Query if path != "/ws" => errors.push((400, "bad query parameters (`invalid_query`)")),
            _ => {}
        }
    }
    errors
}

fn add_error_responses(path: &str, operation: &mut Operation) {
    let errors = shared_errors(path, operation);
    let responses = &mut operation.responses.responses;
    for (status, description) in errors {
        responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(ResponseBuilder::new().description(description).build()));
    }
    for (status, response) in responses.iter_mut() {
        let is_error = status.parse::<u16>().is_ok_and(|code| code >= 400);
        if let (true, RefOr::T(response)) = (is_error, response)
            && response.content.is_empty()
        {
            response.content.insert(
                "application/json".to_owned(),
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            );
        }
    }
}

/// This document as JSON.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "the OpenAPI 3 document", content_type = "application/json")))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
