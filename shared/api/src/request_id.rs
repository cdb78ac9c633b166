//! The request-id layer: the id is chosen once per request, echoed in `x-request-id`, and
//! carried (through `wa_errors::request_id`'s task-local) by every log line and every
//! response body of that request.

use std::time::Instant;

use axum::{
    extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State},
    middleware::Next,
    response::Response,
};
use http::{HeaderName, HeaderValue, request::Parts};
use tracing::Instrument;

/// The header that carries the request id, both ways.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The task-local request id itself (no HTTP in it) lives in `wa_errors::request_id`.
pub use wa_errors::request_id::{current, is_valid, new_id, scope};

/// Where to find the platform's own request id when the caller sent none
/// (API Gateway's id under Lambda).
pub type PlatformId = fn(&Parts) -> Option<String>;

/// Configuration of the request-id middleware.
#[derive(Clone, Copy, Default)]
pub struct RequestIdConfig {
    pub platform_id: Option<PlatformId>,
}

/// Picks the id: the caller's valid `x-request-id`, else the platform's, else a new UUID v4.
pub fn choose(parts: &Parts, config: &RequestIdConfig) -> String {
    if let Some(id) = parts
        .headers
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| is_valid(id))
    {
        return id.to_owned();
    }
    // The platform's id is trusted as it is (API Gateway's end in `=`), as long as it can
    // go in a header.
    if let Some(id) = config
        .platform_id
        .and_then(|f| f(parts))
        .filter(|id| (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()))
    {
        return id;
    }
    new_id()
}

/// The outermost middleware: chooses the id, opens the request's span, logs one access line
/// (method, path, status, latency; never headers, query strings or bodies), records the HTTP
/// metrics (`crate::metrics`), echoes the header.
///
/// The span carries `request_id` and, once known, `tenant_id`, `app_id`, `device_id` and
/// `message_id`: the ids named in the path are recorded here, the rest by the extractors and
/// use cases (`tracing::Span::current().record(...)`).
pub async fn middleware(
    State(config): State<RequestIdConfig>,
    req: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let id = choose(&parts, &config);
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let method = parts.method.clone();
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %parts.method,
        path = %parts.uri.path(),
        tenant_id = tracing::field::Empty,
        app_id = tracing::field::Empty,
        device_id = tracing::field::Empty,
        message_id = tracing::field::Empty,
    );
    record_path_ids(&span, &mut parts).await;
    let req = Request::from_parts(parts, body);
    let started = Instant::now();
    let header = HeaderValue::from_str(&id).expect("request ids are header-safe");
    let mut res = scope(id, next.run(req).instrument(span.clone())).await;
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    crate::metrics::http_request(route.as_deref(), &method, status, elapsed);
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms,
            route = route.as_deref().unwrap_or(""),
            "request finished"
        )
    });
    res.headers_mut().insert(X_REQUEST_ID.clone(), header);
    res
}

/// Records the ids a route names in its path on the request's span: `app_id` and `device_id`
/// when they are UUIDs, `message_id` when it is id-shaped (never arbitrary caller text).
async fn record_path_ids(span: &tracing::Span, parts: &mut Parts) {
    let Ok(params) = RawPathParams::from_request_parts(parts, &()).await else {
        return;
    };
    for (name, value) in &params {
        let valid = match name {
            "app_id" | "device_id" => uuid::Uuid::try_parse(value).is_ok(),
            "message_id" => is_valid(value),
            _ => false,
        };
        if valid {
            span.record(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choice_order() {
        let cfg = RequestIdConfig {
            platform_id: Some(|_| Some("apigw-123".into())),
        };
        // The caller's id when it is valid, else the platform's.
        for (asked, chosen) in [("mine-1", "mine-1"), ("bad id", "apigw-123")] {
            let req = http::Request::builder()
                .header("x-request-id", asked)
                .body(())
                .unwrap();
            let (parts, _) = req.into_parts();
            assert_eq!(choose(&parts, &cfg), chosen, "{asked}");
        }

        let (parts, _) = http::Request::new(()).into_parts();
        let id = choose(&parts, &RequestIdConfig::default());
        assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);
    }
}
