//! Webhook delivery. Events are written to the store's outbox with the change that caused
//! them; two drivers deliver them with one [`Dispatcher`]:
//!
//! - embedded (`wa-server`, `wa-worker` on SQLite): [`Dispatcher::run`] polls the outbox;
//! - AWS: every write with events puts a nudge (`{"device_id"}`) on the FIFO events queue,
//!   grouped by device ([`wa_core::outbox::Nudging`]); the consumer ([`handle_nudge`], run
//!   by the `wa-fn-webhooks` Lambda or by [`consume`] in a long-running process) delivers
//!   the device's due events in order. A delivery that must be retried keeps its nudge in
//!   flight until the retry time (the message's visibility), so the device's later events
//!   wait behind it, as they do in the embedded driver. [`sweep`] re-nudges devices whose
//!   due events have waited too long (a nudge lost between a commit and its send);
//! - AWS, a long-running process's own commits ([`committed`]): it delivers them right
//!   after the commit, and nudges only for a retry or an event behind another.

pub mod committed;
mod dispatcher;
pub mod lambda;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;
use wa_core::consume::{ConsumeOptions, Settle};
use wa_core::queue::{EVENTS, Queue, QueueError, Received};
use wa_core::store::{Store, StoreError};
use wa_core::time;

pub use dispatcher::{DEFAULT_SCHEDULE, Dispatcher, DispatcherConfig, parse_schedule};

/// The body of an events-queue message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nudge {
    pub device_id: Uuid,
}

/// How long a received nudge stays invisible while its device's events are delivered.
pub const NUDGE_VISIBILITY: Duration = Duration::from_secs(120);

/// What became of one nudge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// The device has no due event left: the nudge can be deleted.
    Drained,
    /// A delivery waits for a retry: the nudge comes back after this delay.
    RetryIn(Duration),
    /// The body is not a nudge: deleted, there is nothing to deliver.
    Malformed,
}

/// Delivers the due events of the nudged device.
pub async fn handle_nudge(dispatcher: &Dispatcher, body: &str) -> Result<Handled, StoreError> {
    let Ok(nudge) = serde_json::from_str::<Nudge>(body) else {
        tracing::warn!(body, "events queue: not a nudge; dropped");
        return Ok(Handled::Malformed);
    };
    Ok(match dispatcher.drain_device(nudge.device_id).await? {
        None => Handled::Drained,
        Some(at) => {
            let wait = (at - time::now()).max(::time::Duration::ZERO);
            Handled::RetryIn(Duration::from_millis(wait.whole_milliseconds() as u64))
        }
    })
}

/// What becomes of a nudge with this outcome: deleted once its device has nothing due,
/// kept in flight until a retry is due, tried again soon when delivering failed.
pub fn settlement(outcome: Result<Handled, StoreError>) -> Settle {
    match outcome {
        Ok(Handled::Drained | Handled::Malformed) => Settle::Delete,
        // SQS keeps a message invisible for 12 hours at most; a later retry is re-checked then.
        Ok(Handled::RetryIn(d)) => Settle::RetryAfter(d.min(Duration::from_secs(12 * 3600 - 60))),
        Err(e) => {
            tracing::error!(error = %e, "delivering webhooks failed; the nudge will come back");
            Settle::RetryAfter(Duration::from_secs(5))
        }
    }
}

/// Applies the outcome of [`handle_nudge`] to a received message.
pub async fn settle(
    queue: &dyn Queue,
    received: &Received,
    outcome: Result<Handled, StoreError>,
) -> Result<(), QueueError> {
    wa_core::consume::apply(queue, EVENTS, received, &settlement(outcome)).await
}

/// Nudges handled at once by [`consume`].
const CONCURRENCY: usize = 10;

/// Consumes the events queue until `shutdown` turns true (a long-running process's driver;
/// the Lambda gets its messages from the SQS trigger instead), up to [`CONCURRENCY`] devices
/// at once.
pub async fn consume(
    dispatcher: Arc<Dispatcher>,
    queue: Arc<dyn Queue>,
    shutdown: watch::Receiver<bool>,
) {
    let options = ConsumeOptions {
        queue: EVENTS,
        concurrency: CONCURRENCY,
        visibility: NUDGE_VISIBILITY,
        idle_min: Duration::from_millis(200),
        idle_max: Duration::from_millis(200),
        on_turn: wa_core::consume::no_heartbeat,
    };
    let handler = move |r: Received| {
        let dispatcher = dispatcher.clone();
        async move { settlement(handle_nudge(&dispatcher, &r.body).await) }
    };
    wa_core::consume::consume(queue, options, handler, shutdown).await;
}

/// Puts a nudge for `device` on the events queue.
pub async fn nudge(queue: &dyn Queue, device: Uuid) -> Result<(), QueueError> {
    wa_core::outbox::nudge(queue, device).await
}

/// Re-nudges every device whose oldest due delivery has waited more than `grace`; returns
/// how many were nudged. Run it every minute or so next to the consumer.
pub async fn sweep(store: &dyn Store, queue: &dyn Queue, grace: Duration) -> usize {
    let before = time::now() - grace;
    let due = match store.due_deliveries(before, 512).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "reading overdue webhook deliveries failed");
            return 0;
        }
    };
    let mut n = 0;
    for d in due {
        match nudge(queue, d.event.device_id).await {
            Ok(()) => n += 1,
            Err(e) => tracing::warn!(error = %e, "re-nudging a device failed"),
        }
    }
    if n > 0 {
        tracing::info!(
            devices = n,
            "re-nudged devices with overdue webhook deliveries"
        );
    }
    n
}

/// Runs [`sweep`] every `every` until `shutdown` turns true.
pub async fn sweeper(
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        tokio::select! {
            _ = tokio::time::sleep(every) => { sweep(&*store, &*queue, every).await; }
            _ = shutdown.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use axum::http::{HeaderMap, StatusCode};
    use wa_core::apps::App;
    use wa_core::outbox::Nudging;
    use wa_core::store::{DeliveryStatus, EventStore};
    use wa_core::webhooks::{Event, EventType};

    /// Appends a `message` event of the App `app_id` and a new device; answers it.
    async fn append_one<S: EventStore + ?Sized>(store: &S, app_id: Uuid) -> Event {
        let e = Event::new(
            EventType::Message,
            app_id,
            Uuid::now_v7(),
            serde_json::json!({}),
        );
        store.append_events(std::slice::from_ref(&e)).await.unwrap();
        e
    }

    /// A webhook receiver on a loopback port: `answer(webhook id, the record)` records what
    /// it wants and says the status. Answers the receiver's URL and its record.
    pub(crate) async fn receiver(
        answer: impl Fn(String, &mut Vec<String>) -> StatusCode + Clone + Send + Sync + 'static,
    ) -> (String, Arc<Mutex<Vec<String>>>) {
        let got = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap| {
                let (seen, answer) = (seen.clone(), answer.clone());
                async move {
                    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok());
                    answer(id.unwrap_or_default().to_owned(), &mut seen.lock().unwrap())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}/hook"), got)
    }

    /// A receiver that records webhook ids and refuses the first attempt of `refuse`.
    async fn sink(refuse: String) -> (String, Arc<Mutex<Vec<String>>>) {
        receiver(move |id, seen| {
            let first = !seen.contains(&format!("refused {id}"));
            if id == refuse && first {
                seen.push(format!("refused {id}"));
                return StatusCode::SERVICE_UNAVAILABLE;
            }
            seen.push(id);
            StatusCode::NO_CONTENT
        })
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nudges_deliver_in_order_and_retries_hold_the_device() {
        let sqlite = Arc::new(wa_store::SqliteStore::in_memory().unwrap());
        let queue: Arc<dyn Queue> = Arc::new(wa_queue::LocalQueue::on(sqlite.db(), 20).unwrap());
        let store: Arc<dyn Store> = Arc::new(Nudging::nudging(sqlite, queue.clone()));
        let device = Uuid::now_v7();
        let events: Vec<Event> = (0..3)
            .map(|i| {
                Event::new(
                    EventType::Message,
                    Uuid::nil(),
                    device,
                    serde_json::json!({ "i": i }),
                )
            })
            .collect();
        let (url, got) = sink(events[1].request_id.clone()).await;
        let app = App {
            webhook_url: Some(url),
            ..wa_testkit::fixtures::app("t", "a")
        };
        store.insert_app(&app).await.unwrap();
        let events: Vec<Event> = events
            .into_iter()
            .map(|mut e| {
                e.app_id = app.app_id;
                e
            })
            .collect();
        store.append_events(&events).await.unwrap();
        let other = append_one(&*store, app.app_id).await;
        assert_eq!(
            queue.depth(EVENTS).await.unwrap().visible,
            2,
            "one nudge per device and write"
        );

        let dispatcher = Arc::new(
            Dispatcher::new(
                store.clone(),
                DispatcherConfig {
                    schedule: vec![Duration::from_millis(700)],
                    timeout: Duration::from_secs(5),
                    allow_private_urls: true,
                    concurrency: 8,
                },
            )
            .unwrap(),
        );
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(consume(dispatcher, queue.clone(), stopped));

        let ids: Vec<String> = events.iter().map(|e| e.request_id.clone()).collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let seen = got.lock().unwrap().clone();
            if seen.len() == 5 {
                // The other device is not held up by this one's retry.
                let at = |id: &str| seen.iter().position(|s| s == id).unwrap();
                assert!(
                    at(&other.request_id) < at(&ids[1]),
                    "the other device's event waited for this one's retry: {seen:?}"
                );
                let device_order: Vec<&String> =
                    seen.iter().filter(|s| **s != other.request_id).collect();
                assert_eq!(
                    device_order,
                    [&ids[0], &format!("refused {}", ids[1]), &ids[1], &ids[2]],
                    "the device's later event waits for the retried one"
                );
                break;
            }
            assert!(std::time::Instant::now() < deadline, "deliveries: {seen:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let d = store.get_delivery(&ids[1]).await.unwrap().unwrap();
        assert_eq!((d.status, d.attempts), (DeliveryStatus::Delivered, 2));
        // Every nudge was settled: nothing is left in the queue.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while queue.depth(EVENTS).await.unwrap() != Default::default() {
            assert!(std::time::Instant::now() < deadline, "nudges left behind");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.send(true).unwrap();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn sweep_re_nudges_overdue_devices_only() {
        let sqlite = Arc::new(wa_store::SqliteStore::in_memory().unwrap());
        let queue: Arc<dyn Queue> = Arc::new(wa_queue::LocalQueue::on(sqlite.db(), 20).unwrap());
        // Written without nudges, as if the process died between the commit and the send.
        let e = append_one(&*sqlite, Uuid::now_v7()).await;
        assert_eq!(
            sweep(&*sqlite, &*queue, Duration::from_secs(60)).await,
            0,
            "not overdue yet"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            sweep(&*sqlite, &*queue, Duration::from_millis(200)).await,
            1
        );
        let r = queue
            .receive(EVENTS, 10, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            serde_json::from_str::<Nudge>(&r[0].body).unwrap().device_id,
            e.device_id
        );
        assert!(matches!(
            handle_nudge(
                &Dispatcher::new(
                    sqlite.clone(),
                    DispatcherConfig {
                        schedule: vec![],
                        timeout: Duration::from_secs(1),
                        allow_private_urls: true,
                        concurrency: 1,
                    }
                )
                .unwrap(),
                "not json"
            )
            .await,
            Ok(Handled::Malformed)
        ));
    }
}
