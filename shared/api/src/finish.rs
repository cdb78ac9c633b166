//! The layers that wrap every router: the 404 and 405 answers in the envelope, the body
//! limit, panic catching and, outermost, the request-id layer.

use std::any::Any;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    response::{IntoResponse, Response},
};
use wa_errors::{ApiError, ErrorCode};

use crate::request_id::{self, RequestIdConfig};

/// Wraps a complete router with what every API surface needs: the 404 and 405 answers in the
/// envelope, the body limit, panic catching (500 internal_error, no internals in the body) and,
/// outermost, the request-id middleware.
pub fn finish_router<S>(router: Router<S>, max_body_bytes: usize, ids: RequestIdConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(on_panic))
        .layer(axum::middleware::from_fn_with_state(
            ids,
            request_id::middleware,
        ))
}

async fn not_found(uri: http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}

async fn method_not_allowed(method: http::Method) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("method {method} is not allowed on this route"),
    )
}

fn on_panic(payload: Box<dyn Any + Send + 'static>) -> Response {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into());
    ApiError::internal(format!("handler panicked: {what}")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ApiJson, created, ok};
    use axum::{body::Body, routing::get, routing::post};
    use http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use serde::Deserialize;
    use tower::ServiceExt;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Echo {
        name: String,
    }

    fn app() -> Router {
        let r = Router::new()
            .route(
                "/ok",
                get(|| async { ok(serde_json::json!({"hello": "world"})) }),
            )
            .route(
                "/echo",
                post(|ApiJson(e): ApiJson<Echo>| async move { created(e.name) }),
            )
            .route(
                "/boom",
                get(|| async {
                    panic!("secret=hunter2");
                    #[allow(unreachable_code)]
                    ""
                }),
            )
            .route(
                "/limited",
                get(|| async {
                    ApiError::new(ErrorCode::ProviderRateLimit, "slow down")
                        .with_retry_after(7)
                        .with_detail("message_id", "m1")
                }),
            );
        finish_router(
            r,
            1024,
            RequestIdConfig {
                platform_id: Some(|p| {
                    p.headers
                        .get("x-test-platform-id")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                }),
            },
        )
    }

    async fn send(req: Request<Body>) -> (StatusCode, http::HeaderMap, serde_json::Value) {
        let res = app().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, headers, json)
    }

    fn get_req(uri: &str) -> Request<Body> {
        Request::get(uri).body(Body::empty()).unwrap()
    }

    /// `GET uri` with the caller's request id `caller` and the platform's `platform`.
    fn with_ids(uri: &str, caller: &str, platform: &str) -> Request<Body> {
        Request::get(uri)
            .header("x-request-id", caller)
            .header("x-test-platform-id", platform)
            .body(Body::empty())
            .unwrap()
    }

    /// Every error body has exactly the seed's shape, and its request id is the header's.
    fn assert_envelope(headers: &http::HeaderMap, body: &serde_json::Value, code: &str) {
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        let id = headers["x-request-id"].to_str().unwrap();
        assert_eq!(body["request_id"], id);
        let keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["error", "request_id"]);
    }

    #[tokio::test]
    async fn success_envelope_carries_the_request_id() {
        let (s, h, b) = send(get_req("/ok")).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(b["data"]["hello"], "world");
        assert_eq!(b["request_id"], h["x-request-id"].to_str().unwrap());
    }

    #[tokio::test]
    async fn request_id_sources() {
        let (_, h, b) = send(with_ids("/nope", "caller-42", "apigw-1")).await;
        assert_eq!(h["x-request-id"], "caller-42");
        assert_eq!(b["request_id"], "caller-42");

        let (_, h, _) = send(with_ids("/ok", "not valid!", "apigw-1")).await;
        assert_eq!(h["x-request-id"], "apigw-1");

        let req = Request::get("/ok")
            .header("x-request-id", "x".repeat(129))
            .body(Body::empty())
            .unwrap();
        let (_, h, _) = send(req).await;
        let id = h["x-request-id"].to_str().unwrap();
        assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
    }

    #[tokio::test]
    async fn unknown_route_and_wrong_method() {
        let (s, h, b) = send(get_req("/nope")).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_envelope(&h, &b, "not_found");

        let req = Request::delete("/ok").body(Body::empty()).unwrap();
        let (s, h, b) = send(req).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
        assert_envelope(&h, &b, "method_not_allowed");
    }

    #[tokio::test]
    async fn json_rejections() {
        let post = |ct: Option<&str>, body: &str| {
            let mut b = Request::post("/echo");
            if let Some(ct) = ct {
                b = b.header("content-type", ct);
            }
            b.body(Body::from(body.to_owned())).unwrap()
        };
        let cases = [
            (post(None, r#"{"name":"a"}"#), "body"),
            (post(Some("text/plain"), r#"{"name":"a"}"#), "body"),
            (post(Some("application/json"), "{nope"), "body"),
            (post(Some("application/json"), ""), "body"),
            (post(Some("application/json"), "{}"), "name"),
            (post(Some("application/json"), r#"{"name": []}"#), "name"),
        ];
        for (req, field) in cases {
            let (s, h, b) = send(req).await;
            assert_eq!(s, StatusCode::BAD_REQUEST);
            assert_envelope(&h, &b, "validation_error");
            assert_eq!(b["error"]["details"]["field"], field);
        }
        let (s, _, b) = send(post(
            Some("application/json; charset=utf-8"),
            r#"{"name":"a"}"#,
        ))
        .await;
        assert_eq!(s, StatusCode::CREATED);
        assert_eq!(b["data"], "a");
    }

    #[tokio::test]
    async fn oversized_body_is_413() {
        let big = format!(r#"{{"name":"{}"}}"#, "a".repeat(4096));
        let req = Request::post("/echo")
            .header("content-type", "application/json")
            .body(Body::from(big))
            .unwrap();
        let (s, h, b) = send(req).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        assert_envelope(&h, &b, "request_too_large");
    }

    #[tokio::test]
    async fn panics_become_bare_500s() {
        let (s, h, b) = send(get_req("/boom")).await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
        assert_envelope(&h, &b, "internal_error");
        assert!(!b.to_string().contains("hunter2"));
        assert!(
            b["error"].get("details").is_none(),
            "details omitted when empty"
        );
    }

    #[tokio::test]
    async fn retry_after_and_details() {
        let (s, h, b) = send(get_req("/limited")).await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(h["retry-after"], "7");
        assert_envelope(&h, &b, "provider_rate_limit");
        assert_eq!(b["error"]["details"]["message_id"], "m1");
    }
}
