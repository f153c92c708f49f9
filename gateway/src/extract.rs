//! Extractors that turn axum's rejections (bad JSON, missing fields, wrong
//! content type, oversize body, malformed path or query) into [`AppError`]s, so
//! every failure has the same JSON shape; and [`whole_number`], how integer
//! fields read a JSON number.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::AppError;

/// A JSON request body of type `T`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> AppError {
    let status = rejection.status();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
        _ => "invalid_json",
    };
    AppError::new(status, code, rejection.body_text())
}

/// Query parameters of type `T`.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|query| Self(query.0))
            .map_err(|rejection: QueryRejection| AppError::bad_request("invalid_query", rejection.body_text()))
    }
}

/// Path parameters of type `T`.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|path| Self(path.0))
            .map_err(|rejection: PathRejection| AppError::bad_request("invalid_path", rejection.body_text()))
    }
}

/// `number` as a `u64` when it is a whole number in range: `60`, or `60.0`,
/// which JSON Schema's `integer` admits too.
pub fn whole_number(number: &serde_json::Number) -> Option<u64> {
    number.as_u64().or_else(|| {
        let float = number.as_f64()?;
        // Below 2^53 every whole float converts exactly.
        (float.fract() == 0.0 && (0.0..9_007_199_254_740_992.0).contains(&float)).then_some(float as u64)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::Number;

    #[test]
    fn whole_numbers_may_be_spelled_as_floats() {
        let read = |text: &str| super::whole_number(&serde_json::from_str::<Number>(text).unwrap());
        assert_eq!(read("60"), Some(60));
        assert_eq!(read("60.0"), Some(60));
        assert_eq!(read("6e1"), Some(60));
        assert_eq!(read("60.5"), None);
        assert_eq!(read("-1"), None);
        assert_eq!(read("1e300"), None);
    }
}
