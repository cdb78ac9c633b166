//! The queue checks: one suite for the local queue and SQS, timed per adapter
//! (`QueueProfile`).
//!
//! Visibility timeouts and delays can only be checked by letting them pass: the checks wait
//! out one `unit` (plus the backend's `slack`) where the behaviour under test is the passing
//! of time itself.

use std::sync::Arc;

use uuid::Uuid;
use wa_core::queue::Queue;

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
pub async fn queue(q: Arc<dyn Queue>, max_receives: u32) {
    let p = QueueProfile::local(max_receives);
    let name = format!("conf-{}", Uuid::new_v4());
    queue_basics(q.as_ref(), &name, p).await;
    queue_groups(q.as_ref(), &name, p).await;
    queue_delay(q.as_ref(), &name, p).await;
    queue_dead_letters(q.as_ref(), &format!("{name}-dlq"), p).await;
    queue_inbox(q.as_ref(), &format!("{name}-inboxes")).await;
}

/// Asserts how a receipt that is no longer current is answered.
fn check_stale(p: QueueProfile, got: Result<(), wa_core::queue::QueueError>, what: &str) {
    use wa_core::queue::QueueError::InvalidReceipt;
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
pub async fn queue_basics(q: &dyn Queue, qn: &str, p: QueueProfile) {
    use std::time::Duration;
    use wa_core::queue::QueueError::InvalidReceipt;
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
pub async fn queue_groups(q: &dyn Queue, qn: &str, p: QueueProfile) {
    use std::time::Duration;
    let long = Duration::from_secs(60);

    for b in ["g1-1", "g1-2", "g1-3"] {
        q.send(qn, Some("g1"), b, Duration::ZERO).await.unwrap();
    }
    q.send(qn, Some("g2"), "g2-1", Duration::ZERO)
        .await
        .unwrap();
    let batch = crate::queues::receive_all(q, qn, long).await;
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
pub async fn queue_delay(q: &dyn Queue, qn: &str, p: QueueProfile) {
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
pub async fn queue_dead_letters(q: &dyn Queue, qn: &str, p: QueueProfile) {
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

/// Inboxes ([`Queue::open_inbox`]): an inbox is a queue of its own, named after its tag,
/// that carries ungrouped messages like any other; a message of `qn` received by one
/// consumer can be settled by another that was handed its receipt (how a worker settles a
/// command another worker forwarded to it); a closed inbox holds nothing any more.
pub async fn queue_inbox(q: &dyn Queue, qn: &str) {
    use std::time::Duration;
    let long = Duration::from_secs(60);
    let tag = Uuid::new_v4().simple().to_string();
    let inbox = q
        .open_inbox(&tag)
        .await
        .unwrap()
        .expect("the adapter has inboxes");
    assert_ne!(inbox, qn);
    let other = q
        .open_inbox(&Uuid::new_v4().simple().to_string())
        .await
        .unwrap()
        .unwrap();
    assert_ne!(inbox, other, "each tag has an inbox of its own");

    q.send(&inbox, None, "pointer", Duration::ZERO)
        .await
        .unwrap();
    assert!(
        q.receive(&other, 10, long).await.unwrap().is_empty(),
        "another inbox does not see it"
    );
    let got = q.receive(&inbox, 10, long).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, "pointer");
    q.delete(&inbox, &got[0].receipt).await.unwrap();

    // The receipt of `qn`'s message, carried in an inbox message, settles it.
    q.send(qn, None, "command", Duration::ZERO).await.unwrap();
    let command = q.receive(qn, 10, long).await.unwrap().remove(0);
    q.send(&inbox, None, &command.receipt, Duration::ZERO)
        .await
        .unwrap();
    let carried = q.receive(&inbox, 10, long).await.unwrap().remove(0);
    q.retry_after(qn, &carried.body, long).await.unwrap();
    q.delete(qn, &carried.body).await.unwrap();
    q.delete(&inbox, &carried.receipt).await.unwrap();
    assert!(
        q.receive(qn, 10, Duration::ZERO).await.unwrap().is_empty(),
        "deleted through the carried receipt"
    );

    q.send(&inbox, None, "left", Duration::ZERO).await.unwrap();
    q.close_inbox(&inbox).await.unwrap();
    q.close_inbox(&other).await.unwrap();
    assert!(
        q.receive(&inbox, 10, Duration::ZERO)
            .await
            .map(|got| got.is_empty())
            .unwrap_or(true),
        "a closed inbox holds nothing"
    );
}
