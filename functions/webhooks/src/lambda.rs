//! The webhooks Lambda's handler: a batch of nudges from the FIFO events queue (SQS
//! trigger with `ReportBatchItemFailures`). A nudge whose device must wait for a retry gets
//! the retry's delay as its visibility and is reported failed, so SQS keeps it; the later
//! records of its group in the batch are reported failed too, untouched, so they come back
//! after it, in order.

use std::collections::HashSet;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use wa_core::queue::{Queue, Received};

use crate::{Dispatcher, Handled, handle_nudge, settle};

/// Handles one batch; the response names the records SQS must keep.
pub async fn handle_batch(
    dispatcher: &Dispatcher,
    queue: &dyn Queue,
    event: SqsEvent,
) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    let mut held: HashSet<String> = HashSet::new();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let group = record.attributes.get("MessageGroupId").cloned();
        if let Some(g) = &group
            && held.contains(g)
        {
            response.add_failure(id);
            continue;
        }
        let body = record.body.clone().unwrap_or_default();
        let outcome = handle_nudge(dispatcher, &body).await;
        let keep = match &outcome {
            Ok(Handled::Drained | Handled::Malformed) => false,
            Ok(Handled::RetryIn(_)) | Err(_) => true,
        };
        if keep {
            // The visibility becomes the retry's delay; the record stays in the queue.
            let received = Received {
                message_id: id.clone(),
                receipt: record.receipt_handle.clone().unwrap_or_default(),
                body,
                group: group.clone(),
                receive_count: 0,
            };
            if let Err(e) = settle(queue, &received, outcome).await {
                tracing::warn!(error = %e, "setting a nudge's retry delay failed");
            }
            if let Some(g) = group {
                held.insert(g);
            }
            response.add_failure(id);
        }
    }
    response
}
