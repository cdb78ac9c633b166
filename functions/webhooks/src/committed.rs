//! Webhooks delivered by the process that committed their events, right after the commit:
//! a long-running process (the worker, `wa-server` with its worker) on the AWS data path.
//! Its store holds the events it writes (`DynamoStore::holding_events`), so the
//! events queue's consumer leaves them alone, and [`Committed`] hands each commit's events
//! to [`Dispatcher::deliver_committed`], one device at a time and in commit order. No
//! nudge goes through the events queue unless a delivery must wait: a retry, or an event
//! behind another pending one. An event whose committer stops before its attempt is taken
//! over by the consumer once the hold is over (the sweep of overdue deliveries nudges its
//! device).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use uuid::Uuid;
use wa_core::layer::{Layer, Layered};
use wa_core::queue::Queue;
use wa_core::store::Store;
use wa_core::webhooks::Event;

use crate::Dispatcher;

/// How long a stopping process goes on delivering what it committed.
pub const FINISH_WITHIN: Duration = Duration::from_secs(10);

/// The hold of a committed event for a dispatcher whose attempts time out after
/// `timeout`: long enough for one attempt and the record of it.
pub fn hold_for(timeout: Duration) -> Duration {
    timeout + Duration::from_secs(20)
}

/// The layer that hands committed events on to [`run`].
pub struct Committed {
    events: mpsc::UnboundedSender<Vec<Event>>,
}

#[async_trait]
impl Layer for Committed {
    async fn committed(&self, events: &[Event]) {
        // Closed only once `run` has finished: the consumer takes them after their hold.
        let _ = self.events.send(events.to_vec());
    }
}

/// `holding` (a store that holds the events it writes), delivering them after each commit,
/// and the receiving end for [`run`].
pub fn delivering(holding: Arc<dyn Store>) -> (Arc<dyn Store>, Receiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let store = Layered::new(holding, Arc::new(Committed { events: tx }));
    (Arc::new(store), Receiver(rx))
}

/// The committed events on their way to [`run`].
pub struct Receiver(mpsc::UnboundedReceiver<Vec<Event>>);

/// The events of each device waiting for its delivery task, in commit order.
type Backlog = Arc<Mutex<HashMap<Uuid, VecDeque<Event>>>>;

/// Delivers committed events until `finish` turns true, then what was committed before it
/// for at most [`FINISH_WITHIN`]. One task per device with events, so a slow receiver holds
/// up only its own device.
pub async fn run(
    dispatcher: Arc<Dispatcher>,
    queue: Arc<dyn Queue>,
    events: Receiver,
    mut finish: watch::Receiver<bool>,
) {
    let mut events = events.0;
    let backlog: Backlog = Arc::default();
    let mut tasks = JoinSet::new();
    // A task for each device of `batch` that has none yet.
    let start = |tasks: &mut JoinSet<()>, batch: Vec<Event>| {
        for device in queue_up(&backlog, batch) {
            let (dispatcher, queue, backlog) = (dispatcher.clone(), queue.clone(), backlog.clone());
            tasks.spawn(deliver_device(dispatcher, queue, backlog, device));
        }
    };
    loop {
        let batch = tokio::select! {
            b = events.recv() => b,
            _ = finish.wait_for(|f| *f) => None,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let Some(batch) = batch else { break };
        start(&mut tasks, batch);
    }
    while let Ok(batch) = events.try_recv() {
        start(&mut tasks, batch);
    }
    let drained = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(FINISH_WITHIN, drained).await.is_err() {
        tracing::warn!(
            "stopped before every committed webhook was attempted; the events queue's consumer takes them over"
        );
    }
}

/// Adds `batch` to the backlog; answers the devices that had none (they need a task).
fn queue_up(backlog: &Backlog, batch: Vec<Event>) -> Vec<Uuid> {
    let mut backlog = backlog.lock().unwrap_or_else(|p| p.into_inner());
    let mut started = Vec::new();
    for e in batch {
        let device = e.device_id;
        let events = backlog.entry(device).or_insert_with(|| {
            started.push(device);
            VecDeque::new()
        });
        events.push_back(e);
    }
    started
}

/// Delivers the device's backlog until it is empty.
async fn deliver_device(
    dispatcher: Arc<Dispatcher>,
    queue: Arc<dyn Queue>,
    backlog: Backlog,
    device: Uuid,
) {
    loop {
        let events: Vec<Event> = {
            let mut backlog = backlog.lock().unwrap_or_else(|p| p.into_inner());
            match backlog.get_mut(&device) {
                Some(events) if !events.is_empty() => events.drain(..).collect(),
                _ => {
                    backlog.remove(&device);
                    return;
                }
            }
        };
        if let Err(e) = dispatcher.deliver_committed(&*queue, device, &events).await {
            // Still held: the consumer takes them over after the hold.
            tracing::warn!(device_id = %device, error = %e, "delivering committed webhooks failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::http::StatusCode;
    use wa_core::apps::App;
    use wa_core::queue::EVENTS;
    use wa_core::store::{AppStore, Attempt, DeliveryStatus, EventStore};
    use wa_core::webhooks::EventType;

    use crate::DispatcherConfig;

    /// An App whose webhook answers `status`, a delivering store, its queue and the
    /// running delivery of its commits.
    struct Setup {
        store: Arc<dyn Store>,
        sqlite: Arc<wa_store::SqliteStore>,
        queue: Arc<dyn Queue>,
        app: App,
        posted: Arc<std::sync::Mutex<Vec<String>>>,
        finish: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    }

    async fn setup(status: StatusCode) -> Setup {
        let (url, posted) = crate::tests::receiver(move |id, seen| {
            seen.push(id);
            status
        })
        .await;
        let sqlite = Arc::new(wa_store::SqliteStore::in_memory().unwrap());
        let queue: Arc<dyn Queue> = Arc::new(wa_queue::LocalQueue::on(sqlite.db(), 20).unwrap());
        let app = App {
            webhook_url: Some(url),
            ..wa_testkit::fixtures::app("t", "a")
        };
        sqlite.insert_app(&app).await.unwrap();
        let (store, events) = delivering(sqlite.clone());
        let dispatcher = Arc::new(
            Dispatcher::new(
                store.clone(),
                DispatcherConfig {
                    schedule: vec![Duration::from_secs(60)],
                    timeout: Duration::from_secs(5),
                    allow_private_urls: true,
                    concurrency: 4,
                },
            )
            .unwrap(),
        );
        let (finish, finishing) = watch::channel(false);
        let task = tokio::spawn(run(dispatcher, queue.clone(), events, finishing));
        Setup {
            store,
            sqlite,
            queue,
            app,
            posted,
            finish,
            task,
        }
    }

    impl Setup {
        fn event(&self, device: Uuid) -> Event {
            Event::new(
                EventType::Message,
                self.app.app_id,
                device,
                serde_json::json!({}),
            )
        }

        /// Stops the delivery of commits, after what was committed so far.
        async fn finish(mut self) -> Self {
            self.finish.send(true).unwrap();
            (&mut self.task).await.unwrap();
            self
        }

        async fn status(&self, e: &Event) -> (DeliveryStatus, u32) {
            let d = self
                .sqlite
                .get_delivery(&e.request_id)
                .await
                .unwrap()
                .unwrap();
            (d.status, d.attempts)
        }

        async fn nudges(&self) -> usize {
            self.queue.depth(EVENTS).await.unwrap().visible as usize
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn committed_events_are_delivered_in_order_without_a_nudge() {
        let s = setup(StatusCode::NO_CONTENT).await;
        let device = Uuid::now_v7();
        let (a, b, c) = (s.event(device), s.event(device), s.event(Uuid::now_v7()));
        s.store
            .append_events(std::slice::from_ref(&a))
            .await
            .unwrap();
        s.store
            .append_events(&[b.clone(), c.clone()])
            .await
            .unwrap();
        let s = s.finish().await;
        for e in [&a, &b, &c] {
            assert_eq!(s.status(e).await, (DeliveryStatus::Delivered, 1));
        }
        let posted = s.posted.lock().unwrap().clone();
        let at = |e: &Event| posted.iter().position(|p| *p == e.request_id).unwrap();
        assert!(at(&a) < at(&b), "in commit order: {posted:?}");
        assert_eq!(posted.len(), 3, "each once");
        assert_eq!(s.nudges().await, 0, "nothing through the events queue");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_retry_and_what_waits_behind_it_go_to_the_events_queue() {
        let s = setup(StatusCode::SERVICE_UNAVAILABLE).await;
        let device = Uuid::now_v7();
        let first = s.event(device);
        s.store
            .append_events(std::slice::from_ref(&first))
            .await
            .unwrap();
        let s = s.finish().await;
        assert_eq!(s.status(&first).await, (DeliveryStatus::Pending, 1));
        assert_eq!(s.nudges().await, 1, "the retry's nudge");

        // A later event of the device waits behind the retry: never posted by its
        // committer, released, and the device nudged.
        let s2 = setup(StatusCode::NO_CONTENT).await;
        let device = Uuid::now_v7();
        let (older, ours) = (s2.event(device), s2.event(device));
        s2.sqlite
            .append_events(std::slice::from_ref(&older))
            .await
            .unwrap();
        s2.sqlite
            .record_attempt(
                &older.request_id,
                &Attempt::Retry {
                    next: wa_core::time::now() + Duration::from_secs(60),
                    error: "503".into(),
                    status_code: Some(503),
                },
            )
            .await
            .unwrap();
        s2.store
            .append_events(std::slice::from_ref(&ours))
            .await
            .unwrap();
        let s2 = s2.finish().await;
        assert!(s2.posted.lock().unwrap().is_empty(), "nothing overtook");
        assert_eq!(s2.status(&ours).await, (DeliveryStatus::Pending, 0));
        assert_eq!(s2.nudges().await, 1, "left to the consumer");
    }
}
