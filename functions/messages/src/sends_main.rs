//! `wa-fn-sends`: event-driven sends, triggered by the sends queue. It verifies no tenant
//! JWT, so it needs no JWT key; its metrics are written (EMF) after every batch.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    wa_aws::init_tracing();
    wa_lambda_http::install_metrics()?;
    let ctx = Arc::new(wa_lambda_http::http_context(None).await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let ctx = ctx.clone();
        async move {
            let response =
                wa_fn_messages::sends::handle_batch(&ctx, &*ctx.queue, event.payload).await;
            wa_emf::flush();
            Ok::<SqsBatchResponse, lambda_runtime::Error>(response)
        }
    }))
    .await
}
