//! The two error types of the gateway: [`GatewayError`] for opening and serving
//! it (returned to the engine), and [`AppError`] for a failed request, which
//! renders as `{"error": {"code", "message"}}` with its status code (the
//! [`ErrorBody`] schema of the OpenAPI document).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::store::StoreError;

/// Why the gateway could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A configuration value is out of range or inconsistent.
    #[error("invalid gateway configuration: {0}")]
    Config(String),
    /// The JWT signing secret is missing or too weak.
    #[error("{0}")]
    JwtSecret(String),
    /// The store could not be opened or reached.
    #[error("gateway store: {0}")]
    Store(#[from] StoreError),
    /// The listen address is taken by another process.
    #[error(
        "{0} is already in use (is another pulse running?): stop what listens there or choose \
         another address: PULSE_LISTEN=127.0.0.1:8081 for the demo, `pulse serve --listen \
         127.0.0.1:8081`, or `listen` in the pipeline's [gateway] table"
    )]
    AddressInUse(std::net::SocketAddr),
    /// The listen address could not be bound for another reason (permissions, no such interface).
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address of `listen`.
        address: std::net::SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The listener failed.
    #[error("serving HTTP failed: {0}")]
    Serve(#[from] std::io::Error),
}

/// What every error response carries: `{"error": {"code", "message"}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The error of an [`ErrorBody`].
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code such as `unauthorized`, `validation_failed`, `rate_limited`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// Machine-readable specifics, when there are any (the per-item results of a rejected batch).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub details: Option<Value>,
}

/// A request that failed: a status, a stable machine-readable code and a message
/// for people, plus optional details (per-item results of a rejected batch).
/// Boxed, so that `Result<_, AppError>` stays small on the happy path.
#[derive(Debug)]
pub struct AppError(Box<ErrorParts>);

#[derive(Debug)]
struct ErrorParts {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Option<Value>,
    retry_after_secs: Option<u64>,
}

impl AppError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self(Box::new(ErrorParts {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after_secs: None,
        }))
    }

    /// 400: the request is malformed.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 422: the request is well-formed but a value is not acceptable.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", message)
    }

    /// 401: no valid credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: valid credentials without the needed scope.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404: the addressed thing does not exist (for this tenant).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: the request conflicts with what exists.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 413: a body, key or value over its limit.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    /// 429: over the rate limit; retry after this many seconds.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("rate limit exceeded; retry in {retry_after_secs} s"),
        );
        error.0.retry_after_secs = Some(retry_after_secs);
        error
    }

    /// 500: something broke on our side; the cause is logged, not returned.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal error")
    }

    /// The same error with a `Retry-After` of this many seconds.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.0.retry_after_secs = Some(secs);
        self
    }

    /// The same error with machine-readable details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.0.details = Some(details);
        self
    }

    /// The status this error responds with.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        self.0.code
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.0.status.as_u16(), self.0.code, self.0.message)
    }
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => {
                tracing::error!(%error, "store unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the store is unavailable",
                )
            }
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let parts = *self.0;
        let mut error = json!({ "code": parts.code, "message": parts.message });
        if let Some(details) = parts.details {
            error["details"] = details;
        }
        let mut response = (parts.status, axum::Json(json!({ "error": error }))).into_response();
        if let Some(secs) = parts.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if parts.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
