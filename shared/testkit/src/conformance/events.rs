//! The event store checks: the outbox, written with the changes that cause its events.

use std::sync::Arc;

use uuid::Uuid;
use wa_core::devices::{DeviceStatus, DeviceUpdate};
use wa_core::store::{Attempt, DeliveryStatus, DeviceHead, Store, StoreError};
use wa_core::time;
use wa_core::webhooks::{Event, EventType};

use crate::fixtures::device;

/// Runs every event store check (the outbox).
pub async fn event_store(s: Arc<dyn Store>) {
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
    let dev = device(app, "outbox");
    s.insert_device(&dev).await.unwrap();
    let e0 = Event::new(
        EventType::DeviceConnected,
        app,
        dev.device_id,
        serde_json::json!({}),
    );
    s.update_device(
        dev.device_id,
        &DeviceUpdate::status(DeviceStatus::Connected),
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
            &DeviceUpdate::default(),
            &[DeviceStatus::Expired],
            std::slice::from_ref(&e_no)
        )
        .await
        .is_err()
    );
    assert_eq!(s.get_delivery(&e_no.request_id).await.unwrap(), None);
    s.record_attempt(&e0.request_id, &Attempt::Delivered { status_code: 200 })
        .await
        .unwrap();

    // Per device, only the oldest pending event is due, in order. (`due_deliveries` starts
    // from an index on DynamoDB: an event of the last moment may wait for the next poll;
    // `next_delivery_of_device` reads the table.)
    let a: Vec<Event> = (0..3).map(|n| ev(d1, n)).collect();
    let b: Vec<Event> = (0..2).map(|n| ev(d2, n)).collect();
    s.append_events(&a).await.unwrap();
    s.append_events(&b).await.unwrap();
    let due = s.due_deliveries(now(), 100).await.unwrap();
    let ids: Vec<_> = due.iter().map(|d| d.event.request_id.clone()).collect();
    assert!(ids.contains(&a[0].request_id) && ids.contains(&b[0].request_id));
    assert!(!ids.contains(&a[1].request_id), "one per device");
    assert_eq!(next_event(&*s, d1).await, a[0]);

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
    let blocked = s.next_delivery_of_device(d1, now()).await.unwrap();
    assert!(blocked.due.is_none(), "blocked until due");
    assert!(blocked.more, "two more wait behind it");
    let waiting = blocked.waiting.expect("the head it waits for");
    assert_eq!(
        (
            &waiting.request_id,
            waiting.attempts,
            waiting.held_by_committer()
        ),
        (&a[0].request_id, 1, false),
        "a retry's wait"
    );
    assert_eq!(
        waiting.until.unix_timestamp(),
        later.unix_timestamp(),
        "until the retry"
    );
    // Releasing a delivery that was attempted changes nothing.
    s.release_delivery(&a[0].request_id).await.unwrap();
    let still = s.next_delivery_of_device(d1, now()).await.unwrap();
    assert_eq!(still.waiting.map(|w| w.attempts), Some(1), "still waits");
    assert_eq!(s.release_delivery("nope").await, Err(StoreError::NotFound));
    let again = s
        .next_delivery_of_device(d1, later + ::time::Duration::seconds(1))
        .await
        .unwrap()
        .due
        .unwrap();
    assert_eq!(
        again.event.request_id, a[0].request_id,
        "the same event, same id, first"
    );
    s.record_attempt(&a[0].request_id, &Attempt::Delivered { status_code: 204 })
        .await
        .unwrap();
    assert_eq!(next_event(&*s, d1).await, a[1]);
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
        next_event(&*s, d1).await,
        a[2],
        "a failed one does not block"
    );
    let last = s.next_delivery_of_device(d1, now()).await.unwrap();
    assert!(!last.more, "nothing pending behind the last one");
    let two = s.next_delivery_of_device(d2, now()).await.unwrap();
    assert_eq!(
        (two.due.map(|d| d.event.request_id), two.more),
        (Some(b[0].request_id.clone()), true),
        "a second pending one behind the head"
    );
    assert_eq!(
        s.next_delivery_of_device(Uuid::now_v7(), now())
            .await
            .unwrap(),
        DeviceHead::default(),
        "a device without events"
    );
    // Listings are eventually consistent (DynamoDB reads an index): listing right after
    // writing holds on SQLite and moto only. This checks filtering, order and paging.
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

/// The event of the device's next delivery, due now (there must be one).
async fn next_event(s: &dyn Store, device: Uuid) -> Event {
    s.next_delivery_of_device(device, time::now())
        .await
        .unwrap()
        .due
        .expect("a delivery due")
        .event
}
