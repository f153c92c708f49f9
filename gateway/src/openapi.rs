//! The OpenAPI 3 document, generated from the handlers' `#[utoipa::path]`
//! annotations and served at `/api/v1/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{audit, auth, kv, ops};

/// The gateway's API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "pulse gateway", description = "Auth, API keys, tenant-scoped key-value store, audit and operations."),
    paths(
        auth::handlers::register, auth::handlers::login, auth::handlers::refresh, auth::handlers::me,
        auth::handlers::basic_token, auth::handlers::create_api_key, auth::handlers::list_api_keys,
        auth::handlers::delete_api_key,
        kv::handlers::create, kv::handlers::get, kv::handlers::replace, kv::handlers::delete, kv::handlers::list,
        kv::handlers::exists, kv::handlers::ttl, kv::handlers::count, kv::handlers::batch,
        audit::audit_log,
        ops::health, ops::live, ops::ready, ops::metrics,
    ),
    modifiers(&SecuritySchemes),
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

/// `GET /api/v1/openapi.json`.
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
