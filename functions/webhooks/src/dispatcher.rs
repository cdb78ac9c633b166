//! The webhook dispatcher: delivers the event outbox to each App's webhook URL, signed per
//! Standard Webhooks, in order per device, retried on a schedule, kept as failed at the end.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use uuid::Uuid;
use wa_core::queue::Queue;
use wa_core::store::{Attempt, Delivery, DeviceHead, Store, StoreError};
use wa_core::time;
use wa_core::webhooks::{Event, sign};
use wa_net::{FetchError, Method, OutboundClient, loggable_url};

/// The default retry schedule (`WA_WEBHOOK_RETRY_SCHEDULE`).
pub const DEFAULT_SCHEDULE: &str = "10s,30s,90s,5m,30m,2h,6h";

/// Parses a schedule such as `10s,30s,5m,2h` (units `ms`, `s`, `m`, `h`).
pub fn parse_schedule(raw: &str) -> Result<Vec<Duration>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (num, unit) = p.split_at(p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len()));
            let n: u64 = num
                .parse()
                .map_err(|_| format!("`{p}` is not a duration"))?;
            Ok(match unit {
                "ms" => Duration::from_millis(n),
                "s" | "" => Duration::from_secs(n),
                "m" => Duration::from_secs(n * 60),
                "h" => Duration::from_secs(n * 3600),
                _ => return Err(format!("`{p}`: the unit must be ms, s, m or h")),
            })
        })
        .collect()
}

/// Settings of the dispatcher.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Delays before the 2nd, 3rd, ... attempt; after the last one a delivery is `failed`.
    pub schedule: Vec<Duration>,
    /// Timeout of one attempt (at most 10 s of it for resolving and connecting).
    pub timeout: Duration,
    /// Allow private, loopback, link-local and other special-purpose targets.
    pub allow_private_urls: bool,
    /// Deliveries in flight at once (one per device at most).
    pub concurrency: usize,
}

/// Delivers events.
pub struct Dispatcher {
    store: Arc<dyn Store>,
    client: OutboundClient,
    config: DispatcherConfig,
    busy: Mutex<HashSet<Uuid>>,
    permits: Arc<Semaphore>,
}

impl Dispatcher {
    /// A dispatcher that resolves webhook hosts with the operating system's resolver.
    pub fn new(store: Arc<dyn Store>, config: DispatcherConfig) -> anyhow::Result<Self> {
        Self::with_lookup(store, config, Arc::new(wa_net::SystemLookup))
    }

    /// A dispatcher that resolves webhook hosts with `lookup` (tests make a name resolve to
    /// a loopback or private address without DNS).
    pub fn with_lookup(
        store: Arc<dyn Store>,
        config: DispatcherConfig,
        lookup: Arc<dyn wa_net::Lookup>,
    ) -> anyhow::Result<Self> {
        let client = OutboundClient::with_lookup(
            &wa_net::Config {
                max_idle_per_host: 64,
                ..wa_net::Config::new(config.timeout, config.allow_private_urls)
            },
            lookup,
        )?;
        Ok(Dispatcher {
            permits: Arc::new(Semaphore::new(config.concurrency.max(1))),
            store,
            client,
            config,
            busy: Mutex::new(HashSet::new()),
        })
    }

    /// Delivers until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                break;
            }
            match self.store.due_deliveries(time::now(), 512).await {
                Ok(due) => {
                    for d in due {
                        let device = d.event.device_id;
                        if !self.lock(device).insert(device) {
                            continue;
                        }
                        let this = self.clone();
                        tokio::spawn(async move { this.chain(device, d).await });
                    }
                }
                Err(e) => tracing::error!(error = %e, "reading due webhook deliveries failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    fn lock(&self, _device: Uuid) -> std::sync::MutexGuard<'_, HashSet<Uuid>> {
        self.busy.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Delivers a device's due events one after the other, in order, until one must wait.
    async fn chain(&self, device: Uuid, first: Delivery) {
        let mut next = Some(first);
        while let Some(d) = next {
            let Ok(_permit) = self.permits.acquire().await else {
                break;
            };
            match self.deliver(&d).await {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    tracing::error!(request_id = %d.event.request_id, error = %e, "recording a webhook attempt failed");
                    break;
                }
            }
            next = match self
                .store
                .next_delivery_of_device(device, time::now())
                .await
            {
                Ok(head) => head.due,
                Err(e) => {
                    tracing::error!(error = %e, "reading the next webhook delivery failed");
                    None
                }
            };
        }
        self.lock(device).remove(&device);
    }

    /// Delivers a device's due events in order until none is due (`Ok(None)`) or one waits
    /// for a retry (`Ok(Some(when))`): the events-queue consumer's unit of work, one per
    /// nudge. The device's queue is read again only when the last read saw another pending
    /// delivery behind the one attempted: an event committed after that read has a nudge of
    /// its own, sent after its commit, which drains it.
    ///
    /// A head that waits makes the drain wait with it (the nudge comes back then): until its
    /// retry, or for at most [`HELD_RECHECK`] while its committer delivers it
    /// ([`Dispatcher::deliver_committed`]), since an event committed behind it may have
    /// no other nudge.
    pub async fn drain_device(
        &self,
        device: Uuid,
    ) -> Result<Option<time::OffsetDateTime>, StoreError> {
        loop {
            let now = time::now();
            let head = self.store.next_delivery_of_device(device, now).await?;
            let more = head.more;
            let d = match turn(head, now) {
                Turn::Attempt(d) => d,
                Turn::WaitUntil(at) => return Ok(Some(at)),
                Turn::Done => return Ok(None),
            };
            if let Some(next) = self.attempt(&d.event, d.attempts).await? {
                return Ok(Some(next));
            }
            if !more {
                return Ok(None);
            }
        }
    }

    /// Delivers `events` right after this process committed them (all of `device`, in
    /// their order; the store held them for it, [`wa_core::store::Waiting`]): each one
    /// while it heads its device's queue, one read of the queue before each. An event
    /// behind another pending one, and those after it, are released to the events queue's
    /// consumer and the device nudged; so are the ones after an event that must be
    /// retried (its nudge then waits for the retry).
    pub async fn deliver_committed(
        &self,
        queue: &dyn Queue,
        device: Uuid,
        events: &[Event],
    ) -> Result<(), StoreError> {
        let Ok(_permit) = self.permits.acquire().await else {
            return Ok(());
        };
        for (i, e) in events.iter().enumerate() {
            let head = self
                .store
                .next_delivery_of_device(device, time::now())
                .await?;
            let left = match own_turn(&head, &e.request_id) {
                Own::Attempt => match self.attempt(e, 0).await? {
                    None => continue,
                    // Its nudge brings the retry back.
                    Some(_) => &events[i + 1..],
                },
                Own::Gone => continue,
                Own::Behind => &events[i..],
            };
            for later in left {
                self.store.release_delivery(&later.request_id).await?;
            }
            if let Err(err) = wa_core::outbox::nudge(queue, device).await {
                // The sweep of overdue deliveries nudges the device later.
                tracing::warn!(device_id = %device, error = %err, "nudging the events queue failed");
            }
            return Ok(());
        }
        Ok(())
    }

    /// One attempt. `Ok(true)` when the device's next event may go (delivered, given up or
    /// skipped), `Ok(false)` when this one waits for a retry.
    async fn deliver(&self, d: &Delivery) -> Result<bool, StoreError> {
        Ok(self.attempt(&d.event, d.attempts).await?.is_none())
    }

    /// One attempt of the delivery of `event`, attempted `attempts` times before; `Some(when)`
    /// when it waits for a retry at `when`.
    async fn attempt(
        &self,
        event: &Event,
        attempts: u32,
    ) -> Result<Option<time::OffsetDateTime>, StoreError> {
        let id = &event.request_id;
        let app = self.store.get_app(event.app_id).await?;
        let Some((url, secret)) = app.and_then(|a| a.webhook_url.map(|u| (u, a.webhook_secret)))
        else {
            match self.store.record_attempt(id, &Attempt::Skipped).await {
                Ok(_) => {
                    wa_core::metrics::webhook_attempt(&Attempt::Skipped);
                    return Ok(None);
                }
                // Another consumer recorded this delivery first.
                Err(StoreError::Conflict(_)) => return Ok(None),
                Err(e) => return Err(e),
            }
        };
        let outcome = self.post(&url, &secret, event).await;
        let attempt_no = attempts as usize + 1;
        let attempt = match outcome {
            Ok(code) => Attempt::Delivered { status_code: code },
            Err((error, status_code)) => match self.config.schedule.get(attempt_no - 1) {
                Some(delay) => Attempt::Retry {
                    next: time::now() + *delay,
                    error,
                    status_code,
                },
                None => Attempt::Failed { error, status_code },
            },
        };
        let waits = match &attempt {
            Attempt::Retry { next, .. } => Some(*next),
            _ => None,
        };
        match &attempt {
            Attempt::Delivered { .. } => tracing::debug!(request_id = %id, "webhook delivered"),
            Attempt::Retry { error, .. } => {
                tracing::info!(request_id = %id, attempt = attempt_no, url = %loggable_url(&url), %error, "webhook attempt failed; will retry")
            }
            Attempt::Failed { error, .. } => {
                tracing::warn!(request_id = %id, attempt = attempt_no, url = %loggable_url(&url), %error, "webhook delivery failed for good; replayable")
            }
            Attempt::Skipped => {}
        }
        match self.store.record_attempt(id, &attempt).await {
            Ok(_) => {
                wa_core::metrics::webhook_attempt(&attempt);
                Ok(waits)
            }
            Err(StoreError::Conflict(_)) => Ok(waits),
            Err(e) => Err(e),
        }
    }

    /// POSTs the event; `Ok(status)` on 2xx, else the error and the status if there was one.
    /// No error text holds the URL.
    async fn post(
        &self,
        url: &str,
        secret: &str,
        event: &Event,
    ) -> Result<u16, (String, Option<u16>)> {
        let request = self
            .client
            .request(Method::POST, url)
            .map_err(|r| (format!("webhook_url {}", r.0), None))?;
        let body = event.body();
        let ts = time::now().unix_timestamp();
        let id = &event.request_id;
        let signature = sign(secret, id, ts, &body)
            .ok_or_else(|| ("the webhook secret is malformed".to_owned(), None))?;
        let request = request
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .header("x-wa-request-id", id)
            .body(body);
        let res = self.client.send(request).await.map_err(|e| {
            let what = match &e {
                FetchError::Refused(_) => "was refused",
                FetchError::TimedOut(_) => "timed out",
                FetchError::Failed(_) => "failed",
            };
            (format!("the request {what}: {e}"), None)
        })?;
        let status = res.status();
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err((
                format!("the receiver answered {status}"),
                Some(status.as_u16()),
            ))
        }
    }
}

/// How long a drain that finds its device's head held by the head's committer waits
/// before it looks again.
pub const HELD_RECHECK: Duration = Duration::from_secs(1);

/// What a drain does with the head of a device's queue.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Turn {
    Attempt(Delivery),
    WaitUntil(time::OffsetDateTime),
    Done,
}

/// The drain's [`Turn`] at `now`: attempt a due head; wait for a retry's time, or a
/// little while its committer holds it; nothing pending, done.
pub(crate) fn turn(head: DeviceHead, now: time::OffsetDateTime) -> Turn {
    match (head.due, head.waiting) {
        (Some(d), _) => Turn::Attempt(d),
        (None, Some(w)) if w.held_by_committer() => {
            Turn::WaitUntil(w.until.min(now + HELD_RECHECK))
        }
        (None, Some(w)) => Turn::WaitUntil(w.until),
        (None, None) => Turn::Done,
    }
}

/// What the committer of an event does with it, seeing its device's queue `head`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Own {
    /// It heads the queue and no one attempted it yet: attempt it.
    Attempt,
    /// Another pending delivery heads the queue: leave this one to the consumer.
    Behind,
    /// It is no longer pending, or the consumer has attempted it (its retries are the
    /// consumer's): nothing to do.
    Gone,
}

pub(crate) fn own_turn(head: &DeviceHead, request_id: &str) -> Own {
    let (id, attempts) = match (&head.due, &head.waiting) {
        (Some(d), _) => (&d.event.request_id, d.attempts),
        (None, Some(w)) => (&w.request_id, w.attempts),
        (None, None) => return Own::Gone,
    };
    match (id == request_id, attempts) {
        (false, _) => Own::Behind,
        (true, 0) => Own::Attempt,
        (true, _) => Own::Gone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;
    use wa_core::apps::App;
    use wa_core::store::DeliveryStatus;
    use wa_core::webhooks::{Event, EventType};
    use wa_net::test_server::{Answer, LoopbackServer};

    /// A head of the delivery `id`, due or waiting, attempted `attempts` times.
    fn head(id: &str, attempts: u32, due: bool, until: time::OffsetDateTime) -> DeviceHead {
        let mut event = Event::new(
            EventType::Message,
            Uuid::nil(),
            Uuid::nil(),
            serde_json::json!({}),
        );
        event.request_id = id.to_owned();
        let d = Delivery {
            seq: 1,
            event,
            status: DeliveryStatus::Pending,
            attempts,
            next_attempt_at: until,
            last_error: None,
            last_status_code: None,
            updated_at: until,
        };
        DeviceHead::of(
            Some(d),
            if due {
                until
            } else {
                until - Duration::from_secs(1)
            },
            false,
        )
    }

    #[test]
    fn a_drain_attempts_due_heads_and_waits_for_the_others() {
        let now = time::now();
        let in_a_minute = now + Duration::from_secs(60);
        let due = head("e", 2, true, now);
        assert!(matches!(turn(due, now), Turn::Attempt(d) if d.attempts == 2));
        assert_eq!(
            turn(head("e", 1, false, in_a_minute), now),
            Turn::WaitUntil(in_a_minute),
            "a retry: until it is due"
        );
        assert_eq!(
            turn(head("e", 0, false, in_a_minute), now),
            Turn::WaitUntil(now + HELD_RECHECK),
            "held by its committer: a look again soon"
        );
        let soon = now + Duration::from_millis(300);
        assert_eq!(
            turn(head("e", 0, false, soon), now),
            Turn::WaitUntil(soon),
            "a hold that ends sooner"
        );
        assert_eq!(turn(DeviceHead::default(), now), Turn::Done);
    }

    #[test]
    fn a_committer_attempts_its_event_only_at_the_head_and_before_anyone_else() {
        let now = time::now();
        let later = now + Duration::from_secs(30);
        // (head, what the committer of `ours` does)
        let rows = [
            (head("ours", 0, false, later), Own::Attempt),
            (head("ours", 0, true, now), Own::Attempt),
            (head("ours", 1, false, later), Own::Gone),
            (head("ours", 1, true, now), Own::Gone),
            (head("older", 1, false, later), Own::Behind),
            (head("older", 0, true, now), Own::Behind),
            (head("older", 0, false, later), Own::Behind),
            (DeviceHead::default(), Own::Gone),
        ];
        for (h, expected) in rows {
            assert_eq!(own_turn(&h, "ours"), expected, "{h:?}");
        }
    }

    #[test]
    fn schedules() {
        assert_eq!(
            parse_schedule(DEFAULT_SCHEDULE).unwrap(),
            [10, 30, 90, 300, 1800, 7200, 21600].map(Duration::from_secs)
        );
        assert_eq!(
            parse_schedule("100ms, 2s").unwrap(),
            [Duration::from_millis(100), Duration::from_secs(2)]
        );
        assert!(parse_schedule("").unwrap().is_empty());
        assert!(parse_schedule("5d").is_err());
        assert!(parse_schedule("x").is_err());
    }

    /// One App with `url`, one event of one device, and a dispatcher for them.
    struct Setup {
        dispatcher: Dispatcher,
        store: Arc<dyn Store>,
        device: Uuid,
        event_id: String,
    }

    async fn setup(url: &str, config: DispatcherConfig, lookup: Arc<dyn wa_net::Lookup>) -> Setup {
        let store: Arc<dyn Store> = Arc::new(wa_store::SqliteStore::in_memory().unwrap());
        let now = time::now();
        let app = App {
            app_id: Uuid::now_v7(),
            tenant_id: "t".into(),
            name: "a".into(),
            webhook_url: Some(url.to_owned()),
            token_hash: "h".into(),
            webhook_secret: wa_core::auth::new_webhook_secret(),
            created_at: now,
            updated_at: now,
        };
        store.insert_app(&app).await.unwrap();
        let device = Uuid::now_v7();
        let event = Event::new(
            EventType::Message,
            app.app_id,
            device,
            serde_json::json!({}),
        );
        store
            .append_events(std::slice::from_ref(&event))
            .await
            .unwrap();
        Setup {
            dispatcher: Dispatcher::with_lookup(store.clone(), config, lookup).unwrap(),
            store,
            device,
            event_id: event.request_id,
        }
    }

    fn config(schedule: &[Duration], timeout: Duration, allow_private: bool) -> DispatcherConfig {
        DispatcherConfig {
            schedule: schedule.to_vec(),
            timeout,
            allow_private_urls: allow_private,
            concurrency: 1,
        }
    }

    impl Setup {
        async fn delivery(&self) -> Delivery {
            self.store
                .get_delivery(&self.event_id)
                .await
                .unwrap()
                .unwrap()
        }

        /// Drains the device until its delivery has had `attempts` attempts.
        async fn until_attempts(&self, attempts: u32) -> Delivery {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                self.dispatcher.drain_device(self.device).await.unwrap();
                let d = self.delivery().await;
                if d.attempts >= attempts {
                    return d;
                }
                assert!(std::time::Instant::now() < deadline, "{d:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    fn last_error(d: &Delivery) -> &str {
        d.last_error.as_deref().unwrap_or_default()
    }

    #[tokio::test]
    async fn a_receiver_that_never_answers_times_out_and_is_retried() {
        let server = LoopbackServer::start(|_| Answer::Never).await;
        let s = setup(
            &server.url("/hook"),
            config(
                &[Duration::from_millis(50)],
                Duration::from_millis(300),
                true,
            ),
            Arc::new(wa_net::SystemLookup),
        )
        .await;
        let first = s.dispatcher.drain_device(s.device).await.unwrap();
        assert!(first.is_some(), "the timed-out attempt waits for its retry");
        let d = s.delivery().await;
        assert_eq!(
            (d.status, d.attempts, d.last_status_code),
            (DeliveryStatus::Pending, 1, None)
        );
        assert!(last_error(&d).starts_with("the request timed out"), "{d:?}");
        let d = s.until_attempts(2).await;
        assert_eq!((d.status, d.attempts), (DeliveryStatus::Failed, 2));
        assert!(last_error(&d).starts_with("the request timed out"), "{d:?}");
        assert_eq!(
            server.connections(),
            2,
            "the retry reached the receiver again"
        );
    }

    #[tokio::test]
    async fn one_drain_delivers_every_pending_event_of_the_device_in_order() {
        let server = LoopbackServer::start(|_| Answer::status(204, b"")).await;
        let s = setup(
            &server.url("/hook"),
            config(&[Duration::from_secs(60)], Duration::from_secs(10), true),
            Arc::new(wa_net::SystemLookup),
        )
        .await;
        let first = s.delivery().await;
        let more: Vec<Event> = (0..2)
            .map(|_| {
                Event::new(
                    EventType::Message,
                    first.event.app_id,
                    s.device,
                    serde_json::json!({}),
                )
            })
            .collect();
        s.store.append_events(&more).await.unwrap();
        assert_eq!(s.dispatcher.drain_device(s.device).await.unwrap(), None);
        let mut ids = vec![s.event_id.clone()];
        ids.extend(more.iter().map(|e| e.request_id.clone()));
        for id in &ids {
            let d = s.store.get_delivery(id).await.unwrap().unwrap();
            assert_eq!(
                (d.status, d.attempts),
                (DeliveryStatus::Delivered, 1),
                "{id}"
            );
        }
        let head = s
            .store
            .next_delivery_of_device(s.device, time::now())
            .await
            .unwrap();
        assert_eq!((head.due, head.more), (None, false), "nothing left");
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed_and_fails_with_its_status() {
        let server =
            LoopbackServer::redirecting("/hook", 307, "/elsewhere", Answer::status(204, b"")).await;
        let s = setup(
            &server.url("/hook"),
            config(&[Duration::from_secs(60)], Duration::from_secs(10), true),
            Arc::new(wa_net::SystemLookup),
        )
        .await;
        assert!(s.dispatcher.drain_device(s.device).await.unwrap().is_some());
        let d = s.delivery().await;
        assert_eq!(
            (d.status, d.attempts, d.last_status_code),
            (DeliveryStatus::Pending, 1, Some(307))
        );
        assert_eq!(
            d.last_error.as_deref(),
            Some("the receiver answered 307 Temporary Redirect")
        );
        let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
        assert_eq!(paths, ["/hook"], "the Location was not followed");
    }

    #[tokio::test]
    async fn a_name_resolving_to_a_private_address_is_refused_and_never_connected() {
        let server = LoopbackServer::start(|_| Answer::status(204, b"")).await;
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let url = format!(
            "http://hooks.example:{}/hook?token=s3cret",
            server.addr.port()
        );
        let s = setup(
            &url,
            config(&[], Duration::from_secs(10), false),
            Arc::new(wa_net::FixedLookup::new("hooks.example", &[loopback])),
        )
        .await;
        assert_eq!(s.dispatcher.drain_device(s.device).await.unwrap(), None);
        let d = s.delivery().await;
        assert_eq!(
            (d.status, d.attempts, d.last_status_code),
            (DeliveryStatus::Failed, 1, None)
        );
        let error = d.last_error.unwrap();
        assert!(
            error.starts_with("the request was refused: hooks.example resolves to 127.0.0.1"),
            "{error}"
        );
        assert!(!error.contains("s3cret"), "{error}");
        assert_eq!(server.connections(), 0, "nothing was connected");
    }

    #[tokio::test]
    async fn a_private_literal_stored_before_is_refused_at_delivery() {
        let server = LoopbackServer::start(|_| Answer::status(204, b"")).await;
        let url = format!("http://[::ffff:127.0.0.1]:{}/hook", server.addr.port());
        let s = setup(
            &url,
            config(&[], Duration::from_secs(10), false),
            Arc::new(wa_net::SystemLookup),
        )
        .await;
        s.dispatcher.drain_device(s.device).await.unwrap();
        let d = s.delivery().await;
        assert_eq!(d.status, DeliveryStatus::Failed);
        assert!(
            d.last_error
                .as_deref()
                .unwrap()
                .starts_with("webhook_url must not point to a private"),
            "{d:?}"
        );
        assert_eq!(server.connections(), 0);
    }

    /// Collects what the tracing subscriber writes.
    #[derive(Clone, Default)]
    struct Logs(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Logs {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn failed_attempts_log_and_store_the_url_without_its_query() {
        // A port nobody listens on.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let logs = Logs::default();
        let writer = logs.clone();
        let _guard = tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .finish(),
        );
        let s = setup(
            &format!("http://user:pw@127.0.0.1:{port}/hook?token=s3cret#frag"),
            config(&[Duration::from_secs(60)], Duration::from_secs(10), true),
            Arc::new(wa_net::SystemLookup),
        )
        .await;
        s.dispatcher.drain_device(s.device).await.unwrap();
        let error = s.delivery().await.last_error.unwrap();
        assert!(error.starts_with("the request failed: "), "{error}");
        let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert!(
            logged.contains("webhook attempt failed; will retry"),
            "{logged}"
        );
        assert!(
            logged.contains(&format!("url=http://127.0.0.1:{port}/hook ")),
            "{logged}"
        );
        for secret in ["s3cret", "pw@", "frag"] {
            assert!(!logged.contains(secret), "{logged}");
            assert!(!error.contains(secret), "{error}");
        }
    }
}
