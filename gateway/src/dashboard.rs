//! The live dashboard: three static files from `gateway/dashboard/`, compiled
//! into the binary and served at `/`, `/dashboard.js` and `/dashboard.css`.
//! The page needs nothing from the internet; it talks to `/api/v1` and `/ws`
//! of the gateway that served it.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// Scripts, styles and connections only from the gateway itself.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Small files that change with the binary: always revalidate.
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the dashboard page.
pub async fn index() -> Response {
    asset("text/html; charset=utf-8", include_str!("../dashboard/index.html"))
}

/// `GET /dashboard.js`: its script.
pub async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../dashboard/dashboard.js"),
    )
}

/// `GET /dashboard.css`: its styles.
pub async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", include_str!("../dashboard/dashboard.css"))
}
