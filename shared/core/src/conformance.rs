//! The store conformance suite: every adapter of the store port runs it in its tests
//! (`wa_core::conformance::app_store(store).await`). Each check panics with what broke.
//!
//! The suite uses fresh random tenant ids, so it can run against a shared backend.

use std::sync::Arc;

use uuid::Uuid;

use crate::apps::App;
use crate::store::{AppStore, AppUpdate, PageRequest, StoreError};
use crate::{auth, time};

fn app(tenant: &str, name: &str) -> App {
    let now = time::now();
    App {
        app_id: Uuid::now_v7(),
        tenant_id: tenant.to_owned(),
        name: name.to_owned(),
        webhook_url: Some("https://example.com/hook".into()),
        token_hash: auth::hash_token(&auth::new_app_token()),
        webhook_secret: auth::new_webhook_secret(),
        created_at: now,
        updated_at: now,
    }
}

fn tenant() -> String {
    format!("t-{}", Uuid::new_v4())
}

pub use devices::device as new_device;

/// A queued outbound text message (`text`) of `device_id` and `app_id`, created at `at`:
/// the fixture of the message checks here and in the adapters' own tests.
pub fn outbound_text(
    device_id: Uuid,
    app_id: Uuid,
    text: &str,
    at: time::OffsetDateTime,
) -> crate::messages::Message {
    use crate::messages::*;
    Message {
        message_id: new_message_id(),
        device_id,
        app_id,
        direction: Direction::Outbound,
        to: "15550001111@s.whatsapp.net".into(),
        from: None,
        from_phone: None,
        chat: "15550001111@s.whatsapp.net".into(),
        kind: MessageType::Text,
        status: MessageStatus::Queued,
        error: None,
        attempts: 0,
        idempotency_key: None,
        content: Some(Content::Text { text: text.into() }),
        text: Some(text.into()),
        media_path: None,
        mime_type: None,
        media_size: None,
        media_sha256: None,
        created_at: at,
        updated_at: at,
        sent_at: None,
        next_attempt_at: None,
    }
}

/// Runs every App store check.
pub async fn app_store(store: Arc<dyn AppStore>) {
    insert_get_round_trip(&*store).await;
    names_are_unique_per_tenant(&*store).await;
    token_hash_lookup(&*store).await;
    listing_pages_in_order(&*store).await;
    updates_are_partial_and_checked(&*store).await;
    delete(&*store).await;
    racing_inserts_have_one_winner(store.clone()).await;
    store.ping().await.expect("ping");
}

async fn insert_get_round_trip(s: &dyn AppStore) {
    let a = app(&tenant(), "round trip");
    s.insert_app(&a).await.expect("insert");
    assert_eq!(
        s.get_app(a.app_id).await.unwrap(),
        Some(a.clone()),
        "get returns what was inserted"
    );
    assert_eq!(s.get_app(Uuid::now_v7()).await.unwrap(), None, "unknown id");
    let mut b = app(&a.tenant_id, "no webhook");
    b.webhook_url = None;
    s.insert_app(&b).await.unwrap();
    assert_eq!(
        s.get_app(b.app_id).await.unwrap().unwrap().webhook_url,
        None
    );
}

async fn names_are_unique_per_tenant(s: &dyn AppStore) {
    let t = tenant();
    s.insert_app(&app(&t, "shop")).await.unwrap();
    assert_eq!(
        s.insert_app(&app(&t, "shop")).await,
        Err(StoreError::Conflict("app_name")),
        "same name in one tenant"
    );
    s.insert_app(&app(&tenant(), "shop"))
        .await
        .expect("same name in another tenant");
    s.insert_app(&app(&t, "Shop"))
        .await
        .expect("names are case-sensitive");
}

async fn token_hash_lookup(s: &dyn AppStore) {
    let a = app(&tenant(), "tokens");
    s.insert_app(&a).await.unwrap();
    let found = s.app_by_token_hash(&a.token_hash).await.unwrap();
    assert_eq!(found.map(|x| x.app_id), Some(a.app_id));
    assert_eq!(
        s.app_by_token_hash(&auth::hash_token("nope"))
            .await
            .unwrap(),
        None
    );
    let mut dup = app(&a.tenant_id, "dup token");
    dup.token_hash = a.token_hash.clone();
    assert_eq!(
        s.insert_app(&dup).await,
        Err(StoreError::Conflict("token_hash"))
    );
}

async fn listing_pages_in_order(s: &dyn AppStore) {
    let t = tenant();
    let mut ids = Vec::new();
    for i in 0..5 {
        let a = app(&t, &format!("list {i}"));
        s.insert_app(&a).await.unwrap();
        ids.push(a.app_id);
    }
    s.insert_app(&app(&tenant(), "other tenant")).await.unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = s
            .list_apps(&t, PageRequest { limit: 2, after })
            .await
            .unwrap();
        assert!(page.items.len() <= 2, "limit respected");
        assert!(
            page.items.iter().all(|a| a.tenant_id == t),
            "only the tenant's apps"
        );
        seen.extend(page.items.iter().map(|a| a.app_id));
        pages += 1;
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
        assert!(pages < 10, "pagination terminates");
    }
    assert_eq!(seen, ids, "every app once, in creation order");
    let empty = s
        .list_apps(
            &tenant(),
            PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert!(empty.items.is_empty() && empty.next.is_none());
}

async fn updates_are_partial_and_checked(s: &dyn AppStore) {
    let t = tenant();
    let a = app(&t, "before");
    s.insert_app(&a).await.unwrap();
    s.insert_app(&app(&t, "taken")).await.unwrap();
    let later = a.updated_at + ::time::Duration::seconds(5);
    let renamed = s
        .update_app(
            a.app_id,
            &AppUpdate {
                name: Some("after".into()),
                updated_at: Some(later),
                ..AppUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.name, "after");
    assert_eq!(renamed.updated_at, later);
    assert_eq!(renamed.webhook_url, a.webhook_url, "untouched fields stay");
    assert_eq!(renamed.token_hash, a.token_hash);
    assert_eq!(renamed.created_at, a.created_at);
    // the old name is free again
    s.insert_app(&app(&t, "before"))
        .await
        .expect("old name is free after a rename");
    let cleared = s
        .update_app(
            a.app_id,
            &AppUpdate {
                webhook_url: Some(None),
                token_hash: Some("h2".into()),
                webhook_secret: Some("whsec_new".into()),
                ..AppUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.webhook_url, None);
    assert_eq!(cleared.webhook_secret, "whsec_new");
    assert_eq!(
        s.app_by_token_hash(&a.token_hash).await.unwrap(),
        None,
        "old token hash is gone"
    );
    assert_eq!(
        s.app_by_token_hash("h2").await.unwrap().map(|x| x.app_id),
        Some(a.app_id)
    );
    assert_eq!(
        s.update_app(
            a.app_id,
            &AppUpdate {
                name: Some("taken".into()),
                ..AppUpdate::default()
            }
        )
        .await,
        Err(StoreError::Conflict("app_name")),
        "rename onto a taken name"
    );
    assert_eq!(s.get_app(a.app_id).await.unwrap().unwrap().name, "after");
    assert_eq!(
        s.update_app(Uuid::now_v7(), &AppUpdate::default()).await,
        Err(StoreError::NotFound)
    );
}

async fn delete(s: &dyn AppStore) {
    let a = app(&tenant(), "doomed");
    s.insert_app(&a).await.unwrap();
    s.delete_app(a.app_id).await.unwrap();
    assert_eq!(s.get_app(a.app_id).await.unwrap(), None);
    assert_eq!(s.app_by_token_hash(&a.token_hash).await.unwrap(), None);
    assert_eq!(s.delete_app(a.app_id).await, Err(StoreError::NotFound));
    s.insert_app(&app(&a.tenant_id, "doomed"))
        .await
        .expect("name free after delete");
}

async fn racing_inserts_have_one_winner(s: Arc<dyn AppStore>) {
    let t = tenant();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let s = s.clone();
            let a = app(&t, "race");
            tokio::spawn(async move { s.insert_app(&a).await })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => wins += 1,
            Err(StoreError::Conflict("app_name")) => {}
            Err(e) => panic!("racing insert failed with {e}"),
        }
    }
    assert_eq!(wins, 1, "exactly one of the racing inserts wins");
}

pub(crate) mod devices {
    use super::*;
    use crate::devices::{Device, DeviceStatus as S, DeviceUpdate, LastError, Qr};
    use crate::provider::Presence;
    use crate::store::DeviceStore;

    /// An `initializing` device of tenant `t` (also the adapters' own tests' fixture).
    pub fn device(app_id: Uuid, name: &str) -> Device {
        let now = time::now();
        Device {
            device_id: Uuid::now_v7(),
            app_id,
            tenant_id: "t".into(),
            device_name: name.into(),
            status: S::Initializing,
            qr: None,
            pair_code: None,
            wa_number: None,
            wa_device_jid: None,
            linked_at: None,
            last_error: None,
            created_at: now,
            updated_at: now,
        }
    }

    pub(super) async fn run(s: Arc<dyn DeviceStore>) {
        let app = Uuid::now_v7();
        // round trip, with every optional field set
        let mut d = device(app, "main");
        d.qr = Some(Qr::new("2@abc".into(), time::now()));
        assert!(
            d.qr.as_ref()
                .unwrap()
                .image
                .starts_with("data:image/png;base64,")
        );
        d.last_error = Some(LastError {
            code: wa_errors::ErrorCode::TooManyDevices,
            message: "m".into(),
            at: time::now(),
        });
        d.status = S::QrGenerated;
        s.insert_device(&d).await.unwrap();
        assert_eq!(s.get_device(d.device_id).await.unwrap(), Some(d.clone()));
        assert_eq!(s.get_device(Uuid::now_v7()).await.unwrap(), None);

        // live names are unique per App; another App may reuse one
        assert_eq!(
            s.insert_device(&device(app, "main")).await,
            Err(StoreError::Conflict("device_name"))
        );
        s.insert_device(&device(Uuid::now_v7(), "main"))
            .await
            .unwrap();

        // conditional updates
        let u = DeviceUpdate {
            status: Some(S::Connected),
            qr: Some(None),
            wa_number: Some(Some("15551230001".into())),
            linked_at: Some(Some(time::now())),
            ..DeviceUpdate::default()
        };
        assert_eq!(
            s.update_device(d.device_id, &u, &[S::Expired], &[]).await,
            Err(StoreError::Conflict("status"))
        );
        let c = s
            .update_device(d.device_id, &u, &[S::QrGenerated], &[])
            .await
            .unwrap();
        assert_eq!(c.status, S::Connected);
        assert_eq!(c.qr, None);
        assert_eq!(c.wa_number.as_deref(), Some("15551230001"));
        assert_eq!(c.last_error, d.last_error, "untouched fields stay");
        assert_eq!(s.get_device(d.device_id).await.unwrap(), Some(c.clone()));
        assert_eq!(
            s.update_device(Uuid::now_v7(), &u, &[], &[]).await,
            Err(StoreError::NotFound)
        );

        // a destroyed device frees its name, keeps its record
        s.update_device(d.device_id, &DeviceUpdate::status(S::Destroyed), &[], &[])
            .await
            .unwrap();
        let again = device(app, "main");
        s.insert_device(&again)
            .await
            .expect("name reusable after destroy");
        assert_eq!(
            s.get_device(d.device_id).await.unwrap().unwrap().status,
            S::Destroyed
        );

        // listing: per App, status filter, pages in order
        let app2 = Uuid::now_v7();
        let mut ids = Vec::new();
        for i in 0..5 {
            let x = device(app2, &format!("d{i}"));
            s.insert_device(&x).await.unwrap();
            ids.push(x.device_id);
        }
        s.update_device(ids[1], &DeviceUpdate::status(S::Connected), &[], &[])
            .await
            .unwrap();
        s.update_device(ids[3], &DeviceUpdate::status(S::Connected), &[], &[])
            .await
            .unwrap();
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let p = s
                .list_devices(app2, None, PageRequest { limit: 2, after })
                .await
                .unwrap();
            seen.extend(p.items.iter().map(|x| x.device_id));
            match p.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, ids);
        let connected = s
            .list_devices(
                app2,
                Some(S::Connected),
                PageRequest {
                    limit: 10,
                    after: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(
            connected
                .items
                .iter()
                .map(|x| x.device_id)
                .collect::<Vec<_>>(),
            vec![ids[1], ids[3]]
        );
        let across = s
            .devices_with_status(
                &[S::Connected],
                PageRequest {
                    limit: 200,
                    after: None,
                },
            )
            .await
            .unwrap();
        let found: Vec<_> = across.items.iter().map(|x| x.device_id).collect();
        assert!(found.contains(&ids[1]) && found.contains(&ids[3]) && !found.contains(&ids[0]));

        // presence cache
        let p = Presence {
            jid: "15550001111@s.whatsapp.net".into(),
            presence: "available".into(),
            chat_state: Some("composing".into()),
            last_seen: None,
            updated_at: time::now(),
        };
        s.put_presence(ids[0], &p, &[]).await.unwrap();
        assert_eq!(
            s.get_presence(ids[0], &p.jid).await.unwrap(),
            Some(p.clone())
        );
        let p2 = Presence {
            presence: "unavailable".into(),
            chat_state: None,
            ..p.clone()
        };
        s.put_presence(ids[0], &p2, &[]).await.unwrap();
        assert_eq!(s.get_presence(ids[0], &p.jid).await.unwrap(), Some(p2));
        assert_eq!(s.get_presence(ids[1], &p.jid).await.unwrap(), None);

        // racing inserts of one live name: one winner
        let app3 = Uuid::now_v7();
        let tasks: Vec<_> = (0..12)
            .map(|_| {
                let s = s.clone();
                let x = device(app3, "race");
                tokio::spawn(async move { s.insert_device(&x).await })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            if t.await.unwrap().is_ok() {
                wins += 1;
            }
        }
        assert_eq!(wins, 1);
    }
}

/// Runs every device store check.
pub async fn device_store(store: Arc<dyn crate::store::DeviceStore>) {
    devices::run(store).await;
}

/// How the queue checks are timed and how strict they are about receipts: the local queue
/// counts milliseconds, SQS whole seconds, so one suite needs per-adapter timings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueProfile {
    /// A visibility timeout or delay the checks wait out: honoured exactly by the adapter
    /// (SQS rounds up to whole seconds, so at least 1 s there) and short enough for a test.
    pub unit: std::time::Duration,
    /// How late a due message may reappear (timer granularity of the backend).
    pub slack: std::time::Duration,
    /// The adapter's `max_receives` (at least 2).
    pub max_receives: u32,
    /// Whether a used or superseded receipt is refused with `InvalidReceipt`. The local
    /// queue always refuses it; SQS standard queues (and moto for every queue) accept it
    /// silently, so there the checks only require `Ok` or `InvalidReceipt`.
    pub rejects_stale_receipts: bool,
}

impl QueueProfile {
    /// The local queue's profile: 300 ms units, stale receipts refused.
    pub fn local(max_receives: u32) -> Self {
        QueueProfile {
            unit: std::time::Duration::from_millis(300),
            slack: std::time::Duration::from_millis(100),
            max_receives,
            rejects_stale_receipts: true,
        }
    }

    /// Waits until a message hidden or delayed for one unit is due again.
    async fn wait_unit(&self) {
        tokio::time::sleep(self.unit + self.slack).await;
    }
}

/// Runs every queue check on one adapter that supports groups and delays on the same
/// queue (the local queue). `max_receives` is the adapter's configured limit (at least 2).
pub async fn queue(q: Arc<dyn crate::queue::Queue>, max_receives: u32) {
    let p = QueueProfile::local(max_receives);
    let name = format!("conf-{}", Uuid::new_v4());
    queue_basics(q.as_ref(), &name, p).await;
    queue_groups(q.as_ref(), &name, p).await;
    queue_delay(q.as_ref(), &name, p).await;
    queue_dead_letters(q.as_ref(), &format!("{name}-dlq"), p).await;
}

/// Asserts how a receipt that is no longer current is answered.
fn check_stale(p: QueueProfile, got: Result<(), crate::queue::QueueError>, what: &str) {
    use crate::queue::QueueError::InvalidReceipt;
    if p.rejects_stale_receipts {
        assert_eq!(got, Err(InvalidReceipt), "{what}");
    } else {
        assert!(
            matches!(got, Ok(()) | Err(InvalidReceipt)),
            "{what}: {got:?}"
        );
    }
}

/// Send, receive, delete, visibility timeouts, receipts and depth on `qn`, which must be
/// empty and may be a FIFO or a standard queue (every message here is ungrouped).
pub async fn queue_basics(q: &dyn crate::queue::Queue, qn: &str, p: QueueProfile) {
    use crate::queue::QueueError::InvalidReceipt;
    use std::time::Duration;
    let long = Duration::from_secs(60);

    // send, receive, delete
    let id = q.send(qn, None, "a", Duration::ZERO).await.unwrap();
    let got = q.receive(qn, 10, long).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].body.as_str(), got[0].receive_count), ("a", 1));
    assert_eq!(got[0].message_id, id, "send returns the message id");
    assert_eq!(got[0].group, None);
    assert!(
        q.receive(qn, 10, long).await.unwrap().is_empty(),
        "in flight is invisible"
    );
    q.delete(qn, &got[0].receipt).await.unwrap();
    check_stale(p, q.delete(qn, &got[0].receipt).await, "a used receipt");
    assert!(
        q.receive(qn, 10, Duration::ZERO).await.unwrap().is_empty(),
        "a deleted message does not come back"
    );
    // Receipts that were never issued are refused by every adapter.
    assert_eq!(q.delete(qn, "no-such-receipt").await, Err(InvalidReceipt));
    assert_eq!(
        q.retry_after(qn, "no-such-receipt", Duration::ZERO).await,
        Err(InvalidReceipt)
    );

    // visibility timeout: an undeleted message comes back with a higher count
    q.send(qn, None, "b", Duration::ZERO).await.unwrap();
    let first = q.receive(qn, 10, p.unit).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        q.receive(qn, 10, long).await.unwrap().is_empty(),
        "hidden for its visibility timeout"
    );
    p.wait_unit().await;
    let second = q.receive(qn, 10, long).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!((second[0].body.as_str(), second[0].receive_count), ("b", 2));
    check_stale(
        p,
        q.delete(qn, &first[0].receipt).await,
        "a stale receipt cannot delete",
    );
    q.delete(qn, &second[0].receipt).await.unwrap();
    assert!(
        q.receive(qn, 10, Duration::ZERO).await.unwrap().is_empty(),
        "deleted with its current receipt"
    );

    // retry_after with zero delay makes a message visible again at once
    q.send(qn, None, "c", Duration::ZERO).await.unwrap();
    let c = q.receive(qn, 10, long).await.unwrap();
    q.retry_after(qn, &c[0].receipt, Duration::ZERO)
        .await
        .unwrap();
    let c2 = q.receive(qn, 10, long).await.unwrap();
    assert_eq!((c2[0].body.as_str(), c2[0].receive_count), ("c", 2));
    check_stale(
        p,
        q.retry_after(qn, &c[0].receipt, long).await,
        "a superseded receipt cannot hide the message",
    );
    q.delete(qn, &c2[0].receipt).await.unwrap();

    // depth
    q.send(qn, None, "x", Duration::ZERO).await.unwrap();
    q.send(qn, None, "y", Duration::ZERO).await.unwrap();
    let depth = q.depth(qn).await.unwrap();
    assert_eq!((depth.visible, depth.in_flight), (2, 0));
    let x = q.receive(qn, 1, long).await.unwrap();
    assert_eq!(x.len(), 1, "max is honoured");
    let depth = q.depth(qn).await.unwrap();
    assert_eq!((depth.visible, depth.in_flight), (1, 1));
    q.delete(qn, &x[0].receipt).await.unwrap();
    let y = q.receive(qn, 1, long).await.unwrap();
    q.delete(qn, &y[0].receipt).await.unwrap();
    let depth = q.depth(qn).await.unwrap();
    assert_eq!((depth.visible, depth.in_flight), (0, 0));
}

/// Per-group FIFO on `qn` (empty): one message in flight per group, in order, groups
/// independent, and `retry_after` keeps its group blocked.
pub async fn queue_groups(q: &dyn crate::queue::Queue, qn: &str, p: QueueProfile) {
    use std::time::Duration;
    let long = Duration::from_secs(60);

    for b in ["g1-1", "g1-2", "g1-3"] {
        q.send(qn, Some("g1"), b, Duration::ZERO).await.unwrap();
    }
    q.send(qn, Some("g2"), "g2-1", Duration::ZERO)
        .await
        .unwrap();
    let batch = q.receive(qn, 10, long).await.unwrap();
    let mut got: Vec<_> = batch
        .iter()
        .map(|r| (r.body.as_str(), r.group.as_deref().unwrap_or("")))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [("g1-1", "g1"), ("g2-1", "g2")],
        "one message per group, the oldest"
    );
    assert!(q.receive(qn, 10, long).await.unwrap().is_empty());
    for r in &batch {
        q.delete(qn, &r.receipt).await.unwrap();
    }
    let next = q.receive(qn, 10, long).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].body, "g1-2");
    // retry_after keeps the group blocked, then redelivers the same message first
    q.retry_after(qn, &next[0].receipt, p.unit).await.unwrap();
    assert!(q.receive(qn, 10, long).await.unwrap().is_empty());
    p.wait_unit().await;
    let again = q.receive(qn, 10, long).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].body.as_str(), again[0].receive_count),
        ("g1-2", 2)
    );
    q.delete(qn, &again[0].receipt).await.unwrap();
    let last = q.receive(qn, 10, long).await.unwrap();
    assert_eq!(last[0].body, "g1-3");
    q.delete(qn, &last[0].receipt).await.unwrap();
}

/// A delayed message on `qn` (empty) stays invisible for its delay.
pub async fn queue_delay(q: &dyn crate::queue::Queue, qn: &str, p: QueueProfile) {
    use std::time::Duration;
    let long = Duration::from_secs(60);

    q.send(qn, None, "later", p.unit).await.unwrap();
    q.send(qn, None, "now", Duration::ZERO).await.unwrap();
    let n = q.receive(qn, 10, long).await.unwrap();
    assert_eq!(n.len(), 1, "delayed");
    assert_eq!(n[0].body, "now");
    q.delete(qn, &n[0].receipt).await.unwrap();
    p.wait_unit().await;
    let d = q.receive(qn, 10, long).await.unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].body.as_str(), d[0].receive_count), ("later", 1));
    q.delete(qn, &d[0].receipt).await.unwrap();
}

/// Dead letters on `qn` (empty, with groups): after `max_receives` deliveries a message
/// moves aside and no longer blocks its group.
pub async fn queue_dead_letters(q: &dyn crate::queue::Queue, qn: &str, p: QueueProfile) {
    use std::time::Duration;
    let long = Duration::from_secs(60);

    assert!(q.dead_letters(qn, 10).await.unwrap().is_empty());
    q.send(qn, Some("g"), "poison", Duration::ZERO)
        .await
        .unwrap();
    q.send(qn, Some("g"), "behind", Duration::ZERO)
        .await
        .unwrap();
    for i in 1..=p.max_receives {
        let r = q.receive(qn, 10, p.unit).await.unwrap();
        assert_eq!(r.len(), 1, "delivery {i}");
        assert_eq!((r[0].body.as_str(), r[0].receive_count), ("poison", i));
        p.wait_unit().await;
    }
    let r = q.receive(qn, 10, long).await.unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(
        r[0].body, "behind",
        "the poison message no longer blocks its group"
    );
    let dead = q.dead_letters(qn, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "poison");
    assert_eq!(dead[0].group.as_deref(), Some("g"));
    assert!(!dead[0].reason.is_empty());
    assert_eq!(
        q.dead_letters(qn, 10).await.unwrap(),
        dead,
        "reading the dead letters does not consume them"
    );
}

/// Runs every message store check.
pub async fn message_store(s: Arc<dyn crate::store::MessageStore>) {
    use crate::messages::*;
    use crate::store::{Created, IdempotencyRecord, StoreError};

    let device = Uuid::now_v7();
    let app = Uuid::now_v7();
    let msg = |n: i64| {
        let t = time::now() + ::time::Duration::milliseconds(n);
        outbound_text(device, app, &format!("m{n}"), t)
    };

    // round trip, media, duplicate id
    let m1 = msg(0);
    assert_eq!(
        s.create_message(&m1, Some(b"bytes"), None, &[])
            .await
            .unwrap(),
        Created::Created
    );
    assert_eq!(
        s.get_message(device, &m1.message_id).await.unwrap(),
        Some(m1.clone())
    );
    assert_eq!(
        s.get_message(Uuid::now_v7(), &m1.message_id).await.unwrap(),
        None
    );
    assert_eq!(
        s.outbound_media(device, &m1.message_id)
            .await
            .unwrap()
            .as_deref(),
        Some(&b"bytes"[..])
    );
    s.delete_outbound_media(device, &m1.message_id)
        .await
        .unwrap();
    assert_eq!(
        s.outbound_media(device, &m1.message_id).await.unwrap(),
        None
    );
    assert_eq!(
        s.create_message(&m1, None, None, &[]).await,
        Err(StoreError::Conflict("message_id"))
    );

    // conditional updates
    let u = MessageUpdate {
        status: Some(MessageStatus::Sending),
        attempts: Some(1),
        ..MessageUpdate::default()
    };
    assert_eq!(
        s.update_message(device, &m1.message_id, &u, &[MessageStatus::Sent], &[])
            .await,
        Err(StoreError::Conflict("status"))
    );
    let up = s
        .update_message(device, &m1.message_id, &u, &[MessageStatus::Queued], &[])
        .await
        .unwrap();
    assert_eq!((up.status, up.attempts), (MessageStatus::Sending, 1));
    assert_eq!(up.text, m1.text, "untouched fields stay");
    assert_eq!(
        s.update_message(device, "nope", &u, &[], &[]).await,
        Err(StoreError::NotFound)
    );

    // pending: queued and sending, oldest first
    let m2 = msg(10);
    s.create_message(&m2, None, None, &[]).await.unwrap();
    let pending: Vec<_> = s
        .pending_messages(Some(device), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.message_id)
        .collect();
    assert_eq!(pending, vec![m1.message_id.clone(), m2.message_id.clone()]);
    s.update_message(
        device,
        &m1.message_id,
        &MessageUpdate {
            status: Some(MessageStatus::Sent),
            ..Default::default()
        },
        &[],
        &[],
    )
    .await
    .unwrap();
    let pending: Vec<_> = s
        .pending_messages(None, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.message_id)
        .collect();
    assert!(pending.contains(&m2.message_id) && !pending.contains(&m1.message_id));

    // listing newest first, in pages
    let mut ids = vec![m1.message_id.clone(), m2.message_id.clone()];
    for i in 0..5 {
        let m = msg(20 + i);
        s.create_message(&m, None, None, &[]).await.unwrap();
        ids.push(m.message_id);
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let (items, next) = s.list_messages(device, 3, cursor.as_ref()).await.unwrap();
        seen.extend(items.into_iter().map(|m| m.message_id));
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ids, "newest first, every message once");

    // idempotency: one winner among racers, the record, responses, expiry
    let key = format!("k-{}", Uuid::new_v4());
    let rec = |message_id: &str, expires_in: i64| IdempotencyRecord {
        app_id: app,
        key: key.clone(),
        request_hash: "h1".into(),
        device_id: device,
        message_id: message_id.to_owned(),
        response: None,
        expires_at: time::now() + ::time::Duration::seconds(expires_in),
    };
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            let m = msg(100 + i);
            let r = rec(&m.message_id, 3600);
            tokio::spawn(async move {
                (
                    m.message_id.clone(),
                    s.create_message(&m, None, Some(&r), &[]).await.unwrap(),
                )
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (id, outcome) = t.await.unwrap();
        match outcome {
            Created::Created => winners.push(id),
            Created::Existing(r) => assert_eq!(r.key, key),
        }
    }
    assert_eq!(winners.len(), 1, "one winner per key");
    let stored = s.get_idempotency(app, &key).await.unwrap().unwrap();
    assert_eq!(stored.message_id, winners[0]);
    assert_eq!(stored.response, None);
    s.set_idempotency_response(app, &key, 200, "{\"a\":1}")
        .await
        .unwrap();
    s.set_idempotency_response(app, &key, 500, "later")
        .await
        .unwrap();
    assert_eq!(
        s.get_idempotency(app, &key)
            .await
            .unwrap()
            .unwrap()
            .response,
        Some((200, "{\"a\":1}".into())),
        "the first answer stays"
    );
    s.clear_idempotency_response(app, &key).await.unwrap();
    assert_eq!(
        s.get_idempotency(app, &key)
            .await
            .unwrap()
            .unwrap()
            .response,
        None
    );
    assert_eq!(
        s.get_idempotency(Uuid::now_v7(), &key).await.unwrap(),
        None,
        "keys are per App"
    );

    // an expired key is ignored and can be taken again
    let old_key = format!("old-{}", Uuid::new_v4());
    let m = msg(300);
    let mut r = rec(&m.message_id, -10);
    r.key = old_key.clone();
    assert_eq!(
        s.create_message(&m, None, Some(&r), &[]).await.unwrap(),
        Created::Created
    );
    assert_eq!(
        s.get_idempotency(app, &old_key).await.unwrap(),
        None,
        "expired keys are not read"
    );
    let m = msg(301);
    let mut r = rec(&m.message_id, 3600);
    r.key = old_key.clone();
    assert_eq!(
        s.create_message(&m, None, Some(&r), &[]).await.unwrap(),
        Created::Created
    );
    assert_eq!(
        s.get_idempotency(app, &old_key)
            .await
            .unwrap()
            .unwrap()
            .message_id,
        m.message_id
    );
    assert!(
        s.purge_expired_idempotency(time::now() + ::time::Duration::days(2))
            .await
            .unwrap()
            >= 1
    );
    assert_eq!(s.get_idempotency(app, &old_key).await.unwrap(), None);
}

/// Runs every event store check (the outbox).
pub async fn event_store(s: Arc<dyn crate::store::Store>) {
    use crate::store::{Attempt, DeliveryStatus, StoreError};
    use crate::webhooks::{Event, EventType};

    let app = Uuid::now_v7();
    let (d1, d2) = (Uuid::now_v7(), Uuid::now_v7());
    let ev = |device: Uuid, n: u32| {
        Event::new(
            EventType::Presence,
            app,
            device,
            serde_json::json!({"n": n}),
        )
    };
    let now = || time::now();

    // Events written with a change are in the outbox with it.
    let dev = devices::device(app, "outbox");
    s.insert_device(&dev).await.unwrap();
    let e0 = Event::new(
        EventType::DeviceConnected,
        app,
        dev.device_id,
        serde_json::json!({}),
    );
    s.update_device(
        dev.device_id,
        &crate::devices::DeviceUpdate::status(crate::devices::DeviceStatus::Connected),
        &[],
        std::slice::from_ref(&e0),
    )
    .await
    .unwrap();
    let got = s.get_delivery(&e0.request_id).await.unwrap().unwrap();
    assert_eq!((got.status, got.attempts), (DeliveryStatus::Pending, 0));
    assert_eq!(got.event, e0);
    // A refused conditional change writes no event.
    let e_no = Event::new(
        EventType::DeviceConnected,
        app,
        dev.device_id,
        serde_json::json!({}),
    );
    assert!(
        s.update_device(
            dev.device_id,
            &crate::devices::DeviceUpdate::default(),
            &[crate::devices::DeviceStatus::Expired],
            std::slice::from_ref(&e_no)
        )
        .await
        .is_err()
    );
    assert_eq!(s.get_delivery(&e_no.request_id).await.unwrap(), None);
    s.record_attempt(&e0.request_id, &Attempt::Delivered { status_code: 200 })
        .await
        .unwrap();

    // Per device, only the oldest pending event is due, in order.
    let a: Vec<Event> = (0..3).map(|n| ev(d1, n)).collect();
    let b: Vec<Event> = (0..2).map(|n| ev(d2, n)).collect();
    s.append_events(&a).await.unwrap();
    s.append_events(&b).await.unwrap();
    let due = s.due_deliveries(now(), 100).await.unwrap();
    let ids: Vec<_> = due.iter().map(|d| d.event.request_id.clone()).collect();
    assert!(ids.contains(&a[0].request_id) && ids.contains(&b[0].request_id));
    assert!(!ids.contains(&a[1].request_id), "one per device");
    assert_eq!(
        s.next_delivery_of_device(d1, now())
            .await
            .unwrap()
            .unwrap()
            .event,
        a[0]
    );

    // A retry keeps the device's queue behind it until it is due.
    let later = now() + ::time::Duration::seconds(60);
    let r = s
        .record_attempt(
            &a[0].request_id,
            &Attempt::Retry {
                next: later,
                error: "503".into(),
                status_code: Some(503),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.attempts, r.last_status_code),
        (DeliveryStatus::Pending, 1, Some(503))
    );
    assert!(
        s.next_delivery_of_device(d1, now())
            .await
            .unwrap()
            .is_none(),
        "blocked until due"
    );
    let again = s
        .next_delivery_of_device(d1, later + ::time::Duration::seconds(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again.event.request_id, a[0].request_id,
        "the same event, same id, first"
    );
    s.record_attempt(&a[0].request_id, &Attempt::Delivered { status_code: 204 })
        .await
        .unwrap();
    assert_eq!(
        s.next_delivery_of_device(d1, now())
            .await
            .unwrap()
            .unwrap()
            .event,
        a[1]
    );
    assert_eq!(
        s.record_attempt(&a[0].request_id, &Attempt::Delivered { status_code: 200 })
            .await,
        Err(StoreError::Conflict("status")),
        "only pending deliveries take attempts"
    );
    assert_eq!(
        s.record_attempt("nope", &Attempt::Skipped).await,
        Err(StoreError::NotFound)
    );

    // Exhausted: failed, listed, replayable.
    let f = s
        .record_attempt(
            &a[1].request_id,
            &Attempt::Failed {
                error: "timeout".into(),
                status_code: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(f.status, DeliveryStatus::Failed);
    assert_eq!(
        s.next_delivery_of_device(d1, now())
            .await
            .unwrap()
            .unwrap()
            .event,
        a[2],
        "a failed one does not block"
    );
    let (failed, _) = s
        .list_deliveries(app, Some(DeliveryStatus::Failed), 10, None)
        .await
        .unwrap();
    assert_eq!(
        failed
            .iter()
            .map(|d| d.event.request_id.clone())
            .collect::<Vec<_>>(),
        vec![a[1].request_id.clone()]
    );
    let (all, _) = s.list_deliveries(app, None, 100, None).await.unwrap();
    assert!(all.len() >= 6);
    assert!(all.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
    let (page, next) = s.list_deliveries(app, None, 2, None).await.unwrap();
    assert_eq!(page.len(), 2);
    let (page2, _) = s.list_deliveries(app, None, 2, next).await.unwrap();
    assert!(page2[0].seq < page[1].seq);
    let re = s.redeliver(&a[1].request_id).await.unwrap();
    assert_eq!((re.status, re.attempts), (DeliveryStatus::Pending, 0));
    assert_eq!(
        s.redeliver(&a[1].request_id).await,
        Err(StoreError::Conflict("status"))
    );
    assert_eq!(s.redeliver("nope").await, Err(StoreError::NotFound));
    let (none, _) = s
        .list_deliveries(Uuid::now_v7(), None, 10, None)
        .await
        .unwrap();
    assert!(none.is_empty(), "per App");
}
