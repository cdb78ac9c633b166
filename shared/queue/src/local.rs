//! The local durable queue on SQLite.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use wa_core::queue::{DeadLetter, Depth, Outgoing, Queue, QueueError, Received};
use wa_store::InlineQueue;
use wa_store::db::{Db, DbError};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS queue_messages (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id    TEXT NOT NULL UNIQUE,
    queue         TEXT NOT NULL,
    grp           TEXT,
    body          TEXT NOT NULL,
    sent_at_ms    INTEGER NOT NULL,
    visible_at_ms INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       TEXT UNIQUE,
    head          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS queue_messages_visible ON queue_messages (queue, visible_at_ms);
CREATE INDEX IF NOT EXISTS queue_messages_group ON queue_messages (queue, grp, seq);
CREATE TABLE IF NOT EXISTS queue_dead_letters (
    message_id    TEXT PRIMARY KEY,
    queue         TEXT NOT NULL,
    grp           TEXT,
    body          TEXT NOT NULL,
    reason        TEXT NOT NULL,
    died_at_ms    INTEGER NOT NULL
);
"#;

/// `head` marks the messages a receive may take: every ungrouped message, and the oldest
/// message of each group. Receiving reads only them through this index, so its cost does
/// not grow with a group's backlog (it used to look at every waiting message of the queue).
/// Tables made before the column existed get it, with its values, on opening.
const HEADS: &str = r#"
ALTER TABLE queue_messages ADD COLUMN head INTEGER NOT NULL DEFAULT 0;
UPDATE queue_messages SET head = 1 WHERE grp IS NULL OR seq = (SELECT MIN(seq) FROM
    queue_messages m WHERE m.queue = queue_messages.queue AND m.grp = queue_messages.grp);
"#;
const HEADS_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS queue_messages_heads ON queue_messages (queue, seq) WHERE head = 1";

/// A durable queue in one SQLite file.
#[derive(Clone)]
pub struct LocalQueue {
    db: Db,
    max_receives: u32,
    /// Wakes consumers of this process when a message is sent.
    work: Arc<tokio::sync::Notify>,
}

fn backend(e: rusqlite::Error) -> QueueError {
    QueueError::Backend(e.to_string())
}

fn db_error(e: DbError) -> QueueError {
    QueueError::Backend(e.0)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

fn init(conn: &mut rusqlite::Connection) -> Result<(), String> {
    // `LocalQueue::on` runs this inside the writer's transaction; opened on its own, it takes
    // the write lock first, so that a second process opening the file at the same moment
    // waits instead of adding the column twice.
    let own = conn.is_autocommit();
    if own {
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| e.to_string())?;
    }
    let tx = conn.savepoint().map_err(|e| e.to_string())?;
    let done = create(&tx).and_then(|()| tx.commit().map_err(|e| e.to_string()));
    if own {
        let end = if done.is_ok() { "COMMIT" } else { "ROLLBACK" };
        conn.execute_batch(end).map_err(|e| e.to_string())?;
    }
    done
}

/// The tables and indexes, and the `head` column for tables made before it.
fn create(conn: &rusqlite::Connection) -> Result<(), String> {
    conn.execute_batch(SCHEMA).map_err(|e| e.to_string())?;
    let has_head: bool = conn
        .query_row(
            "SELECT COUNT(*) FROM pragma_table_info('queue_messages') WHERE name = 'head'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(|e| e.to_string())?
        > 0;
    if !has_head {
        conn.execute_batch(HEADS).map_err(|e| e.to_string())?;
    }
    conn.execute_batch(HEADS_INDEX).map_err(|e| e.to_string())
}

/// Appends a message, visible after `delay`.
fn insert(
    conn: &rusqlite::Connection,
    message_id: &str,
    queue: &str,
    group: Option<&str>,
    body: &str,
    delay: Duration,
) -> rusqlite::Result<()> {
    let now = now_ms();
    // The first message of a group is its head; later ones wait behind it.
    conn.prepare_cached(
        "INSERT INTO queue_messages \
         (message_id, queue, grp, body, sent_at_ms, visible_at_ms, head) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?3 IS NULL OR NOT EXISTS \
         (SELECT 1 FROM queue_messages WHERE queue = ?2 AND grp = ?3))",
    )?
    .execute(params![
        message_id,
        queue,
        group,
        body,
        now,
        now + ms(delay)
    ])?;
    Ok(())
}

/// After a message of `group` left the queue: its group's oldest remaining message becomes
/// the head.
fn promote_head(
    conn: &rusqlite::Connection,
    queue: &str,
    group: Option<&str>,
) -> Result<(), QueueError> {
    let Some(group) = group else { return Ok(()) };
    conn.prepare_cached(
        "UPDATE queue_messages SET head = 1 WHERE seq = \
         (SELECT MIN(seq) FROM queue_messages WHERE queue = ?1 AND grp = ?2) AND head = 0",
    )
    .map_err(backend)?
    .execute(params![queue, group])
    .map_err(backend)?;
    Ok(())
}

/// Removes the message holding `receipt`; `InvalidReceipt` when none does.
fn remove_received(
    conn: &rusqlite::Connection,
    queue: &str,
    receipt: &str,
) -> Result<(), QueueError> {
    let group: Option<Option<String>> = conn
        .prepare_cached(
            "DELETE FROM queue_messages WHERE queue = ?1 AND receipt = ?2 RETURNING grp",
        )
        .map_err(backend)?
        .query_row(params![queue, receipt], |r| r.get(0))
        .optional()
        .map_err(backend)?;
    match group {
        None => Err(QueueError::InvalidReceipt),
        Some(group) => promote_head(conn, queue, group.as_deref()),
    }
}

impl LocalQueue {
    /// Opens (creating) the queue file. A message delivered `max_receives` times without
    /// being deleted moves to the dead letters instead of being delivered again.
    pub fn open(path: &Path, max_receives: u32) -> Result<Self, QueueError> {
        Ok(Self::with_db(
            Db::open(path, init).map_err(QueueError::Backend)?,
            max_receives,
        ))
    }

    /// A queue in the tables of an open database (the store's: a send's message and its
    /// command then share one commit).
    pub fn on(db: Db, max_receives: u32) -> Result<Self, QueueError> {
        db.write_blocking(init).map_err(QueueError::Backend)?;
        Ok(Self::with_db(db, max_receives))
    }

    /// A private queue in a temporary directory (tests).
    pub fn in_memory(max_receives: u32) -> Result<Self, QueueError> {
        Ok(Self::with_db(
            Db::temporary(init).map_err(QueueError::Backend)?,
            max_receives,
        ))
    }

    fn with_db(db: Db, max_receives: u32) -> Self {
        LocalQueue {
            db,
            max_receives: max_receives.max(1),
            work: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// A write, committed with the other writes waiting at the same moment.
    async fn with<T, F>(&self, f: F) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> Result<T, QueueError> + Send + 'static,
    {
        self.db
            .write(move |c| f(c).map_err(DbErrorOr::Queue))
            .await
            .map_err(|e: DbErrorOr| e.into_queue())
    }

    /// A write whose loss in a crash is harmless (receipts, deletions of handled messages:
    /// at worst the message is delivered once more, and consumers are idempotent).
    async fn with_relaxed<T, F>(&self, f: F) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> Result<T, QueueError> + Send + 'static,
    {
        self.db
            .write_relaxed(move |c| f(c).map_err(DbErrorOr::Queue))
            .await
            .map_err(|e: DbErrorOr| e.into_queue())
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T, QueueError>,
    ) -> Result<T, QueueError> {
        self.db
            .read(|c| f(c).map_err(DbErrorOr::Queue))
            .map_err(|e: DbErrorOr| e.into_queue())
    }
}

/// The store writes the commands of new sends with the message itself, when the queue is
/// in the store's database (`SqliteStore::with_commands_queue`).
impl InlineQueue for LocalQueue {
    fn insert(
        &self,
        conn: &rusqlite::Connection,
        queue: &str,
        group: Option<&str>,
        body: &str,
    ) -> Result<(), String> {
        let id = uuid::Uuid::now_v7().to_string();
        insert(conn, &id, queue, group, body, Duration::ZERO).map_err(|e| e.to_string())
    }

    fn committed(&self) {
        self.work.notify_one();
    }

    fn db(&self) -> &Db {
        &self.db
    }
}

/// The error type the shared writer needs: a queue error, or the writer's own.
enum DbErrorOr {
    Queue(QueueError),
    Db(DbError),
}

impl From<DbError> for DbErrorOr {
    fn from(e: DbError) -> Self {
        DbErrorOr::Db(e)
    }
}

impl DbErrorOr {
    fn into_queue(self) -> QueueError {
        match self {
            DbErrorOr::Queue(q) => q,
            DbErrorOr::Db(e) => db_error(e),
        }
    }
}

#[async_trait]
impl Queue for LocalQueue {
    async fn send(
        &self,
        queue: &str,
        group: Option<&str>,
        body: &str,
        delay: Duration,
    ) -> Result<String, QueueError> {
        let id = uuid::Uuid::now_v7().to_string();
        let (queue, group, body, mid) = (
            queue.to_owned(),
            group.map(str::to_owned),
            body.to_owned(),
            id.clone(),
        );
        self.with(move |conn| {
            insert(conn, &mid, &queue, group.as_deref(), &body, delay).map_err(backend)
        })
        .await?;
        self.work.notify_one();
        Ok(id)
    }

    /// One transaction: every message of the batch is written, or none.
    async fn send_batch(
        &self,
        queue: &str,
        messages: &[Outgoing],
    ) -> Result<Vec<String>, QueueError> {
        let ids: Vec<String> = messages
            .iter()
            .map(|_| uuid::Uuid::now_v7().to_string())
            .collect();
        let (queue, messages, mids) = (queue.to_owned(), messages.to_vec(), ids.clone());
        self.with(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            for (m, id) in messages.iter().zip(&mids) {
                insert(&tx, id, &queue, m.group.as_deref(), &m.body, Duration::ZERO)
                    .map_err(backend)?;
            }
            tx.commit().map_err(backend)
        })
        .await?;
        self.work.notify_one();
        Ok(ids)
    }

    async fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Received>, QueueError> {
        let queue = queue.to_owned();
        let max_receives = self.max_receives;
        self.with_relaxed(move |conn| {
            let now = now_ms();
            let tx = conn.savepoint().map_err(backend)?;
            // Per group only the oldest message is eligible (the head), and only when it is
            // visible: a group's messages go one at a time, in order.
            let mut out: Vec<Received> = Vec::new();
            let mut taken: Vec<i64> = Vec::new();
            // Dead-lettering a group's head makes the next message the head: select again.
            loop {
                let mut moved = false;
                let rows: Vec<(i64, String, Option<String>, String, u32)> = tx
                    .prepare_cached(
                        // Named: without statistics the planner would rather range over
                        // `queue_messages_visible`, which holds every waiting message.
                        "SELECT seq, message_id, grp, body, receive_count FROM queue_messages \
                         INDEXED BY queue_messages_heads \
                         WHERE queue = ?1 AND head = 1 AND visible_at_ms <= ?2 \
                         ORDER BY seq LIMIT ?3",
                    )
                    .map_err(backend)?
                    .query_map(params![queue, now, max as i64 * 2 + 1], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })
                    .map_err(backend)?
                    .collect::<Result<_, _>>()
                    .map_err(backend)?;
                for (seq, message_id, group, body, count) in rows {
                    if out.len() >= max {
                        break;
                    }
                    // Taken in an earlier round (visible again at once with a zero timeout).
                    if taken.contains(&seq) {
                        continue;
                    }
                    if count >= max_receives {
                        tx.execute(
                            "INSERT OR REPLACE INTO queue_dead_letters \
                             (message_id, queue, grp, body, reason, died_at_ms) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                            params![
                                message_id,
                                queue,
                                group,
                                body,
                                format!("received {count} times without being processed"),
                                now
                            ],
                        )
                        .map_err(backend)?;
                        tx.execute("DELETE FROM queue_messages WHERE seq = ?1", [seq])
                            .map_err(backend)?;
                        promote_head(&tx, &queue, group.as_deref())?;
                        tracing::warn!(queue = %queue, %message_id, "message moved to dead letters");
                        moved = true;
                        continue;
                    }
                    let receipt = uuid::Uuid::new_v4().to_string();
                    tx.prepare_cached(
                        "UPDATE queue_messages SET receipt = ?2, receive_count = receive_count + 1, \
                         visible_at_ms = ?3 WHERE seq = ?1",
                    )
                    .map_err(backend)?
                    .execute(params![seq, receipt, now + ms(visibility)])
                    .map_err(backend)?;
                    taken.push(seq);
                    out.push(Received {
                        message_id,
                        receipt,
                        body,
                        group,
                        receive_count: count + 1,
                    });
                }
                if !moved || out.len() >= max {
                    break;
                }
            }
            tx.commit().map_err(backend)?;
            Ok(out)
        })
        .await
    }

    async fn delete(&self, queue: &str, receipt: &str) -> Result<(), QueueError> {
        let (queue, receipt) = (queue.to_owned(), receipt.to_owned());
        self.with_relaxed(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            remove_received(&tx, &queue, &receipt)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn retry_after(
        &self,
        queue: &str,
        receipt: &str,
        delay: Duration,
    ) -> Result<(), QueueError> {
        let (queue, receipt) = (queue.to_owned(), receipt.to_owned());
        self.with(move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE queue_messages SET visible_at_ms = ?3 WHERE queue = ?1 AND receipt = ?2",
                )
                .map_err(backend)?
                .execute(params![queue, receipt, now_ms() + ms(delay)])
                .map_err(backend)?;
            if n == 0 {
                Err(QueueError::InvalidReceipt)
            } else {
                Ok(())
            }
        })
        .await
    }

    async fn dead_letter(
        &self,
        queue: &str,
        received: &Received,
        reason: &str,
    ) -> Result<(), QueueError> {
        let (queue, receipt, reason) = (
            queue.to_owned(),
            received.receipt.clone(),
            reason.to_owned(),
        );
        self.with(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            let n = tx
                .execute(
                    "INSERT OR REPLACE INTO queue_dead_letters \
                     (message_id, queue, grp, body, reason, died_at_ms) \
                     SELECT message_id, queue, grp, body, ?3, ?4 FROM queue_messages \
                     WHERE queue = ?1 AND receipt = ?2",
                    params![queue, receipt, reason, now_ms()],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(QueueError::InvalidReceipt);
            }
            remove_received(&tx, &queue, &receipt)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn dead_letters(&self, queue: &str, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let queue = queue.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT message_id, body, grp, reason FROM queue_dead_letters WHERE queue = ?1 \
                 ORDER BY died_at_ms, message_id LIMIT ?2",
            )
            .map_err(backend)?
            .query_map(params![queue, limit as i64], |r| {
                Ok(DeadLetter {
                    message_id: r.get(0)?,
                    body: r.get(1)?,
                    group: r.get(2)?,
                    reason: r.get(3)?,
                })
            })
            .map_err(backend)?
            .collect::<Result<_, _>>()
            .map_err(backend)
        })
    }

    async fn release_in_flight(&self, queue: &str) -> Result<u64, QueueError> {
        let queue = queue.to_owned();
        self.with(move |conn| {
            let n = conn
                .execute(
                    "UPDATE queue_messages SET visible_at_ms = ?2, receipt = NULL \
                     WHERE queue = ?1 AND receive_count > 0 AND visible_at_ms > ?2",
                    params![queue, now_ms()],
                )
                .map_err(backend)?;
            Ok(n as u64)
        })
        .await
    }

    async fn wait_for_work(&self, max_wait: Duration) {
        let _ = tokio::time::timeout(max_wait, self.work.notified()).await;
    }

    async fn depth(&self, queue: &str) -> Result<Depth, QueueError> {
        let queue = queue.to_owned();
        self.read(move |conn| {
            let now = now_ms();
            conn.query_row(
                "SELECT \
                   COALESCE(SUM(visible_at_ms <= ?2), 0), \
                   COALESCE(SUM(visible_at_ms > ?2 AND receive_count > 0), 0), \
                   MIN(sent_at_ms) \
                 FROM queue_messages WHERE queue = ?1",
                params![queue, now],
                |r| {
                    let oldest: Option<i64> = r.get(2)?;
                    Ok(Depth {
                        visible: r.get::<_, i64>(0)? as u64,
                        in_flight: r.get::<_, i64>(1)? as u64,
                        oldest_age_secs: oldest
                            .map(|o| (now - o).max(0) as f64 / 1000.0)
                            .unwrap_or(0.0),
                    })
                },
            )
            .map_err(backend)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(
            q.receive("q", 10, Duration::from_secs(30))
                .await
                .unwrap()
                .is_empty()
        );
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
            q.receive("q", 10, Duration::from_secs(30))
                .await
                .unwrap()
                .is_empty(),
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
        assert_eq!(
            store.get_message(device, &m.message_id).await.unwrap(),
            Some(m.clone())
        );
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
        assert!(
            elsewhere
                .receive(COMMANDS, 10, Duration::from_secs(30))
                .await
                .unwrap()
                .is_empty()
        );

        // The same key again: the first reservation answers, nothing more is queued.
        let again = outbound(device);
        let mut taken = record.clone();
        taken.message_id = again.message_id.clone();
        let second = store
            .create_message_and_enqueue(&again, None, Some(&taken), &elsewhere, command)
            .await
            .unwrap();
        assert!(matches!(second, Created::Existing(r) if r.message_id == m.message_id));
        assert_eq!(
            store.get_message(device, &again.message_id).await.unwrap(),
            None
        );
        queue.delete(COMMANDS, &got[0].receipt).await.unwrap();
        assert!(
            queue
                .receive(COMMANDS, 10, Duration::from_secs(30))
                .await
                .unwrap()
                .is_empty()
        );
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
            device_id: device,
            message_id: m.message_id.clone(),
        };
        let created = store
            .create_message_and_enqueue(&m, None, None, &queue, command)
            .await
            .unwrap();
        assert_eq!(created, Created::Created);
        assert!(
            store
                .get_message(device, &m.message_id)
                .await
                .unwrap()
                .is_some()
        );
        let got = queue
            .receive(COMMANDS, 10, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
    }
}
