//! The AWS wiring shared by the Lambdas, the worker service and `wa-server` on the AWS data
//! path: the DynamoDB store and the SQS queues from the environment (`WA_TABLE_NAME`,
//! `WA_COMMANDS_QUEUE_URL`, `WA_EVENTS_QUEUE_URL`, `WA_SENDS_QUEUE_URL`, and the SDK's own
//! `AWS_REGION`, `AWS_ENDPOINT_URL`, credentials), the request context of the HTTP
//! functions, and `lambda_http`'s entry point around a router.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use http::request::Parts;
use lambda_http::request::RequestContext;
use utoipa_axum::router::OpenApiRouter;
use wa_api::{AppState, Context};
use wa_core::auth::JwtConfig;
use wa_core::outbox::Nudging;
use wa_core::queue::Queue;
use wa_core::store::Store;
use wa_errors::request_id::RequestIdConfig;
use wa_queue::SqsQueue;
use wa_store::DynamoStore;

/// The environment of the AWS data path, read once.
#[derive(Debug, Clone)]
pub struct AwsEnv {
    /// `WA_TABLE_NAME`: the DynamoDB table.
    pub table: Option<String>,
    /// `WA_COMMANDS_QUEUE_URL`: the FIFO queue of the worker's commands.
    pub commands_queue_url: Option<String>,
    /// `WA_EVENTS_QUEUE_URL`: the FIFO queue of webhook nudges.
    pub events_queue_url: Option<String>,
    /// `WA_SENDS_QUEUE_URL`: the queue of event-driven sends.
    pub sends_queue_url: Option<String>,
}

impl AwsEnv {
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> AwsEnv {
        let var = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        AwsEnv {
            table: var("WA_TABLE_NAME"),
            commands_queue_url: var("WA_COMMANDS_QUEUE_URL"),
            events_queue_url: var("WA_EVENTS_QUEUE_URL"),
            sends_queue_url: var("WA_SENDS_QUEUE_URL"),
        }
    }

    pub fn from_env() -> AwsEnv {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }

    /// Whether any SQS queue is configured.
    pub fn uses_sqs(&self) -> bool {
        self.commands_queue_url.is_some()
            || self.events_queue_url.is_some()
            || self.sends_queue_url.is_some()
    }
}

/// The DynamoDB store of `WA_TABLE_NAME`.
pub async fn store_from_env(env: &AwsEnv) -> anyhow::Result<Arc<DynamoStore>> {
    let table = env
        .table
        .as_deref()
        .context("WA_TABLE_NAME: the DynamoDB table is not set")?;
    Ok(Arc::new(DynamoStore::from_env(table).await))
}

/// How long a consumer's receive waits for a message (SQS long polling, its maximum): an
/// idle consumer costs three requests a minute per queue instead of several a second, and a
/// message is received as soon as it is sent. Consumers stop waiting when they shut down.
pub const LONG_POLL: Duration = Duration::from_secs(20);

/// The SQS queues of the `WA_*_QUEUE_URL` variables (receives answer at once; see
/// [`LONG_POLL`] for consumers).
pub async fn queue_from_env() -> anyhow::Result<Arc<SqsQueue>> {
    Ok(Arc::new(
        SqsQueue::from_env()
            .await
            .map_err(|e| anyhow::anyhow!("the SQS queues: {e}"))?,
    ))
}

/// `store`, nudging the events queue after every write with events when that queue is set
/// (the webhooks consumer delivers them); else `store` itself (the outbox is polled).
pub fn with_nudges(store: Arc<dyn Store>, queue: Arc<dyn Queue>, env: &AwsEnv) -> Arc<dyn Store> {
    if env.events_queue_url.is_some() {
        Arc::new(Nudging::new(store, queue))
    } else {
        store
    }
}

/// Creates the table and the queues named by the environment when they are missing (for
/// emulators and first runs; in AWS the SAM template creates them). Returns what it did,
/// one line per resource.
pub async fn init(env: &AwsEnv) -> anyhow::Result<Vec<String>> {
    let mut done = Vec::new();
    if env.table.is_some() {
        let store = store_from_env(env).await?;
        store
            .create_table()
            .await
            .map_err(|e| anyhow::anyhow!("creating the table: {e}"))?;
        done.push(format!("table {}", store.table()));
    }
    let urls = [
        &env.commands_queue_url,
        &env.events_queue_url,
        &env.sends_queue_url,
    ];
    let names: Vec<String> = urls
        .into_iter()
        .flatten()
        .map(|u| u.rsplit('/').next().unwrap_or(u).to_owned())
        .collect();
    if !names.is_empty() {
        let created = wa_queue::sqs::create_queues_from_env(&names)
            .await
            .map_err(|e| anyhow::anyhow!("creating the queues: {e}"))?;
        done.extend(created.into_iter().map(|u| format!("queue {u}")));
    }
    Ok(done)
}

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

/// Logs as JSON lines (CloudWatch), filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .json()
        .with_current_span(true)
        .flatten_event(true)
        .without_time()
        .init();
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
    wa_errors::finish_router(
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
