//! The site's routes as the site Lambda serves them (finished like every router): the
//! dashboard and its assets, the OpenAPI document, the docs page, and the 404 envelope of
//! every other path.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;

/// The site's routes, finished as a Lambda's router is.
fn app() -> Router {
    wa_api::finish_router(router(&document(false)), 1024 * 1024, Default::default())
}

async fn call(
    method: &str,
    uri: &str,
    if_none_match: Option<&str>,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(tag) = if_none_match {
        req = req.header(header::IF_NONE_MATCH, tag);
    }
    let res = app()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, headers, body)
}

async fn get(uri: &str, if_none_match: Option<&str>) -> (StatusCode, HeaderMap, Vec<u8>) {
    call("GET", uri, if_none_match).await
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
        "/dashboard/groups.js",
        "/dashboard/deliveries.js",
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
        (
            "/dashboard/groups.js",
            "text/javascript; charset=utf-8",
            "waGroups",
        ),
        (
            "/dashboard/deliveries.js",
            "text/javascript; charset=utf-8",
            "waDeliveries",
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

/// Paths the site does not serve (API Gateway's `$default` brings every path no other
/// function has): the 404 envelope with the request's id; a wrong method on a path it
/// serves: 405.
#[tokio::test]
async fn unknown_paths_are_the_json_404() {
    for path in [
        "/dashboard/x",
        "/dashboard/",
        "/dashboard/app.js/x",
        "/nope",
        "/metrics",
        "/sandbox/devices/00000000-0000-0000-0000-000000000000/scan",
    ] {
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
    let (s, _, body) = call("DELETE", "/openapi.json", None).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "method_not_allowed", "{v}");
}

#[tokio::test]
async fn dashboard_routes_are_not_in_the_openapi_document() {
    let doc = document(false);
    let paths: Vec<&String> = doc.paths.paths.keys().collect();
    assert!(
        !paths
            .iter()
            .any(|p| *p == "/" || p.starts_with("/dashboard")),
        "{paths:?}"
    );
}

/// The document served is the whole API's, the sandbox's routes only with the sandbox.
#[tokio::test]
async fn the_document_is_the_whole_apis() {
    let (s, h, body) = get("/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(header_of(&h, "content-type"), "application/json");
    assert_eq!(body, document_json(&document(false)).into_bytes());
    let served: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(served["openapi"], "3.1.0", "webhooks need OpenAPI 3.1");
    let webhooks = served["webhooks"].as_object().expect("the webhook events");
    for event in ["message", "group_update", "poll_vote", "call"] {
        assert!(
            webhooks[event]["post"]["requestBody"].is_object(),
            "{event}"
        );
    }
    let paths =
        |d: &utoipa::openapi::OpenApi| -> Vec<String> { d.paths.paths.keys().cloned().collect() };
    let plain = paths(&document(false));
    for p in [
        "/apps",
        "/devices/{device_id}/groups",
        "/devices/{device_id}/messages",
        "/media",
        "/health",
    ] {
        assert!(plain.iter().any(|x| x == p), "{p} in {plain:?}");
    }
    assert!(!plain.iter().any(|p| p.starts_with("/sandbox")));
    let with = paths(&document(true));
    assert!(
        with.iter()
            .any(|p| p == "/sandbox/devices/{device_id}/scan")
    );
    let (s, ct, _) = get("/docs/", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(header_of(&ct, "content-type").starts_with("text/html"));
}

/// Client generators and OpenAPI validators need every operation id to be unique.
#[tokio::test]
async fn operation_ids_are_unique() {
    let doc = document(true);
    let mut seen = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (path, item) in &doc.paths.paths {
        let ops = [
            ("get", &item.get),
            ("put", &item.put),
            ("post", &item.post),
            ("delete", &item.delete),
            ("patch", &item.patch),
        ];
        for (method, op) in ops {
            if let Some(op) = op {
                let id = op.operation_id.clone().unwrap_or_default();
                assert!(!id.is_empty(), "{method} {path} has no operation id");
                seen.entry(id).or_default().push(format!("{method} {path}"));
            }
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, at)| at.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "operation ids used more than once: {twice:?}"
    );
}
