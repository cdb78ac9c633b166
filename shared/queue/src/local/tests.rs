//! The local queue's own behaviour: reopening, old tables, group order, sends sharing the
//! store's commits, and a group's next message taken with a deletion.

use super::*;
use wa_testkit::queues::nothing_received;

/// The message `id` of `device` as `store` has it.
async fn stored(
    store: &dyn wa_core::store::MessageStore,
    device: uuid::Uuid,
    id: &str,
) -> Option<wa_core::messages::Message> {
    store.get_message(device, id).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_in_memory() {
    wa_testkit::conformance::queue(Arc::new(LocalQueue::in_memory(3).unwrap()), 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    let q = LocalQueue::open(&path, 5).unwrap();
    q.send("q", Some("g"), "one", Duration::ZERO).await.unwrap();
    let got = q.receive("q", 10, Duration::from_millis(1)).await.unwrap();
    assert_eq!(got.len(), 1);
    drop(q);
    // An unacknowledged message comes back after a restart.
    let q = LocalQueue::open(&path, 5).unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = q.receive("q", 10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].body, "one");
    assert_eq!(again[0].receive_count, 2);
    // A restarted sole consumer takes back what its predecessor had in flight at once.
    assert!(nothing_received(&q, "q", Duration::from_secs(30)).await);
    assert_eq!(q.release_in_flight("q").await.unwrap(), 1);
    let third = q.receive("q", 10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(third[0].receive_count, 3);
    assert!(
        q.delete("q", &again[0].receipt).await.is_err(),
        "the old receipt is void"
    );
}

/// A queue file from before the `head` column: opening adds it, with the right heads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_tables_get_their_heads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE queue_messages (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL UNIQUE,
                queue TEXT NOT NULL, grp TEXT, body TEXT NOT NULL,
                sent_at_ms INTEGER NOT NULL, visible_at_ms INTEGER NOT NULL,
                receive_count INTEGER NOT NULL DEFAULT 0, receipt TEXT UNIQUE);
             INSERT INTO queue_messages (message_id, queue, grp, body, sent_at_ms, visible_at_ms)
             VALUES ('m1', 'q', 'a', 'a1', 0, 0), ('m2', 'q', 'a', 'a2', 0, 0),
                    ('m3', 'q', NULL, 'free', 0, 0), ('m4', 'q', 'b', 'b1', 0, 0);",
        )
        .unwrap();
    }
    let q = LocalQueue::open(&path, 5).unwrap();
    let bodies = |r: &[Received]| r.iter().map(|m| m.body.clone()).collect::<Vec<_>>();
    let first = q.receive("q", 10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(bodies(&first), ["a1", "free", "b1"]);
    q.delete("q", &first[0].receipt).await.unwrap();
    let next = q.receive("q", 10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(bodies(&next), ["a2"], "a's next message is its head now");
    drop(q);
    // Opening again leaves the column and its values alone.
    let q = LocalQueue::open(&path, 5).unwrap();
    q.send("q", Some("a"), "a3", Duration::ZERO).await.unwrap();
    assert!(
        nothing_received(&q, "q", Duration::from_secs(30)).await,
        "a3 waits behind a2, in flight"
    );
}

/// A long backlog in one group: only its head is ever handed out, one at a time, in
/// order, and every message goes out exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_group_backlog_goes_in_order() {
    let q = LocalQueue::in_memory(3).unwrap();
    for i in 0..300 {
        q.send("q", Some("g"), &i.to_string(), Duration::ZERO)
            .await
            .unwrap();
    }
    q.send("q", None, "free", Duration::ZERO).await.unwrap();
    let mut seen = Vec::new();
    loop {
        let got = q.receive("q", 10, Duration::from_secs(30)).await.unwrap();
        if got.is_empty() {
            break;
        }
        assert!(
            got.iter().filter(|m| m.group.is_some()).count() <= 1,
            "one message of a group at a time"
        );
        for m in got {
            seen.push(m.body.clone());
            q.delete("q", &m.receipt).await.unwrap();
        }
    }
    let mut expected: Vec<String> = (0..300).map(|i| i.to_string()).collect();
    expected.insert(1, "free".into());
    assert_eq!(seen, expected);
}

fn outbound(device_id: uuid::Uuid) -> wa_core::messages::Message {
    let now = wa_core::time::now();
    wa_testkit::fixtures::outbound_text(device_id, uuid::Uuid::now_v7(), "hi", now)
}

/// With the queue in the store's database, a send's message and its command are written
/// by one write; a taken Idempotency-Key writes neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_and_its_command_share_a_commit() {
    use wa_core::queue::{COMMANDS, Command, CommandEnvelope};
    use wa_core::store::{Created, IdempotencyRecord, MessageStore};
    let store = wa_store::SqliteStore::in_memory().unwrap();
    let queue = LocalQueue::on(store.db(), 5).unwrap();
    assert!(
        wa_store::SqliteStore::in_memory()
            .unwrap()
            .with_commands_queue(Arc::new(queue.clone()))
            .is_err(),
        "a queue of another database is refused"
    );
    let store = store.with_commands_queue(Arc::new(queue.clone())).unwrap();
    let device = uuid::Uuid::now_v7();
    let m = outbound(device);
    let record = IdempotencyRecord {
        app_id: m.app_id,
        key: "k1".into(),
        request_hash: "h".into(),
        device_id: device,
        message_id: m.message_id.clone(),
        response: None,
        expires_at: m.created_at + wa_core::send_service::IDEMPOTENCY_TTL,
    };
    let command = Command::Send {
        queued: None,
        device_id: device,
        message_id: m.message_id.clone(),
    };
    // The commands of this test go to the store's queue, whatever queue is named.
    let elsewhere = LocalQueue::in_memory(5).unwrap();
    let created = wa_errors::request_id::scope(
        "req-1".into(),
        store.create_message_and_enqueue(&m, None, Some(&record), &elsewhere, command.clone()),
    )
    .await
    .unwrap();
    assert_eq!(created, Created::Created);
    assert_eq!(stored(&store, device, &m.message_id).await, Some(m.clone()));
    let got = queue
        .receive(COMMANDS, 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].group.as_deref(), Some(device.to_string().as_str()));
    let env: CommandEnvelope = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(env.command, command);
    assert_eq!(
        env.request_id, "req-1",
        "the command carries the request's id"
    );
    assert!(nothing_received(&elsewhere, COMMANDS, Duration::from_secs(30)).await);

    // The same key again: the first reservation answers, nothing more is queued.
    let again = outbound(device);
    let mut taken = record.clone();
    taken.message_id = again.message_id.clone();
    let second = store
        .create_message_and_enqueue(&again, None, Some(&taken), &elsewhere, command)
        .await
        .unwrap();
    assert!(matches!(second, Created::Existing(r) if r.message_id == m.message_id));
    assert_eq!(stored(&store, device, &again.message_id).await, None);
    queue.delete(COMMANDS, &got[0].receipt).await.unwrap();
    assert!(nothing_received(&queue, COMMANDS, Duration::from_secs(30)).await);
}

/// Without a queue in its database the store queues the command after the message, on
/// the queue it is given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_without_a_shared_queue_is_queued_after_its_message() {
    use wa_core::queue::{COMMANDS, Command};
    use wa_core::store::{Created, MessageStore};
    let store = wa_store::SqliteStore::in_memory().unwrap();
    let queue = LocalQueue::in_memory(5).unwrap();
    let device = uuid::Uuid::now_v7();
    let m = outbound(device);
    let command = Command::Send {
        queued: None,
        device_id: device,
        message_id: m.message_id.clone(),
    };
    let created = store
        .create_message_and_enqueue(&m, None, None, &queue, command)
        .await
        .unwrap();
    assert_eq!(created, Created::Created);
    assert!(stored(&store, device, &m.message_id).await.is_some());
    let got = queue
        .receive(COMMANDS, 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
}

fn bodies(r: &[Received]) -> Vec<String> {
    r.iter().map(|m| m.body.clone()).collect()
}

/// Deleting a group's message takes the group's next one when it is visible, in the same
/// commit; the group still has one message in flight, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_takes_the_groups_next_message() {
    let q = LocalQueue::in_memory(3).unwrap();
    let hidden = Duration::from_secs(30);
    for (group, body) in [
        (Some("a"), "a1"),
        (Some("a"), "a2"),
        (Some("b"), "b1"),
        (None, "free"),
    ] {
        q.send("q", group, body, Duration::ZERO).await.unwrap();
    }
    let first = q.receive("q", 1, hidden).await.unwrap();
    assert_eq!(bodies(&first), ["a1"]);
    let next = q
        .delete_and_take_next("q", &first[0], hidden)
        .await
        .unwrap()
        .expect("a2 taken");
    assert_eq!(
        (
            next.body.as_str(),
            next.group.as_deref(),
            next.receive_count
        ),
        ("a2", Some("a"), 1)
    );
    let rest = q.receive("q", 10, hidden).await.unwrap();
    assert_eq!(bodies(&rest), ["b1", "free"], "a2 is in flight");
    assert_eq!(
        q.delete_and_take_next("q", &next, hidden).await.unwrap(),
        None,
        "the group's last message"
    );
    assert_eq!(
        q.delete_and_take_next("q", &rest[1], hidden).await.unwrap(),
        None,
        "an ungrouped message is only deleted"
    );
    assert!(
        q.delete_and_take_next("q", &first[0], hidden)
            .await
            .is_err(),
        "a stale receipt"
    );
    q.delete("q", &rest[0].receipt).await.unwrap();
    assert_eq!(q.depth("q").await.unwrap().visible, 0);
}

/// A group's next message that is not visible yet (sent with a delay) is left to `receive`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_next_message_is_not_taken() {
    let q = LocalQueue::in_memory(3).unwrap();
    q.send("q", Some("a"), "a1", Duration::ZERO).await.unwrap();
    q.send("q", Some("a"), "a2", Duration::from_secs(60))
        .await
        .unwrap();
    let first = q.receive("q", 1, Duration::from_secs(30)).await.unwrap();
    assert_eq!(
        q.delete_and_take_next("q", &first[0], Duration::from_secs(30))
            .await
            .unwrap(),
        None
    );
    assert!(nothing_received(&q, "q", Duration::from_secs(30)).await);
}

/// A released message is visible again at once, and that delivery is not counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_message_comes_back_uncounted() {
    let q = LocalQueue::in_memory(3).unwrap();
    q.send("q", Some("a"), "a1", Duration::ZERO).await.unwrap();
    let first = q.receive("q", 1, Duration::from_secs(30)).await.unwrap();
    assert_eq!(first[0].receive_count, 1);
    q.release("q", &first[0]).await.unwrap();
    let again = q.receive("q", 1, Duration::from_secs(30)).await.unwrap();
    assert_eq!(bodies(&again), ["a1"]);
    assert_eq!(
        again[0].receive_count, 1,
        "the released delivery did not count"
    );
    assert!(
        matches!(
            q.release("q", &first[0]).await,
            Err(QueueError::InvalidReceipt)
        ),
        "the old receipt is void"
    );
}

/// With the queue in the store's database, a send's outcome and its command's deletion
/// (with the device's next command taken) are one commit; a stale receipt or a store
/// without the queue leaves the command to the caller, a refused update settles nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_settles_its_command_in_its_commit() {
    use wa_core::messages::{MessageStatus, MessageUpdate};
    use wa_core::queue::{COMMANDS, Command, CommandEnvelope};
    use wa_core::store::{MessageStore, Settled, StoreError};
    let store = wa_store::SqliteStore::in_memory().unwrap();
    let queue = LocalQueue::on(store.db(), 5).unwrap();
    let store = store.with_commands_queue(Arc::new(queue.clone())).unwrap();
    let device = uuid::Uuid::now_v7();
    let (m1, m2) = (outbound(device), outbound(device));
    for m in [&m1, &m2] {
        let command = Command::Send {
            queued: None,
            device_id: device,
            message_id: m.message_id.clone(),
        };
        store
            .create_message_and_enqueue(m, None, None, &queue, command)
            .await
            .unwrap();
    }
    let hidden = Duration::from_secs(30);
    let got = queue.receive(COMMANDS, 10, hidden).await.unwrap();
    assert_eq!(got.len(), 1, "m2's command waits behind m1's");
    let sent = MessageUpdate {
        status: Some(MessageStatus::Sent),
        ..MessageUpdate::default()
    };
    let queued = [MessageStatus::Queued];
    let (m, settled) = store
        .update_message_settling(device, &m1.message_id, &sent, &queued, &[], &got[0], hidden)
        .await
        .unwrap();
    assert_eq!(m.status, MessageStatus::Sent);
    let Settled::Deleted { next: Some(next) } = settled else {
        panic!("not settled with the next command: {settled:?}");
    };
    let env: CommandEnvelope = serde_json::from_str(&next.body).unwrap();
    assert_eq!(
        env.command,
        Command::Send {
            queued: None,
            device_id: device,
            message_id: m2.message_id.clone()
        }
    );

    let (_, stale) = store
        .update_message_settling(device, &m2.message_id, &sent, &queued, &[], &got[0], hidden)
        .await
        .unwrap();
    assert_eq!(stale, Settled::No, "m1's command is gone");
    assert_eq!(
        stored(&store, device, &m2.message_id).await.unwrap().status,
        MessageStatus::Sent,
        "the update was recorded all the same"
    );
    let refused = store
        .update_message_settling(device, &m2.message_id, &sent, &queued, &[], &next, hidden)
        .await;
    assert_eq!(refused, Err(StoreError::Conflict("status")));
    let (_, last) = store
        .update_message_settling(device, &m2.message_id, &sent, &[], &[], &next, hidden)
        .await
        .unwrap();
    assert_eq!(last, Settled::Deleted { next: None });
    assert_eq!(queue.depth(COMMANDS).await.unwrap().visible, 0);
    assert!(nothing_received(&queue, COMMANDS, hidden).await);

    let plain = wa_store::SqliteStore::in_memory().unwrap();
    let other = LocalQueue::in_memory(5).unwrap();
    let m3 = outbound(device);
    let command = Command::Send {
        queued: None,
        device_id: device,
        message_id: m3.message_id.clone(),
    };
    plain
        .create_message_and_enqueue(&m3, None, None, &other, command)
        .await
        .unwrap();
    let got = other.receive(COMMANDS, 10, hidden).await.unwrap();
    let (_, settled) = plain
        .update_message_settling(device, &m3.message_id, &sent, &queued, &[], &got[0], hidden)
        .await
        .unwrap();
    assert_eq!(settled, Settled::No, "a store without the queue leaves it");
    other.delete(COMMANDS, &got[0].receipt).await.unwrap();
}
