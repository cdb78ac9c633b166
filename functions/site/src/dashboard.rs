//! The web dashboard: one HTML page at `/` and its assets under `/dashboard/`, hand-written
//! HTML, CSS and JavaScript embedded in the binary (no build step, nothing fetched from
//! elsewhere). The page talks to the public API with an App token kept in the browser's
//! `sessionStorage`; these routes are not API and stay out of `/openapi.json`.
//!
//! Unknown paths under `/dashboard/` fall through to the server's 404 `not_found` envelope.

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Only this origin for scripts, styles, connections and images, plus `data:` images (the
/// device QR is a PNG data URL). No inline script or style, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    content_type: &'static str,
    body: &'static [u8],
    /// A strong validator: the FNV-1a hash of the bytes, computed at compile time.
    hash: u64,
}

const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

macro_rules! asset {
    ($file:literal, $ct:literal) => {{
        const BODY: &[u8] = include_bytes!(concat!("../dashboard/", $file));
        Asset {
            content_type: $ct,
            body: BODY,
            hash: fnv1a(BODY),
        }
    }};
}

const INDEX: Asset = asset!("index.html", "text/html; charset=utf-8");
const APP_JS: Asset = asset!("app.js", "text/javascript; charset=utf-8");
const GROUPS_JS: Asset = asset!("groups.js", "text/javascript; charset=utf-8");
const DELIVERIES_JS: Asset = asset!("deliveries.js", "text/javascript; charset=utf-8");
const APP_CSS: Asset = asset!("app.css", "text/css; charset=utf-8");
const FAVICON: Asset = asset!("favicon.svg", "image/svg+xml");

/// The dashboard's routes: `GET /` and `GET /dashboard/{app.js,groups.js,deliveries.js,app.css,favicon.svg}`.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/", get(|h: HeaderMap| async move { serve(&INDEX, &h) }))
        .route(
            "/dashboard/app.js",
            get(|h: HeaderMap| async move { serve(&APP_JS, &h) }),
        )
        .route(
            "/dashboard/groups.js",
            get(|h: HeaderMap| async move { serve(&GROUPS_JS, &h) }),
        )
        .route(
            "/dashboard/deliveries.js",
            get(|h: HeaderMap| async move { serve(&DELIVERIES_JS, &h) }),
        )
        .route(
            "/dashboard/app.css",
            get(|h: HeaderMap| async move { serve(&APP_CSS, &h) }),
        )
        .route(
            "/dashboard/favicon.svg",
            get(|h: HeaderMap| async move { serve(&FAVICON, &h) }),
        )
}

/// The file with its headers; 304 when the browser already holds this version. Browsers
/// revalidate on every load (`no-cache`), so a new binary's page is picked up at once.
fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let etag = format!("\"{:016x}\"", asset.hash);
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("hex is a valid header value"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if fresh {
        (StatusCode::NOT_MODIFIED, headers).into_response()
    } else {
        (headers, asset.body).into_response()
    }
}
