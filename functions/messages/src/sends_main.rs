//! `wa-fn-sends`: event-driven sends, triggered by the sends queue.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    wa_aws::init_tracing();
    let ctx = Arc::new(wa_lambda_http::http_context().await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let ctx = ctx.clone();
        async move {
            Ok::<SqsBatchResponse, lambda_runtime::Error>(
                wa_fn_messages::sends::handle_batch(&ctx, &*ctx.queue, event.payload).await,
            )
        }
    }))
    .await
}
