//! The Lambda HTTP entry point of the HTTP functions (apps, devices, messages): their
//! request context from the environment (DynamoDB, SQS, the JWT settings, the waits), API
//! Gateway's request id, and `lambda_http`'s runtime around a router. Only the HTTP
//! functions' mains use it; the worker and the queue consumers take their wiring from
//! `wa-aws` and never link `lambda_http`.

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

/// API Gateway's request id, for the `x-request-id` of requests that bring none.
pub fn platform_request_id(parts: &Parts) -> Option<String> {
    match parts.extensions.get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(c) => c.request_id.clone(),
        _ => None,
    }
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

/// The request context of an HTTP function: DynamoDB, SQS, and the JWT settings
/// (`WA_JWT_SECRET` is required here: there is no data directory to generate it into).
pub async fn http_context() -> anyhow::Result<Context> {
    let env = AwsEnv::from_env();
    let secret = std::env::var("WA_JWT_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
        .context("WA_JWT_SECRET: required (from the stack's secret)")?;
    let opt = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let jwt = JwtConfig::new(secret, opt("WA_JWT_ISSUER"), opt("WA_JWT_AUDIENCE"))
        .map_err(|e| anyhow::anyhow!("WA_JWT_SECRET: {e}"))?;
    let queue: Arc<dyn Queue> = queue_from_env().await?;
    let store = with_nudges(store_from_env(&env).await?, queue.clone(), &env);
    let allow_private = matches!(
        opt("WA_ALLOW_PRIVATE_URLS").as_deref(),
        Some("1") | Some("true")
    );
    let mut ctx = Context::new(store, queue, jwt, allow_private);
    // API Gateway answers 504 after 30 s: wait less.
    ctx.messages.send_wait = millis("WA_SEND_WAIT_MS", 20_000)?;
    ctx.devices.link_wait = millis("WA_LINK_WAIT_MS", 10_000)?;
    // Per execution environment: API Gateway's stage throttling is the deployment-wide limit.
    let limit = wa_api::LimitConfig::from_lookup(&|k| std::env::var(k).ok())
        .map_err(|(var, problem)| anyhow::anyhow!("{var}: {problem}"))?;
    ctx.limiter = wa_api::RequestLimiter::new(limit);
    Ok(ctx)
}

/// Serves `routes` as a Lambda behind API Gateway (HTTP API, payload 2.0). The clients are
/// built once here, at init, not per request.
pub async fn serve(routes: OpenApiRouter<AppState>) -> Result<(), lambda_http::Error> {
    init_tracing();
    let ctx = match http_context().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "invalid configuration");
            return Err(e.into());
        }
    };
    let max_body = std::env::var("WA_MAX_BODY_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        // API Gateway refuses payloads over 10 MB anyway.
        .unwrap_or(10 * 1024 * 1024);
    lambda_http::run(app(routes, ctx.into_state(), max_body)).await
}

/// The service of an HTTP function: `routes` with the shared error handling, body limit and
/// request ids, API Gateway's request id standing in when the caller sends none.
pub fn app(routes: OpenApiRouter<AppState>, state: AppState, max_body: usize) -> axum::Router {
    let (router, _) = routes.split_for_parts();
    wa_api::finish_router(
        router.with_state(state),
        max_body,
        RequestIdConfig {
            platform_id: Some(platform_request_id),
        },
    )
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
}
