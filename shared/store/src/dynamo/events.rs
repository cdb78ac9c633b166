//! The event outbox in the table: one delivery item per event (listed per App on GSI1 and
//! per App and status on GSI2), and while it is pending a queue entry in its device's
//! queue partition (`DLVQ#{device}`, ordered by `seq`, read strongly consistent) that is
//! also on GSI3, the list of every pending delivery the dispatcher polls.
//!
//! `seq` is time-ordered (the microsecond of the write, ten random bits below it, never
//! below the last number this process handed out: [`first_seq`]), so no counter item is
//! written by every send. So that a device's events commit in `seq` order (a later number
//! never becomes visible before an earlier one, whichever process wrote it), the
//! transaction also raises the device's order guard (`last_seq`) on the condition that it
//! is below the new numbers; a write that lost that race is `Stale` and runs again with
//! fresh numbers, after a pause that lets this host's clock pass the other's.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use tokio::task::JoinSet;
use uuid::Uuid;
use wa_core::store::{
    Attempt, Delivery, DeliveryStatus, DeviceHead, EventStore, StoreError, Waiting,
};
use wa_core::time::{self, OffsetDateTime};
use wa_core::webhooks::Event;

use super::DynamoStore;
use super::codec::{Attrs, Index, Item, LAST_SEQ, QueueEntry, from_ms, key, list, ms, sortable};
use super::ops::{
    MAX_TRANSACTION_ITEMS, OnCondition, Query, Range, Write, WriteError, until_fresh,
};
use super::shards;
use crate::page;

/// The last delivery number this process handed out.
static LAST_SEQ_ISSUED: AtomicI64 = AtomicI64::new(0);
/// Each event is two items (the delivery and its queue entry), plus one order guard per
/// device.
const EVENTS_PER_TRANSACTION: usize = MAX_TRANSACTION_ITEMS / 3;
/// `release_delivery`'s answer to itself: the delivery is not held, nothing to change.
const UNHELD: &str = "unheld";
/// How many devices `due_deliveries` checks at once.
const CHECKS_IN_FLIGHT: usize = 32;

impl DynamoStore {
    /// The writes that put `events` in the outbox, pending and due now, for the caller's
    /// transaction: per event its delivery and queue entry, per device its order guard.
    /// Numbers them ([`issue_seqs`]).
    pub(crate) async fn event_writes(&self, events: &[Event]) -> Result<Vec<Write>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let now = time::now();
        // Held for this process to deliver itself ([`DynamoStore::holding_events`]).
        let due_at = now + self.hold_events.unwrap_or_default();
        let first = issue_seqs(now, events.len());
        let mut writes = Vec::with_capacity(events.len() * 2 + 1);
        let mut last_of_device: BTreeMap<Uuid, i64> = BTreeMap::new();
        for (i, e) in events.iter().enumerate() {
            let d = Delivery {
                seq: first + i as i64,
                event: e.clone(),
                status: DeliveryStatus::Pending,
                attempts: 0,
                next_attempt_at: due_at,
                last_error: None,
                last_status_code: None,
                updated_at: now,
            };
            let item = Item::from(&d).with_rev(1);
            if self.hold_events.is_some() {
                // Its attempt is recorded without a read (one that did not commit is not
                // found on its revision, and read).
                self.recent_deliveries
                    .keep(e.request_id.clone(), &d, 1, item.body_len());
            }
            writes.push(Write::insert(item, StoreError::Conflict("request_id")));
            writes.push(Write::put(Item::from(&QueueEntry::from(&d))));
            last_of_device.insert(e.device_id, d.seq);
        }
        for (device, last) in last_of_device {
            writes.push(
                Write::update(key::device_order(device), "SET #last = :seq")
                    .when(
                        "attribute_not_exists(#last) OR #last < :seq",
                        OnCondition::Stale,
                    )
                    .name("#last", LAST_SEQ)
                    .value(":seq", AttributeValue::N(last.to_string())),
            );
        }
        Ok(writes)
    }

    async fn delivery_at_rev(
        &self,
        request_id: &str,
    ) -> Result<Option<(Delivery, u64)>, StoreError> {
        match self.get(key::delivery(request_id)).await? {
            Some(item) => {
                let (d, rev) = (Delivery::try_from(&item)?, item.rev()?);
                self.recent_deliveries
                    .keep(request_id.to_owned(), &d, rev, item.body_len());
                Ok(Some((d, rev)))
            }
            None => Ok(None),
        }
    }

    /// One read-modify-write of a delivery: `change` checks the status and makes the new
    /// record; the queue entry follows the status in the same transaction.
    async fn try_change_delivery(
        &self,
        request_id: &str,
        change: &(dyn Fn(&Delivery) -> Result<Delivery, StoreError> + Sync),
    ) -> Result<Delivery, WriteError> {
        // The copy read or written last, when it passes `change`: the revision condition
        // finds out whether it is stale. One that fails it proves nothing: the stored record
        // decides.
        let kept = self
            .recent_deliveries
            .take(&request_id.to_owned())
            .and_then(|(old, rev)| change(&old).ok().map(|new| (old, new, rev)));
        let (old, new, rev) = match kept {
            Some(changed) => changed,
            None => {
                let (old, rev) = self
                    .delivery_at_rev(request_id)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                let new = change(&old)?;
                (old, new, rev)
            }
        };
        let item = Item::from(&new);
        let len = item.body_len();
        let mut writes = vec![Write::replace(item, rev)];
        let entry = QueueEntry::from(&new);
        if new.status == DeliveryStatus::Pending {
            // Also on a retry: the entry carries the new attempt time.
            writes.push(Write::put(Item::from(&entry)));
        } else if old.status == DeliveryStatus::Pending {
            writes.push(Write::delete(key::queue_entry(entry.device_id, entry.seq)));
        }
        self.write(writes).await?;
        self.recent_deliveries
            .keep(request_id.to_owned(), &new, rev + 1, len);
        Ok(new)
    }

    async fn change_delivery(
        &self,
        request_id: &str,
        change: &(dyn Fn(&Delivery) -> Result<Delivery, StoreError> + Sync),
    ) -> Result<Delivery, StoreError> {
        until_fresh(move || self.try_change_delivery(request_id, change)).await
    }
}

/// The time-ordered delivery number of the microsecond `micros` (since the Unix epoch),
/// with `low` (ten bits) below it: distinct writers of one microsecond rarely share one.
/// Fits an `i64` until the year 2255.
pub(crate) fn time_seq(micros: i64, low: u16) -> i64 {
    (micros << 10) | i64::from(low & 0x3ff)
}

/// The first of `n` consecutive numbers to hand out after `last`: `candidate`, or the one
/// after `last` when the clock has not moved past it (the numbers of one process only
/// grow).
pub(crate) fn first_seq(candidate: i64, last: i64) -> i64 {
    candidate.max(last + 1)
}

/// Hands out `n` consecutive delivery numbers for a write at `now`; returns the first.
fn issue_seqs(now: OffsetDateTime, n: usize) -> i64 {
    let micros = i64::try_from(now.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX >> 10);
    let random = Uuid::new_v4().as_bytes()[0..2]
        .iter()
        .fold(0u16, |a, b| a << 8 | u16::from(*b));
    let candidate = time_seq(micros, random);
    let n = i64::try_from(n.max(1)).unwrap_or(i64::MAX);
    let mut first = candidate;
    let _ = LAST_SEQ_ISSUED.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
        first = first_seq(candidate, last);
        Some(first + n - 1)
    });
    first
}

#[async_trait]
impl EventStore for DynamoStore {
    async fn append_events(&self, events: &[Event]) -> Result<(), StoreError> {
        // Events with no other change need not commit together; a transaction holds 33.
        for part in events.chunks(EVENTS_PER_TRANSACTION) {
            until_fresh(move || async move { self.write(self.event_writes(part).await?).await })
                .await?;
        }
        Ok(())
    }

    async fn due_deliveries(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let (limit, now_ms) = (limit as usize, ms(now));
        // Every partition of the queue, a page of each per round, so that no partition's
        // backlog starves the others.
        let mut partitions: Vec<(Query, Option<Attrs>)> = shards::all(list::DELIVERY_QUEUE)
            .into_iter()
            .map(|k| (Query::new(Index::Gsi3, k), None))
            .collect();
        let mut seen = HashSet::new();
        let mut due = Vec::new();
        while due.len() < limit && !partitions.is_empty() {
            let mut devices = Vec::new();
            let mut more = Vec::new();
            for (q, start) in partitions {
                let (entries, next) = self.query_page(&q, start, 200).await?;
                // In `seq` order, the first entry of a device is its head (a device's
                // entries share a partition, but for those written before the queue was
                // spread out). The index lags the table, so each head is confirmed by a
                // consistent read of the device's queue.
                for e in &entries {
                    let entry = QueueEntry::try_from(e)?;
                    // A head waiting for its retry blocks its device: no need to look closer.
                    if seen.insert(entry.device_id) && entry.next_attempt_ms <= now_ms {
                        devices.push(entry.device_id);
                    }
                }
                if let Some(n) = next {
                    more.push((q, Some(n)));
                }
            }
            partitions = more;
            for batch in devices.chunks(CHECKS_IN_FLIGHT) {
                let mut checks = JoinSet::new();
                for &device in batch {
                    let store = self.clone();
                    checks.spawn(async move {
                        store
                            .next_delivery_of_device(device, now)
                            .await
                            .map(|head| head.due)
                    });
                }
                while let Some(r) = checks.join_next().await {
                    let r =
                        r.map_err(|e| StoreError::Backend(format!("a due check failed: {e}")))?;
                    due.extend(r?);
                }
            }
        }
        due.sort_by_key(|d| d.seq);
        due.truncate(limit);
        Ok(due)
    }

    async fn next_delivery_of_device(
        &self,
        device_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<DeviceHead, StoreError> {
        let q = Query::new(Index::Table, list::device_queue(device_id));
        let entries = self.query(&q, 2).await?;
        let more = entries.len() > 1;
        let Some(head) = entries.first() else {
            return Ok(DeviceHead::default());
        };
        let entry = QueueEntry::try_from(head)?;
        if entry.next_attempt_ms > ms(now) {
            return Ok(DeviceHead {
                due: None,
                waiting: Some(Waiting {
                    until: from_ms(entry.next_attempt_ms),
                    request_id: entry.request_id,
                    attempts: entry.attempts,
                }),
                more,
            });
        }
        let d = self.get_delivery(&entry.request_id).await?.ok_or_else(|| {
            StoreError::Backend(format!(
                "queue entry {} of device {device_id} has no delivery",
                entry.request_id
            ))
        })?;
        let pending = (d.status == DeliveryStatus::Pending).then_some(d);
        Ok(DeviceHead::of(pending, now, more))
    }

    async fn release_delivery(&self, request_id: &str) -> Result<(), StoreError> {
        let now = time::now();
        let release = |old: &Delivery| {
            if old.status != DeliveryStatus::Pending
                || old.attempts > 0
                || old.next_attempt_at <= now
            {
                return Err(StoreError::Conflict(UNHELD));
            }
            Ok(Delivery {
                next_attempt_at: now,
                updated_at: now,
                ..old.clone()
            })
        };
        match self.change_delivery(request_id, &release).await {
            Ok(_) | Err(StoreError::Conflict(UNHELD)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn record_attempt(
        &self,
        request_id: &str,
        attempt: &Attempt,
    ) -> Result<Delivery, StoreError> {
        let change = |old: &Delivery| {
            if old.status != DeliveryStatus::Pending {
                return Err(StoreError::Conflict("status"));
            }
            let now = time::now();
            let mut d = old.clone();
            let (status, next, error, code, count) = match attempt {
                Attempt::Delivered { status_code } => {
                    (DeliveryStatus::Delivered, now, None, Some(*status_code), 1)
                }
                Attempt::Retry {
                    next,
                    error,
                    status_code,
                } => (
                    DeliveryStatus::Pending,
                    *next,
                    Some(error.clone()),
                    *status_code,
                    1,
                ),
                Attempt::Failed { error, status_code } => (
                    DeliveryStatus::Failed,
                    now,
                    Some(error.clone()),
                    *status_code,
                    1,
                ),
                Attempt::Skipped => (
                    DeliveryStatus::Skipped,
                    now,
                    Some("the App has no webhook URL".to_owned()),
                    None,
                    0,
                ),
            };
            d.status = status;
            d.attempts += count;
            d.next_attempt_at = next;
            d.last_error = error;
            d.last_status_code = code;
            d.updated_at = now;
            Ok(d)
        };
        self.change_delivery(request_id, &change).await
    }

    async fn list_deliveries(
        &self,
        app_id: Uuid,
        status: Option<DeliveryStatus>,
        limit: u32,
        before_seq: Option<i64>,
    ) -> Result<(Vec<Delivery>, Option<i64>), StoreError> {
        let hash = match status {
            Some(s) => list::app_deliveries_with_status(app_id, s.as_str()),
            None => list::app_deliveries(app_id),
        };
        let index = if status.is_some() {
            Index::Gsi2
        } else {
            Index::Gsi1
        };
        let mut q = Query::new(index, hash).backwards();
        if let Some(before) = before_seq {
            q = q.range(Range::Before(sortable(before)));
        }
        let items = self.query(&q, page::fetch(limit)).await?;
        let deliveries = items
            .iter()
            .map(Delivery::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page::cut(deliveries, limit, |d| d.seq))
    }

    async fn get_delivery(&self, request_id: &str) -> Result<Option<Delivery>, StoreError> {
        Ok(self.delivery_at_rev(request_id).await?.map(|(d, _)| d))
    }

    async fn redeliver(&self, request_id: &str) -> Result<Delivery, StoreError> {
        let change = |old: &Delivery| {
            if !matches!(old.status, DeliveryStatus::Failed | DeliveryStatus::Skipped) {
                return Err(StoreError::Conflict("status"));
            }
            let now = time::now();
            Ok(Delivery {
                status: DeliveryStatus::Pending,
                attempts: 0,
                next_attempt_at: now,
                updated_at: now,
                ..old.clone()
            })
        };
        self.change_delivery(request_id, &change).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_the_clock_and_keep_ten_random_bits() {
        let micros = 1_780_000_000_000_000;
        assert!(time_seq(micros + 1, 0) > time_seq(micros, 0x3ff));
        assert_eq!(time_seq(micros, 0xffff) - time_seq(micros, 0), 0x3ff);
        assert!(time_seq(micros, 5) < time_seq(micros, 6));
        // The year 2255 still fits.
        let late = 9_000_000_000_000_000;
        assert!(time_seq(late, 0x3ff) > time_seq(micros, 0));
    }

    #[test]
    fn a_process_never_hands_out_a_number_twice_or_backwards() {
        assert_eq!(first_seq(100, 50), 100, "the clock moved on");
        assert_eq!(first_seq(100, 100), 101, "same number: the next one");
        assert_eq!(
            first_seq(100, 400),
            401,
            "the clock went back: after the last"
        );
        let now = time::now();
        let a = issue_seqs(now, 3);
        let b = issue_seqs(now, 1);
        assert!(
            b >= a + 3,
            "{a} then {b}: the first write's three numbers are its own"
        );
        let earlier = now - ::time::Duration::seconds(5);
        assert!(
            issue_seqs(earlier, 1) > b,
            "a clock going back does not go back"
        );
    }

    /// An attempt is recorded on the delivery just read, without reading it again; when
    /// another process recorded one meanwhile, the write is refused and runs again on a
    /// fresh read, so the outcome is the same as without the kept copy.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_attempt_starts_from_the_delivery_read_and_a_stale_one_is_read_again() {
        use std::sync::atomic::Ordering;
        use wa_core::webhooks::EventType;
        let s = crate::dynamo::tests::store().await;
        let other = DynamoStore::new(crate::dynamo::tests::client(), s.table());
        let device = uuid::Uuid::now_v7();
        let e = Event::new(
            EventType::Message,
            uuid::Uuid::now_v7(),
            device,
            serde_json::json!({"n": 1}),
        );
        s.append_events(std::slice::from_ref(&e)).await.unwrap();
        let used = || s.recent_deliveries.used.load(Ordering::Relaxed);
        let head = s
            .next_delivery_of_device(device, time::now())
            .await
            .unwrap();
        assert_eq!(
            head.due.map(|d| d.event.request_id),
            Some(e.request_id.clone())
        );
        let retry = Attempt::Retry {
            next: time::now(),
            error: "503".into(),
            status_code: Some(503),
        };
        let r = s.record_attempt(&e.request_id, &retry).await.unwrap();
        assert_eq!((r.attempts, used()), (1, 1), "no read before the write");
        // Another process delivers it: `s`'s copy (its own retry) is stale.
        other
            .record_attempt(&e.request_id, &Attempt::Delivered { status_code: 200 })
            .await
            .unwrap();
        assert_eq!(
            s.record_attempt(&e.request_id, &retry).await,
            Err(StoreError::Conflict("status")),
            "the stored record decides"
        );
        let stored = s.get_delivery(&e.request_id).await.unwrap().unwrap();
        assert_eq!(
            (stored.status, stored.attempts),
            (DeliveryStatus::Delivered, 2)
        );
    }
}

#[cfg(test)]
mod holding_tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use super::*;
    use wa_core::webhooks::EventType;

    /// A store that holds its events: another process sees them waiting, held by their
    /// committer (no attempt yet), and not due; the committer records its attempt without a
    /// read; a released one is due at once, and the hold is over for everyone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn held_events_wait_for_their_committer_until_released() {
        let plain = crate::dynamo::tests::store().await;
        let s = (*plain).clone().holding_events(Duration::from_secs(30));
        let device = uuid::Uuid::now_v7();
        let ev = |n: u32| {
            Event::new(
                EventType::Message,
                uuid::Uuid::now_v7(),
                device,
                serde_json::json!({ "n": n }),
            )
        };
        let (first, second) = (ev(1), ev(2));
        s.append_events(&[first.clone(), second.clone()])
            .await
            .unwrap();
        let before = time::now();
        let head = plain.next_delivery_of_device(device, before).await.unwrap();
        assert!(head.due.is_none(), "held, not due");
        assert!(head.more);
        let w = head.waiting.expect("waiting");
        assert_eq!(&w.request_id, &first.request_id);
        assert!(w.held_by_committer());
        assert!(w.until > before + ::time::Duration::seconds(25), "{w:?}");
        assert!(
            plain.due_deliveries(before, 10).await.unwrap().is_empty(),
            "nothing due for the consumer or the sweep"
        );

        let used = || s.recent_deliveries.used.load(Ordering::Relaxed);
        let done = s
            .record_attempt(&first.request_id, &Attempt::Delivered { status_code: 204 })
            .await
            .unwrap();
        assert_eq!((done.attempts, used()), (1, 1), "recorded without a read");

        s.release_delivery(&second.request_id).await.unwrap();
        let head = plain
            .next_delivery_of_device(device, time::now())
            .await
            .unwrap();
        assert_eq!(
            head.due.map(|d| (d.event.request_id, d.attempts)),
            Some((second.request_id.clone(), 0)),
            "released: due now"
        );
        // A second release, and one by another process, change nothing.
        s.release_delivery(&second.request_id).await.unwrap();
        plain.release_delivery(&second.request_id).await.unwrap();
    }
}
