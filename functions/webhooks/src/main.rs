//! `wa-fn-webhooks`: delivers webhook events, triggered by the FIFO events queue; its
//! metrics are written (EMF) after every batch.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};
use wa_fn_webhooks::{DEFAULT_SCHEDULE, Dispatcher, DispatcherConfig, parse_schedule};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    wa_aws::init_tracing();
    wa_emf::install_from_env()?;
    let env = wa_aws::AwsEnv::from_env();
    let queue: Arc<dyn wa_core::queue::Queue> = wa_aws::queue_from_env().await?;
    let store: Arc<dyn wa_core::store::Store> = wa_aws::store_from_env(&env).await?;
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let schedule = parse_schedule(
        &var("WA_WEBHOOK_RETRY_SCHEDULE").unwrap_or_else(|| DEFAULT_SCHEDULE.into()),
    )
    .map_err(|e| format!("WA_WEBHOOK_RETRY_SCHEDULE: {e}"))?;
    let timeout = var("WA_WEBHOOK_TIMEOUT_SECS")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let dispatcher = Arc::new(Dispatcher::new(
        store,
        DispatcherConfig {
            schedule,
            timeout: std::time::Duration::from_secs(timeout),
            allow_private_urls: matches!(
                var("WA_ALLOW_PRIVATE_URLS").as_deref(),
                Some("1" | "true")
            ),
            concurrency: 1,
        },
    )?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (dispatcher, queue) = (dispatcher.clone(), queue.clone());
        async move {
            let response =
                wa_fn_webhooks::lambda::handle_batch(&dispatcher, &*queue, event.payload).await;
            wa_emf::flush();
            Ok::<SqsBatchResponse, lambda_runtime::Error>(response)
        }
    }))
    .await
}
