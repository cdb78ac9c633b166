//! The Lambda HTTP entry point of the HTTP functions (apps, devices, messages): their
//! request context from the environment (DynamoDB, SQS, the S3 media bucket with the `media`
//! feature, the JWT key when a route needs it, the waits, the body limit), API Gateway's
//! request id, the EMF metrics flushed after every invocation, and `lambda_http`'s runtime
//! around a router. Only the HTTP functions' mains (and the sends function, for its
//! context) use it; the worker and the other queue consumers take their wiring from
//! `wa-aws` and never link `lambda_http`.

pub mod jwt;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use http::request::Parts;
use lambda_http::request::RequestContext;
use utoipa_axum::router::OpenApiRouter;
use wa_api::{AppState, Context, RequestIdConfig};
use wa_aws::{AwsEnv, init_tracing, queue_from_env, store_from_env, with_nudges};
use wa_core::auth::JwtConfig;
use wa_core::queue::Queue;
use wa_core::session::QueuedSessions;

pub use jwt::serves_tenant_jwt;

/// `WA_MAX_BODY_BYTES` under Lambda when unset: under Lambda's 6 MB invocation limit (the
/// event around the body takes some room too), so that an oversized body gets this API's
/// 413 request_too_large rather than API Gateway's.
pub const DEFAULT_MAX_BODY_BYTES: usize = 5_000_000;

/// The smallest `WA_MAX_BODY_BYTES` accepted.
pub const MIN_MAX_BODY_BYTES: usize = 1024;

/// The body limit from `WA_MAX_BODY_BYTES` (`value`, blank counts as unset): a number of
/// bytes, at least [`MIN_MAX_BODY_BYTES`]; unset, [`DEFAULT_MAX_BODY_BYTES`].
pub fn max_body_bytes(value: Option<&str>) -> anyhow::Result<usize> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(DEFAULT_MAX_BODY_BYTES),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= MIN_MAX_BODY_BYTES)
            .with_context(|| {
                format!(
                    "WA_MAX_BODY_BYTES: must be a number of bytes, at least {MIN_MAX_BODY_BYTES}"
                )
            }),
    }
}

/// API Gateway's request id, for the `x-request-id` of requests that bring none.
pub fn platform_request_id(parts: &Parts) -> Option<String> {
    match parts.extensions.get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(c) => c.request_id.clone(),
        _ => None,
    }
}

/// Whether the workers run the sandbox (`WA_PROVIDER=sandbox`): the sandbox's control
/// routes are then served.
pub fn serves_sandbox() -> bool {
    std::env::var("WA_PROVIDER").is_ok_and(|p| p.trim() == "sandbox")
}

/// Reads a duration in milliseconds.
fn millis(var: &'static str, default: u64) -> anyhow::Result<Duration> {
    match std::env::var(var).ok().filter(|v| !v.trim().is_empty()) {
        None => Ok(Duration::from_millis(default)),
        Some(v) => v
            .parse::<u64>()
            .map(Duration::from_millis)
            .with_context(|| format!("{var}: must be a number of milliseconds")),
    }
}

/// The request context of an HTTP function: DynamoDB, SQS, with the `media` feature the S3
/// media bucket of `WA_MEDIA_BUCKET` when it is set, and `jwt` (see [`jwt::from_env`];
/// `None` where no tenant JWT is verified).
pub async fn http_context(jwt: Option<JwtConfig>) -> anyhow::Result<Context> {
    let env = AwsEnv::from_env();
    let opt = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let queue: Arc<dyn Queue> = queue_from_env().await?;
    let store = with_nudges(store_from_env(&env).await?, queue.clone(), &env);
    let allow_private = matches!(
        opt("WA_ALLOW_PRIVATE_URLS").as_deref(),
        Some("1") | Some("true")
    );
    let mut ctx = Context::new(store, queue, jwt, allow_private);
    #[cfg(feature = "media")]
    if let Some(media) = wa_aws::media_from_env(&env).await {
        ctx.set_media(media);
    }
    // API Gateway answers 504 after 30 s: wait less.
    ctx.messages.send_wait = millis("WA_SEND_WAIT_MS", 20_000)?;
    // The outcome comes from the worker, another process: nothing wakes the wait early.
    ctx.messages.first_look = wa_core::send_service::FIRST_LOOK_ELSEWHERE;
    // Every read is a DynamoDB request: the worker is handed the message with its command.
    ctx.messages.hand_on_created = true;
    ctx.devices.link_wait = millis("WA_LINK_WAIT_MS", 10_000)?;
    // What only a live session answers is asked of the device's worker through the queue.
    let query_wait = wa_core::session::query_wait(opt("WA_QUERY_WAIT_MS").as_deref())
        .map_err(|p| anyhow::anyhow!("WA_QUERY_WAIT_MS: {p}"))?;
    ctx.sessions = Arc::new(QueuedSessions::new(
        ctx.store.clone(),
        ctx.queue.clone(),
        query_wait,
    ));
    ctx.sandbox_routes = serves_sandbox();
    // Per execution environment: API Gateway's stage throttling is the deployment-wide limit.
    let limit = wa_api::LimitConfig::from_lookup(&|k| std::env::var(k).ok())
        .map_err(|(var, problem)| anyhow::anyhow!("{var}: {problem}"))?;
    ctx.limiter = wa_api::RequestLimiter::new(limit);
    Ok(ctx)
}

/// Installs the EMF recorder when the environment says so (under Lambda by default); the
/// HTTP metrics then keep their handles.
pub fn install_metrics() -> anyhow::Result<()> {
    if wa_emf::install_from_env().map_err(anyhow::Error::msg)? {
        wa_api::metrics::cache_handles();
    }
    Ok(())
}

/// Everything an HTTP function builds at init: metrics, the JWT key when `routes` declare
/// the tenant-JWT scheme, the context, the body limit.
async fn init(routes: &OpenApiRouter<AppState>) -> anyhow::Result<(Context, usize)> {
    install_metrics()?;
    let doc = serde_json::to_value(routes.get_openapi()).context("the routes' OpenAPI document")?;
    let jwt = jwt::from_env(serves_tenant_jwt(&doc)).await?;
    let max_body = max_body_bytes(std::env::var("WA_MAX_BODY_BYTES").ok().as_deref())?;
    Ok((http_context(jwt).await?, max_body))
}

/// Serves `routes` as a Lambda behind API Gateway (HTTP API, payload 2.0). The clients and
/// the JWT key are read once here, at init, not per request; the metrics of an invocation
/// are written (EMF) when it is answered.
pub async fn serve(routes: OpenApiRouter<AppState>) -> Result<(), lambda_http::Error> {
    init_tracing();
    let (ctx, max_body) = match init(&routes).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "invalid configuration");
            return Err(e.into());
        }
    };
    let service = tower::ServiceExt::<lambda_http::Request>::map_response(
        app(routes, ctx.into_state(), max_body),
        |response: axum::response::Response| {
            wa_emf::flush();
            response
        },
    );
    lambda_http::run(service).await
}

/// Serves `router`, whose routes need no request context (documents, static pages), as a
/// Lambda behind API Gateway, with the shared error handling, body limit and request ids;
/// the metrics of an invocation are written (EMF) when it is answered.
pub async fn serve_router(router: axum::Router) -> Result<(), lambda_http::Error> {
    init_tracing();
    let max_body = match install_metrics()
        .and_then(|()| max_body_bytes(std::env::var("WA_MAX_BODY_BYTES").ok().as_deref()))
    {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "invalid configuration");
            return Err(e.into());
        }
    };
    let service = tower::ServiceExt::<lambda_http::Request>::map_response(
        finished(router, max_body),
        |response: axum::response::Response| {
            wa_emf::flush();
            response
        },
    );
    lambda_http::run(service).await
}

/// `router` with the shared error handling, body limit and request ids, API Gateway's
/// request id standing in when the caller sends none.
fn finished(router: axum::Router, max_body: usize) -> axum::Router {
    wa_api::finish_router(
        router,
        max_body,
        RequestIdConfig {
            platform_id: Some(platform_request_id),
        },
    )
}

/// The service of an HTTP function: `routes` with the shared error handling, body limit and
/// request ids, API Gateway's request id standing in when the caller sends none.
pub fn app(routes: OpenApiRouter<AppState>, state: AppState, max_body: usize) -> axum::Router {
    let (router, _) = routes.split_for_parts();
    finished(router.with_state(state), max_body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_gateway_request_id_is_the_platform_id() {
        let raw = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/apigw-v2-post-apps.json"
        ))
        .unwrap();
        let req = lambda_http::request::from_str(&raw).unwrap();
        let (parts, _) = req.into_parts();
        assert_eq!(
            platform_request_id(&parts).as_deref(),
            Some("LV7fzho-PHcEJPw=")
        );
        let plain = http::Request::new(());
        assert_eq!(platform_request_id(&plain.into_parts().0), None);
    }

    #[test]
    fn the_body_limit_defaults_under_lambdas_limit() {
        let rows: [(Option<&str>, Option<usize>); 6] = [
            (None, Some(5_000_000)),
            (Some(""), Some(5_000_000)),
            (Some("1048576"), Some(1_048_576)),
            (Some("1024"), Some(1024)),
            (Some("1023"), None),
            (Some("5MB"), None),
        ];
        for (value, want) in rows {
            assert_eq!(max_body_bytes(value).ok(), want, "{value:?}");
        }
    }

    /// The real routers' documents: /health declares no tenant JWT, /apps does.
    #[test]
    fn a_router_needs_the_jwt_key_when_it_serves_jwt_routes() {
        let doc = |r: &OpenApiRouter<AppState>| serde_json::to_value(r.get_openapi()).unwrap();
        assert!(!serves_tenant_jwt(&doc(&wa_api::health_router())));

        #[utoipa::path(get, path = "/apps", security(("tenant_jwt" = [])), responses((status = 200)))]
        async fn apps() {}
        let with_apps = wa_api::health_router().routes(utoipa_axum::routes!(apps));
        assert!(serves_tenant_jwt(&doc(&with_apps)));
    }
}
