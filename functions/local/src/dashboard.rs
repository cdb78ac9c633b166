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
const APP_CSS: Asset = asset!("app.css", "text/css; charset=utf-8");
const FAVICON: Asset = asset!("favicon.svg", "image/svg+xml");

/// The dashboard's routes: `GET /` and `GET /dashboard/{app.js,app.css,favicon.svg}`.
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    use wa_api::Context;
    use wa_core::auth::JwtConfig;
    use wa_queue::LocalQueue;
    use wa_store::SqliteStore;

    use super::*;

    /// The server's full router, as `wa-server` builds it.
    fn app() -> (Router, utoipa::openapi::OpenApi) {
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let queue = Arc::new(LocalQueue::in_memory(5).unwrap());
        let jwt = JwtConfig::new("0123456789abcdef0123456789abcdef", None, None).unwrap();
        crate::router(
            Context::new(store, queue, jwt, false).into_state(),
            1024 * 1024,
        )
    }

    async fn get(uri: &str, if_none_match: Option<&str>) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut req = Request::get(uri);
        if let Some(tag) = if_none_match {
            req = req.header(header::IF_NONE_MATCH, tag);
        }
        let res = app()
            .0
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
        (status, headers, body)
    }

    fn header_of<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
        h.get(name)
            .unwrap_or_else(|| panic!("header {name} is set"))
            .to_str()
            .unwrap()
    }

    #[tokio::test]
    async fn dashboard_index_is_html_with_the_csp() {
        let (s, h, body) = get("/", None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(header_of(&h, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header_of(&h, "content-security-policy"), CSP);
        assert!(CSP.contains("script-src 'self';"));
        assert!(CSP.contains("img-src 'self' data:;"));
        assert_eq!(header_of(&h, "cache-control"), "no-cache");
        assert_eq!(header_of(&h, "x-content-type-options"), "nosniff");
        assert!(h.contains_key("x-request-id"));
        let html = String::from_utf8(body).unwrap();
        assert!(html.starts_with("<!doctype html>"), "{}", &html[..40]);
        for asset in [
            "/dashboard/app.js",
            "/dashboard/app.css",
            "/dashboard/favicon.svg",
        ] {
            assert!(html.contains(asset), "index.html links {asset}");
        }
        // Nothing from elsewhere, nothing inline that the CSP would block.
        assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
        assert!(!html.contains("<script>") && !html.contains("style=\""));
        assert!(!html.contains("<style"));
    }

    #[tokio::test]
    async fn dashboard_assets_have_their_content_types() {
        for (path, ct, needle) in [
            (
                "/dashboard/app.js",
                "text/javascript; charset=utf-8",
                "sessionStorage",
            ),
            ("/dashboard/app.css", "text/css; charset=utf-8", "body"),
            ("/dashboard/favicon.svg", "image/svg+xml", "<svg"),
        ] {
            let (s, h, body) = get(path, None).await;
            assert_eq!(s, StatusCode::OK, "{path}");
            assert_eq!(header_of(&h, "content-type"), ct, "{path}");
            assert_eq!(header_of(&h, "content-security-policy"), CSP, "{path}");
            assert_eq!(header_of(&h, "cache-control"), "no-cache", "{path}");
            let text = String::from_utf8(body).unwrap();
            assert!(text.contains(needle), "{path} holds {needle}");
            assert!(
                !text.contains("https://"),
                "{path} fetches nothing from elsewhere"
            );
            // Revalidation: the same version answers 304 without a body.
            let etag = header_of(&h, "etag").to_owned();
            let (s, h2, body) = get(path, Some(&etag)).await;
            assert_eq!(s, StatusCode::NOT_MODIFIED, "{path}");
            assert_eq!(header_of(&h2, "etag"), etag);
            assert!(body.is_empty());
            let (s, _, _) = get(path, Some("\"0000000000000000\"")).await;
            assert_eq!(s, StatusCode::OK, "{path}: another version is sent again");
        }
    }

    #[tokio::test]
    async fn dashboard_unknown_asset_is_the_json_404() {
        for path in ["/dashboard/x", "/dashboard/", "/dashboard/app.js/x"] {
            let (s, h, body) = get(path, None).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(header_of(&h, "content-type"), "application/json", "{path}");
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["error"]["code"], "not_found", "{v}");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
            assert_eq!(v["request_id"], header_of(&h, "x-request-id"), "{v}");
        }
    }

    #[tokio::test]
    async fn dashboard_routes_are_not_in_the_openapi_document() {
        let (_, doc) = app();
        let paths: Vec<&String> = doc.paths.paths.keys().collect();
        assert!(
            !paths
                .iter()
                .any(|p| *p == "/" || p.starts_with("/dashboard")),
            "{paths:?}"
        );
    }
}
