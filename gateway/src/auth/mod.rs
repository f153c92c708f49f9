//! Who is calling: scopes, the [`Principal`] a request acts as, and the
//! middleware that resolves it from `Authorization: Bearer` or `X-API-Key`
//! (then applies the caller's rate limit).

pub mod api_keys;
pub mod demo;
pub mod handlers;
pub mod jwt;
pub mod password;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::error::{AppError, GatewayError};
use crate::state::AppState;
use jwt::TokenKind;

/// A tenant id: 1-64 ASCII letters, digits, `_`, `-` or `.`. Registered users
/// get a UUID; the demo account and `pulse token` may name one, such as `demo`,
/// to match the `tenant` that events carry. The character set keeps store keys
/// (`kv:{tenant}:{key}`) unambiguous.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TenantId(String);

impl TenantId {
    /// What a tenant id must be, said in errors.
    pub const RULE: &str = "a tenant id is 1-64 characters: letters, digits, `_`, `-` or `.`";

    /// Whether `id` is a valid tenant id.
    pub fn is_valid(id: &str) -> bool {
        (1..=64).contains(&id.len())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for TenantId {
    type Err = String;

    fn from_str(id: &str) -> Result<Self, Self::Err> {
        if Self::is_valid(id) {
            Ok(Self(id.to_owned()))
        } else {
            Err(format!("{id:?}: {}", Self::RULE))
        }
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a token or key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read KV entries.
    Read,
    /// Create, change and delete KV entries.
    Write,
    /// Manage API keys and read the audit log.
    Admin,
}

impl Scope {
    /// Every scope, as granted to a tenant's owner.
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Admin];

    /// The scope's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }

    /// Parses a comma-separated list such as `read,write` (what `pulse token --scopes` takes).
    pub fn parse_list(list: &str) -> Result<Vec<Scope>, GatewayError> {
        let mut scopes = Vec::new();
        for name in list.split(',').map(str::trim).filter(|name| !name.is_empty()) {
            let scope = name.parse()?;
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        if scopes.is_empty() {
            return Err(GatewayError::Config(
                "no scopes given (expected read, write and/or admin)".into(),
            ));
        }
        Ok(scopes)
    }
}

impl std::str::FromStr for Scope {
    type Err = GatewayError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            "admin" => Ok(Self::Admin),
            other => Err(GatewayError::Config(format!(
                "unknown scope {other:?} (expected read, write or admin)"
            ))),
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a principal authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// A bearer JWT.
    Jwt,
    /// An `X-API-Key`.
    ApiKey,
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The tenant everything is scoped to.
    pub tenant: String,
    /// Who, for the audit log (user name, `api_key:{id}` or `token`).
    pub user: String,
    /// What the caller may do.
    pub scopes: Vec<Scope>,
    /// The rate-limit plan, if the credential names one.
    pub plan: Option<String>,
    /// JWT or API key.
    pub method: AuthMethod,
    /// What the rate limit counts against (the tenant, or the API key).
    pub rate_subject: String,
}

impl Principal {
    /// Fails with 403 unless the caller has `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), AppError> {
        if self.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(AppError::forbidden(format!("this operation needs the {scope} scope")))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Principal>().cloned().ok_or_else(|| {
            AppError::unauthorized("authentication required: send `Authorization: Bearer <token>` or `X-API-Key`")
        })
    }
}

/// The credential a request carries, if any.
pub(crate) enum Credential<'a> {
    Bearer(&'a str),
    ApiKey(&'a str),
}

fn credential(headers: &HeaderMap) -> Result<Option<Credential<'_>>, AppError> {
    if let Some(key) = headers.get("x-api-key") {
        let key = key.to_str().map_err(|_| AppError::unauthorized("invalid API key"))?;
        return Ok(Some(Credential::ApiKey(key.trim())));
    }
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| AppError::unauthorized("malformed Authorization header"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(Credential::Bearer(token.trim()))),
        // Basic credentials are for `POST auth/token` only, which reads them itself.
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("basic") => Ok(None),
        _ => Err(AppError::unauthorized(
            "unsupported Authorization scheme (expected Bearer)",
        )),
    }
}

pub(crate) async fn resolve(state: &AppState, credential: Credential<'_>) -> Result<Principal, AppError> {
    match credential {
        Credential::Bearer(token) => {
            let claims = state.jwt.verify(token, TokenKind::Access)?;
            Ok(Principal {
                rate_subject: format!("tenant:{}", claims.sub),
                user: claims.usr.unwrap_or_else(|| "token".to_owned()),
                tenant: claims.sub,
                scopes: claims.scopes,
                plan: claims.plan,
                method: AuthMethod::Jwt,
            })
        }
        Credential::ApiKey(key) => {
            let record = state
                .store
                .api_key_by_hash(&api_keys::hash(key))
                .await?
                .ok_or_else(|| {
                    AppError::new(
                        axum::http::StatusCode::UNAUTHORIZED,
                        "invalid_api_key",
                        "invalid API key",
                    )
                })?;
            Ok(Principal {
                rate_subject: format!("api_key:{}", record.id),
                user: format!("api_key:{}", record.id),
                scopes: record.scopes.iter().filter_map(|s| s.parse().ok()).collect(),
                plan: Some(record.plan),
                tenant: record.tenant_id,
                method: AuthMethod::ApiKey,
            })
        }
    }
}

/// Middleware: resolves the caller (401 for a bad credential), applies its rate
/// limit (429 beyond it) and adds the rate-limit headers. Requests without
/// credentials pass through; handlers that need a caller extract [`Principal`].
pub async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let principal = match credential(request.headers()) {
        Ok(Some(credential)) => match resolve(&state, credential).await {
            Ok(principal) => principal,
            Err(error) => return error.into_response(),
        },
        Ok(None) => return next.run(request).await,
        Err(error) => return error.into_response(),
    };
    let decision = state
        .rate_limits
        .check(&principal.rate_subject, principal.plan.as_deref())
        .await;
    request.extensions_mut().insert(principal);
    within_limit(&state, decision, request, next).await
}

/// Middleware of the sign-in endpoints, which take a password or a refresh
/// token rather than an access token: limits requests per client address
/// (`rate_limit.sign_in`), so that nobody can guess passwords, or spend the
/// gateway's CPU on password hashes, without bound.
pub async fn limit_sign_in(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let client = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip());
    let decision = state.rate_limits.check_sign_in(client).await;
    within_limit(&state, decision, request, next).await
}

/// Runs `request` unless `decision` refuses it (429), and adds the rate-limit headers.
async fn within_limit(
    state: &AppState,
    decision: Option<crate::rate_limit::Decision>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = match decision {
        Some(decision) if !decision.allowed => AppError::rate_limited(decision.retry_after_secs).into_response(),
        _ => next.run(request).await,
    };
    if let Some(decision) = decision {
        state.rate_limits.add_headers(&decision, response.headers_mut());
    }
    response
}
