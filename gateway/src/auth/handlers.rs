//! `/api/v1/auth/*` and `/api/v1/api-keys`: registration, login, refresh, the
//! current principal, Basic-to-JWT exchange for agents, and API key management.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::jwt::{Claims, TokenKind};
use super::password::policy_violation;
use super::{AuthMethod, Principal, Scope, api_keys};
use crate::error::AppError;
use crate::extract::{JsonBody, PathParams};
use crate::state::AppState;
use crate::store::{ApiKeyRecord, UserConflict, UserRecord, now_millis};
use crate::timestamp::rfc3339;

/// `POST /auth/register` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// 3–64 characters: letters, digits, `_`, `-`, `.`.
    #[schema(min_length = 3, max_length = 64, pattern = "^[A-Za-z0-9_.-]{3,64}$")]
    pub username: String,
    /// A unique e-mail address (`local@domain.tld`, at most 254 characters, no
    /// spaces or control characters; stored in lower case).
    #[schema(
        max_length = 254,
        pattern = r"^[^@\s\u0000-\u001F\u007F-\u009F]+@[^@\s\u0000-\u001F\u007F-\u009F]*\.[^@\s\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub email: String,
    /// 8–1024 characters with an upper-case letter, a lower-case letter and a digit (A-Z, a-z, 0-9).
    #[schema(
        min_length = 8,
        max_length = 1024,
        pattern = r"^(?=[\s\S]*[A-Z])(?=[\s\S]*[a-z])(?=[\s\S]*[0-9])"
    )]
    pub password: String,
}

/// `POST /auth/login` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
}

/// `POST /auth/refresh` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// A refresh token from login, registration or an earlier refresh.
    pub refresh_token: String,
}

/// An access and refresh token pair.
#[derive(Serialize, ToSchema)]
pub struct TokenPair {
    /// The tenant the tokens act for.
    pub tenant_id: String,
    /// Send as `Authorization: Bearer`.
    pub access_token: String,
    /// Exchange at `POST /auth/refresh`.
    pub refresh_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// An access token alone (`POST /auth/token`).
#[derive(Serialize, ToSchema)]
pub struct AccessToken {
    /// Send as `Authorization: Bearer`.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// `GET /auth/me`.
#[derive(Serialize, ToSchema)]
pub struct Me {
    /// The tenant.
    pub tenant_id: String,
    /// The user owning the tenant, if it was registered.
    pub username: Option<String>,
    /// Their e-mail address.
    pub email: Option<String>,
    /// Scopes of this credential.
    pub scopes: Vec<Scope>,
    /// Rate-limit plan.
    pub plan: String,
    /// `jwt` or `api_key`.
    pub auth_method: &'static str,
}

/// What a user name must be, said in errors.
pub(crate) const USERNAME_RULE: &str = "username must be 3-64 characters: letters, digits, `_`, `-` or `.`";

/// Whether `username` follows [`USERNAME_RULE`].
pub(crate) fn is_valid_username(username: &str) -> bool {
    (3..=64).contains(&username.len())
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn validate_username(username: &str) -> Result<(), AppError> {
    if is_valid_username(username) {
        Ok(())
    } else {
        Err(AppError::invalid(USERNAME_RULE))
    }
}

/// White space as the OpenAPI pattern's `\s` (ECMAScript) reads it: Unicode's, plus U+FEFF.
fn is_pattern_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

fn normalise_email(email: &str) -> Result<String, AppError> {
    let ok = email.chars().count() <= 254 && !email.chars().any(|c| is_pattern_space(c) || c.is_control());
    let email = email.to_lowercase();
    let ok = ok
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !domain.contains('@'));
    if ok {
        Ok(email)
    } else {
        Err(AppError::invalid("email is not a valid address"))
    }
}

fn token_pair(state: &AppState, user: &UserRecord) -> TokenPair {
    let scopes: Vec<Scope> = user.scopes.iter().filter_map(|s| s.parse().ok()).collect();
    let auth = &state.config.auth;
    let claims = |kind, ttl| Claims {
        usr: Some(user.username.clone()),
        plan: Some(user.plan.clone()),
        ..Claims::new(&user.tenant_id, &scopes, kind, Duration::from_secs(ttl))
    };
    TokenPair {
        tenant_id: user.tenant_id.clone(),
        access_token: state.jwt.sign(&claims(TokenKind::Access, auth.access_token_ttl_secs)),
        refresh_token: state.jwt.sign(&claims(TokenKind::Refresh, auth.refresh_token_ttl_secs)),
        token_type: "bearer",
        expires_in: auth.access_token_ttl_secs,
    }
}

async fn hash_password(state: &AppState, password: String) -> Result<String, AppError> {
    let hasher = state.passwords.clone();
    tokio::task::spawn_blocking(move || hasher.hash(&password))
        .await
        .map_err(AppError::internal)
}

/// The user named `username` if `password` is theirs; 401 otherwise, without
/// saying which was wrong, in words or in time: an unknown user costs the same
/// argon2 verification as a wrong password.
async fn check_credentials(state: &AppState, username: &str, password: String) -> Result<UserRecord, AppError> {
    let user = state.store.user_by_name(username).await?;
    let hasher = state.passwords.clone();
    let hash = user.as_ref().map(|user| user.password_hash.clone());
    let matches = tokio::task::spawn_blocking(move || hasher.verify_user(&password, hash.as_deref()))
        .await
        .map_err(AppError::internal)?;
    match user {
        Some(user) if matches => Ok(user),
        _ => Err(AppError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "invalid username or password",
        )),
    }
}

/// Registers a user and creates their tenant.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = TokenPair), (status = 409, description = "user name or e-mail taken"),
              (status = 422, description = "invalid user name, e-mail or password")))]
pub async fn register(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<RegisterRequest>,
) -> Result<(StatusCode, Json<TokenPair>), AppError> {
    validate_username(&request.username)?;
    let email = normalise_email(&request.email)?;
    if let Some(problem) = policy_violation(&request.password) {
        return Err(AppError::invalid(problem));
    }
    let user = UserRecord {
        tenant_id: Uuid::new_v4().to_string(),
        username: request.username,
        email,
        password_hash: hash_password(&state, request.password).await?,
        scopes: Scope::ALL.iter().map(|s| s.as_str().to_owned()).collect(),
        plan: state.config.rate_limit.default_plan.clone(),
        created_at: now_millis(),
    };
    match state.store.create_user(&user).await? {
        Ok(()) => {
            tracing::info!(tenant = %user.tenant_id, "user registered");
            Ok((StatusCode::CREATED, Json(token_pair(&state, &user))))
        }
        Err(UserConflict::Username) => Err(AppError::new(
            StatusCode::CONFLICT,
            "username_taken",
            "username already registered",
        )),
        Err(UserConflict::Email) => Err(AppError::new(
            StatusCode::CONFLICT,
            "email_taken",
            "email already registered",
        )),
    }
}

/// Exchanges a user name and password for tokens.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenPair), (status = 401, description = "invalid credentials")))]
pub async fn login(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<Json<TokenPair>, AppError> {
    let user = check_credentials(&state, &request.username, request.password).await?;
    Ok(Json(token_pair(&state, &user)))
}

/// Exchanges a refresh token for a new pair.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenPair), (status = 401, description = "invalid or expired refresh token")))]
pub async fn refresh(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<RefreshRequest>,
) -> Result<Json<TokenPair>, AppError> {
    let claims = state.jwt.verify(&request.refresh_token, TokenKind::Refresh)?;
    let user = state
        .store
        .user_by_tenant(&claims.sub)
        .await?
        .ok_or_else(|| AppError::unauthorized("the user of this token no longer exists"))?;
    Ok(Json(token_pair(&state, &user)))
}

/// The caller: tenant, user and scopes.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Me), (status = 401, description = "not authenticated")))]
pub async fn me(State(state): State<AppState>, principal: Principal) -> Result<Json<Me>, AppError> {
    let user = state.store.user_by_tenant(&principal.tenant).await?;
    Ok(Json(Me {
        tenant_id: principal.tenant,
        username: user.as_ref().map(|u| u.username.clone()),
        email: user.as_ref().map(|u| u.email.clone()),
        scopes: principal.scopes,
        plan: principal
            .plan
            .or_else(|| user.map(|u| u.plan))
            .unwrap_or_else(|| state.config.rate_limit.default_plan.clone()),
        auth_method: match principal.method {
            AuthMethod::Jwt => "jwt",
            AuthMethod::ApiKey => "api_key",
        },
    }))
}

/// Exchanges HTTP Basic credentials for an access token (for agents and scripts).
#[utoipa::path(post, path = "/api/v1/auth/token", tag = "auth", security(("basic" = [])),
    responses((status = 200, body = AccessToken), (status = 401, description = "missing or invalid Basic credentials")))]
pub async fn basic_token(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<AccessToken>, AppError> {
    let missing = || AppError::unauthorized("send `Authorization: Basic base64(username:password)`");
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(missing)?;
    let (scheme, encoded) = value.split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(missing());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(missing)?;
    let (username, password) = decoded.split_once(':').ok_or_else(missing)?;
    let user = check_credentials(&state, username, password.to_owned()).await?;
    let pair = token_pair(&state, &user);
    Ok(Json(AccessToken {
        access_token: pair.access_token,
        token_type: "bearer",
        expires_in: pair.expires_in,
    }))
}

/// `POST /api-keys` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// A label: at most 100 characters, not only white space (stored trimmed).
    #[schema(
        max_length = 100,
        pattern = r"[^\t\n\u000B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub name: String,
    /// Scopes for the key (omitted or null: the caller's); never more than the caller has.
    #[serde(default)]
    #[schema(min_items = 1)]
    pub scopes: Option<Vec<Scope>>,
}

/// An API key as listed (never the key itself).
#[derive(Serialize, ToSchema)]
pub struct ApiKeyInfo {
    /// Identifier for `DELETE /api-keys/{id}`.
    pub id: String,
    /// The label.
    pub name: String,
    /// The first characters of the key.
    pub prefix: String,
    /// What the key may do.
    pub scopes: Vec<String>,
    /// When it was made.
    pub created_at: String,
}

/// A new API key: the only time the key is shown.
#[derive(Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// The key; send it as `X-API-Key`. It cannot be shown again.
    pub key: String,
    /// Its listing.
    #[serde(flatten)]
    pub info: ApiKeyInfo,
}

fn key_info(record: ApiKeyRecord) -> ApiKeyInfo {
    ApiKeyInfo {
        id: record.id,
        name: record.name,
        prefix: record.prefix,
        scopes: record.scopes,
        created_at: rfc3339(record.created_at),
    }
}

/// Creates an API key for the caller's tenant (admin scope).
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "api-keys", request_body = CreateApiKeyRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = CreatedApiKey), (status = 403, description = "needs admin, or asks for scopes the caller lacks")))]
pub async fn create_api_key(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(request): JsonBody<CreateApiKeyRequest>,
) -> Result<(StatusCode, Json<CreatedApiKey>), AppError> {
    principal.require(Scope::Admin)?;
    let name = request.name.trim();
    if name.is_empty() || request.name.chars().count() > 100 {
        return Err(AppError::invalid("name must be 1-100 characters"));
    }
    let scopes = request.scopes.unwrap_or_else(|| principal.scopes.clone());
    if scopes.is_empty() {
        return Err(AppError::invalid("an API key needs at least one scope"));
    }
    if let Some(extra) = scopes.iter().find(|s| !principal.scopes.contains(s)) {
        return Err(AppError::forbidden(format!(
            "cannot grant the {extra} scope you do not have"
        )));
    }
    let (key, prefix) = api_keys::generate(&principal.tenant);
    let record = ApiKeyRecord {
        id: Uuid::new_v4().to_string(),
        tenant_id: principal.tenant.clone(),
        name: name.to_owned(),
        prefix,
        key_hash: api_keys::hash(&key),
        scopes: scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        plan: principal
            .plan
            .clone()
            .unwrap_or_else(|| state.config.rate_limit.default_plan.clone()),
        created_at: now_millis(),
    };
    state.store.create_api_key(&record).await?;
    tracing::info!(tenant = %record.tenant_id, key_id = %record.id, "API key created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            key,
            info: key_info(record),
        }),
    ))
}

/// Lists the tenant's API keys by prefix (admin scope).
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api-keys", security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = [ApiKeyInfo]), (status = 403, description = "needs admin")))]
pub async fn list_api_keys(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<ApiKeyInfo>>, AppError> {
    principal.require(Scope::Admin)?;
    let records = state.store.list_api_keys(&principal.tenant).await?;
    Ok(Json(records.into_iter().map(key_info).collect()))
}

/// Revokes one of the tenant's API keys (admin scope).
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api-keys", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "the key id")),
    responses((status = 204), (status = 404, description = "the tenant has no such key")))]
pub async fn delete_api_key(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, AppError> {
    principal.require(Scope::Admin)?;
    if state.store.delete_api_key(&principal.tenant, &id).await? {
        tracing::info!(tenant = %principal.tenant, key_id = %id, "API key deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::not_found("no such API key"))
    }
}
