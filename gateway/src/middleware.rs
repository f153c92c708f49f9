//! Middleware around every route: the correlation id (echoed or generated),
//! `X-Process-Time`, and the request counter and latency histogram labelled by
//! the matched route template (never the raw path, which would be unbounded).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The correlation header.
pub const CORRELATION_ID: &str = "x-correlation-id";
/// The processing-time header (seconds).
pub const PROCESS_TIME: &str = "x-process-time";

/// A caller's id is kept when it is short and plain; anything else is replaced.
fn acceptable_id(value: &HeaderValue) -> Option<HeaderValue> {
    let text = value.to_str().ok()?;
    let plain = !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    plain.then(|| value.clone())
}

/// Tags the request with a correlation id, times it, and records its metrics.
pub async fn observe(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let correlation_id = request
        .headers()
        .get(CORRELATION_ID)
        .and_then(acceptable_id)
        .unwrap_or_else(|| HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("a UUID is a header value"));
    request.headers_mut().insert(CORRELATION_ID, correlation_id.clone());
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let span = tracing::info_span!("request", %method, %route,
        correlation_id = %correlation_id.to_str().unwrap_or_default());
    let mut response = next.run(request).instrument(span).await;
    let elapsed = started.elapsed().as_secs_f64();
    let status = response.status().as_u16().to_string();
    metrics::counter!("pulse_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("pulse_http_request_duration_seconds", "method" => method, "route" => route).record(elapsed);
    let headers = response.headers_mut();
    headers.insert(CORRELATION_ID, correlation_id);
    headers.insert(
        PROCESS_TIME,
        HeaderValue::from_str(&format!("{elapsed:.6}")).expect("a number is a header value"),
    );
    response
}
