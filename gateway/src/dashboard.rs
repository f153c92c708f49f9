//! The live dashboard: static files from `gateway/dashboard/`, compiled into
//! the binary and served at `/`, `/dashboard.js`, `/incidents.js`, `/chart.js`, `/dashboard.css` and the
//! icon at `/favicon.svg` and `/favicon.ico` (which browsers ask for unasked).
//! The page needs nothing from the internet; it talks to `/api/v1` and `/ws`
//! of the gateway that served it.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// Scripts, styles and connections only from the gateway itself.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn asset(content_type: &'static str, body: impl IntoResponse) -> Response {
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
#[utoipa::path(get, path = "/", tag = "dashboard",
    responses((status = 200, description = "the live dashboard page", content_type = "text/html")))]
pub async fn index() -> Response {
    asset("text/html; charset=utf-8", include_str!("../dashboard/index.html"))
}

/// `GET /dashboard.js`: its script.
#[utoipa::path(get, path = "/dashboard.js", tag = "dashboard",
    responses((status = 200, description = "the dashboard's script", content_type = "text/javascript")))]
pub async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../dashboard/dashboard.js"),
    )
}

/// `GET /incidents.js`: its incidents panel.
#[utoipa::path(get, path = "/incidents.js", tag = "dashboard",
    responses((status = 200, description = "the dashboard's incidents panel", content_type = "text/javascript")))]
pub async fn incidents_script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../dashboard/incidents.js"),
    )
}

/// `GET /chart.js`: the canvas charts it draws with.
#[utoipa::path(get, path = "/chart.js", tag = "dashboard",
    responses((status = 200, description = "the dashboard's chart drawing", content_type = "text/javascript")))]
pub async fn chart_script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("../dashboard/chart.js"))
}

/// `GET /dashboard.css`: its styles.
#[utoipa::path(get, path = "/dashboard.css", tag = "dashboard",
    responses((status = 200, description = "the dashboard's styles", content_type = "text/css")))]
pub async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", include_str!("../dashboard/dashboard.css"))
}

/// `GET /favicon.svg`: the icon the page links to.
#[utoipa::path(get, path = "/favicon.svg", tag = "dashboard",
    responses((status = 200, description = "the dashboard's icon", content_type = "image/svg+xml")))]
pub async fn icon_svg() -> Response {
    asset("image/svg+xml", include_str!("../dashboard/favicon.svg"))
}

/// `GET /favicon.ico`: the same icon as a 16×16 ICO, for clients that ask
/// for `/favicon.ico` by convention (150 bytes, so no 404 in every log).
#[utoipa::path(get, path = "/favicon.ico", tag = "dashboard",
    responses((status = 200, description = "the dashboard's icon as an ICO", content_type = "image/x-icon")))]
pub async fn icon_ico() -> Response {
    asset("image/x-icon", &include_bytes!("../dashboard/favicon.ico")[..])
}
