//! The records this process read or wrote last (messages, webhook deliveries), each with
//! its revision, so that an update of one of them is tried on that revision without reading
//! it first: one `GetItem` less per update (a send updates its message twice right after
//! reading it: `sending`, then its outcome; a webhook attempt records its outcome on the
//! delivery it just read). The revision condition of the write decides: when another
//! process wrote the record meanwhile, the write is refused (`Stale`) and runs again on a
//! fresh read.
//!
//! A kept copy is used once (taken), only by an update, never to answer a read; it is kept
//! only for small records (their stored body under [`MAX_BODY`]), and for the last
//! [`CAPACITY`] of them.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// How many records of one kind are kept at most.
pub(crate) const CAPACITY: usize = 1024;
/// The largest stored body (bytes of its JSON) of a record kept.
pub(crate) const MAX_BODY: usize = 8 * 1024;

#[derive(Debug)]
pub(crate) struct Recent<K, V> {
    kept: Mutex<Kept<K, V>>,
    /// Updates that started from a kept copy (tests read it).
    pub(crate) used: AtomicU64,
}

impl<K, V> Default for Recent<K, V> {
    fn default() -> Self {
        Recent {
            kept: Mutex::new(Kept {
                by_key: HashMap::new(),
                order: VecDeque::new(),
            }),
            used: AtomicU64::new(0),
        }
    }
}

#[derive(Debug)]
struct Kept<K, V> {
    by_key: HashMap<K, (V, u64)>,
    /// Keys in the order they were kept, oldest first (may name keys taken since).
    order: VecDeque<K>,
}

impl<K: Hash + Eq + Clone, V: Clone> Recent<K, V> {
    /// Keeps `v` under `key` at revision `rev`, whose stored body is `body_len` bytes.
    pub(crate) fn keep(&self, key: K, v: &V, rev: u64, body_len: usize) {
        let mut k = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if body_len > MAX_BODY {
            k.by_key.remove(&key);
            return;
        }
        if k.by_key.insert(key.clone(), (v.clone(), rev)).is_none() {
            k.order.push_back(key);
        }
        while k.by_key.len() > CAPACITY {
            let Some(old) = k.order.pop_front() else {
                break;
            };
            k.by_key.remove(&old);
        }
        if k.order.len() > 2 * CAPACITY {
            let Kept { by_key, order } = &mut *k;
            order.retain(|key| by_key.contains_key(key));
        }
    }

    /// The kept copy under `key`, if any; it is no longer kept.
    pub(crate) fn take(&self, key: &K) -> Option<(V, u64)> {
        let taken = self
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_key
            .remove(key);
        if taken.is_some() {
            self.used.fetch_add(1, Ordering::Relaxed);
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;
    use wa_core::messages::Message;
    use wa_core::time;
    use wa_testkit::fixtures::outbound_text;

    fn message() -> Message {
        outbound_text(Uuid::now_v7(), Uuid::now_v7(), "hi", time::now())
    }

    fn key(m: &Message) -> (Uuid, String) {
        (m.device_id, m.message_id.clone())
    }

    #[test]
    fn a_kept_message_is_used_once() {
        let r = Recent::<(Uuid, String), Message>::default();
        let m = message();
        r.keep(key(&m), &m, 3, 100);
        assert_eq!(r.take(&key(&m)), Some((m.clone(), 3)));
        assert_eq!(r.take(&key(&m)), None);
        assert_eq!(r.used.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_newer_revision_replaces_the_kept_one_and_a_large_message_is_not_kept() {
        let r = Recent::<(Uuid, String), Message>::default();
        let m = message();
        r.keep(key(&m), &m, 1, 100);
        r.keep(key(&m), &m, 2, 100);
        assert_eq!(r.take(&key(&m)).map(|(_, rev)| rev), Some(2));
        r.keep(key(&m), &m, 3, 100);
        r.keep(key(&m), &m, 4, MAX_BODY + 1);
        assert_eq!(r.take(&key(&m)), None, "too large: forgotten");
    }

    /// An update starts from the copy read or written last; when another process wrote
    /// the message meanwhile, the write is refused and runs again on a fresh read, so the
    /// outcome is the same as without a kept copy.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn updates_start_from_the_kept_copy_and_a_stale_one_is_read_again() {
        use wa_core::messages::{MessageStatus, MessageUpdate};
        use wa_core::store::MessageStore;
        let s = crate::dynamo::tests::store().await;
        // Another process on the same table: its writes are not in `s`'s copies.
        let other = super::super::DynamoStore::new(crate::dynamo::tests::client(), s.table());
        let m = message();
        s.create_message(&m, None, None, &[]).await.unwrap();
        let used = || s.recent.used.load(Ordering::Relaxed);
        s.get_message(m.device_id, &m.message_id).await.unwrap();
        let status = |to| MessageUpdate {
            status: Some(to),
            ..MessageUpdate::default()
        };
        let (queued, sending) = (MessageStatus::Queued, MessageStatus::Sending);
        let update = |u, expect: &'static [MessageStatus]| {
            let s = s.clone();
            let id = m.message_id.clone();
            async move { s.update_message(m.device_id, &id, &u, expect, &[]).await }
        };
        let sent = update(status(sending), &[MessageStatus::Queued])
            .await
            .unwrap();
        assert_eq!(
            (sent.status, used()),
            (sending, 1),
            "no read before the write"
        );
        let done = update(status(MessageStatus::Sent), &[MessageStatus::Sending])
            .await
            .unwrap();
        assert_eq!((done.status, used()), (MessageStatus::Sent, 2));
        // The other process moves it on: `s`'s copy (sent, its revision) is stale.
        other
            .update_message(
                m.device_id,
                &m.message_id,
                &status(MessageStatus::Delivered),
                &[],
                &[],
            )
            .await
            .unwrap();
        let read = update(status(MessageStatus::Read), &[]).await.unwrap();
        assert_eq!(read.status, MessageStatus::Read);
        // A stale copy that fails the status check does not decide: the record does.
        other
            .update_message(m.device_id, &m.message_id, &status(queued), &[], &[])
            .await
            .unwrap();
        let again = update(status(sending), &[MessageStatus::Queued])
            .await
            .unwrap();
        assert_eq!(again.status, sending);
        let stored = s.get_message(m.device_id, &m.message_id).await.unwrap();
        assert_eq!(stored.map(|x| x.status), Some(sending));
    }

    #[test]
    fn only_the_last_messages_are_kept() {
        let r = Recent::<(Uuid, String), Message>::default();
        let first = message();
        r.keep(key(&first), &first, 1, 10);
        for _ in 0..CAPACITY {
            let m = message();
            r.keep(key(&m), &m, 1, 10);
        }
        assert_eq!(r.take(&key(&first)), None);
        let k = r.kept.lock().unwrap();
        assert_eq!(k.by_key.len(), CAPACITY);
        assert!(k.order.len() <= 2 * CAPACITY);
    }
}
