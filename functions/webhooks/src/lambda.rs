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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    use axum::http::StatusCode;
    use uuid::Uuid;
    use wa_core::apps::App;
    use wa_core::queue::EVENTS;
    use wa_core::store::{AppStore, DeliveryStatus, EventStore, Store};
    use wa_core::webhooks::{Event, EventType};

    use wa_testkit::queues::{Watched, nothing_received};

    use crate::DispatcherConfig;

    /// One SQS FIFO record as Lambda delivers it.
    fn record(id: &str, receipt: &str, body: &str, group: &str) -> serde_json::Value {
        serde_json::json!({
            "messageId": id,
            "receiptHandle": receipt,
            "body": body,
            "attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": "1795618101067",
                "SequenceNumber": "18849496460467696128",
                "MessageGroupId": group,
                "SenderId": "AIDAIO23YVJENQZJOL4VO",
                "MessageDeduplicationId": Uuid::new_v4().to_string(),
                "ApproximateFirstReceiveTimestamp": "1795618101068"
            },
            "messageAttributes": {},
            "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:events.fifo",
            "awsRegion": "us-east-1"
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_retry_holds_its_group_and_only_its_group() {
        let (url, seen) = crate::tests::receiver(|id, seen| {
            seen.push(id);
            StatusCode::SERVICE_UNAVAILABLE
        })
        .await;

        let sqlite = Arc::new(wa_store::SqliteStore::in_memory().unwrap());
        let queue = Watched::new(wa_queue::LocalQueue::on(sqlite.db(), 20).unwrap());
        let mk_app = |url: Option<String>| App {
            webhook_url: url,
            ..wa_testkit::fixtures::app("t", &Uuid::new_v4().to_string())
        };
        // Device A's App answers 503; device B's App has no webhook (skipped at once).
        let failing = mk_app(Some(url));
        let silent = mk_app(None);
        sqlite.insert_app(&failing).await.unwrap();
        sqlite.insert_app(&silent).await.unwrap();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let ea = Event::new(EventType::Message, failing.app_id, a, serde_json::json!({}));
        let eb = Event::new(EventType::Message, silent.app_id, b, serde_json::json!({}));
        sqlite
            .append_events(&[ea.clone(), eb.clone()])
            .await
            .unwrap();
        for d in [a, b] {
            crate::nudge(&queue, d).await.unwrap();
        }
        let got = queue
            .receive(EVENTS, 10, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(got.len(), 2);
        let of = |d: Uuid| {
            got.iter()
                .find(|r| r.group.as_deref() == Some(&d.to_string()))
                .unwrap()
        };
        let (ra, rb) = (of(a), of(b));
        let event: SqsEvent = serde_json::from_value(serde_json::json!({
            "Records": [
                record("m-a1", &ra.receipt, &ra.body, &a.to_string()),
                // A later nudge of A in the same batch: must stay behind the first.
                record("m-a2", "receipt-a2", &ra.body, &a.to_string()),
                record("m-b1", &rb.receipt, &rb.body, &b.to_string()),
            ]
        }))
        .expect("an SQS event");

        let store: Arc<dyn Store> = sqlite.clone();
        let dispatcher = Dispatcher::new(
            store,
            DispatcherConfig {
                schedule: vec![Duration::from_secs(30)],
                timeout: Duration::from_secs(5),
                allow_private_urls: true,
                concurrency: 1,
            },
        )
        .unwrap();
        let before = wa_core::time::now();
        let response = handle_batch(&dispatcher, &queue, event).await;
        let after = wa_core::time::now();
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["m-a1", "m-a2"]);
        assert_eq!(
            seen.lock().unwrap().len(),
            1,
            "one attempt for A, none for A's later nudge"
        );
        let da = sqlite.get_delivery(&ea.request_id).await.unwrap().unwrap();
        assert_eq!((da.status, da.attempts), (DeliveryStatus::Pending, 1));
        let db = sqlite.get_delivery(&eb.request_id).await.unwrap().unwrap();
        assert_eq!(db.status, DeliveryStatus::Skipped);
        // A's nudge stays in flight until the retry is due (30 s after the attempt), not the
        // 60 s it was given: its visibility is the time left until the stored retry, as seen
        // at some moment of the batch.
        let retries = queue.retries();
        assert_eq!(retries.len(), 1, "{retries:?}");
        let (receipt, visible_in) = &retries[0];
        assert_eq!(receipt, &ra.receipt);
        let left_at = |t: ::time::OffsetDateTime| (da.next_attempt_at - t).whole_milliseconds();
        let visible_ms = visible_in.as_millis() as i128;
        assert!(
            left_at(after) - 1 <= visible_ms && visible_ms <= left_at(before) + 1,
            "{visible_in:?}, retry due {}",
            da.next_attempt_at
        );
        assert!(*visible_in <= Duration::from_secs(30), "{visible_in:?}");
        assert!(nothing_received(&queue, EVENTS, Duration::from_secs(60)).await);
        let malformed: SqsEvent = serde_json::from_value(serde_json::json!({
            "Records": [record("m-x", "r-x", "not a nudge", "g")]
        }))
        .unwrap();
        assert!(
            handle_batch(&dispatcher, &queue, malformed)
                .await
                .batch_item_failures
                .is_empty()
        );
    }
}
