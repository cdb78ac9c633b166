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

/// `Ok` when a write by receipt changed `n` rows, more than none; `InvalidReceipt` when the
/// receipt is unknown or expired (it changed nothing).
fn by_receipt(n: usize) -> Result<(), QueueError> {
    if n == 0 {
        Err(QueueError::InvalidReceipt)
    } else {
        Ok(())
    }
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

/// Appends a message, visible after `delay`; whether it is a head (ungrouped, or its group's
/// only message), that is, whether a consumer can receive it once it is visible.
fn insert(
    conn: &rusqlite::Connection,
    message_id: &str,
    queue: &str,
    group: Option<&str>,
    body: &str,
    delay: Duration,
) -> rusqlite::Result<bool> {
    let now = now_ms();
    // The first message of a group is its head; later ones wait behind it.
    conn.prepare_cached(
        "INSERT INTO queue_messages \
         (message_id, queue, grp, body, sent_at_ms, visible_at_ms, head) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?3 IS NULL OR NOT EXISTS \
         (SELECT 1 FROM queue_messages WHERE queue = ?2 AND grp = ?3)) RETURNING head",
    )?
    .query_row(
        params![message_id, queue, group, body, now, now + ms(delay)],
        |r| r.get(0),
    )
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

/// Removes the message holding `receipt` and returns its group; `InvalidReceipt` when none
/// does.
fn remove_received(
    conn: &rusqlite::Connection,
    queue: &str,
    receipt: &str,
) -> Result<Option<String>, QueueError> {
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
        Some(group) => {
            promote_head(conn, queue, group.as_deref())?;
            Ok(group)
        }
    }
}

/// Removes the message holding `receipt` and takes its group's next message when it is
/// visible now (`Queue::delete_and_take_next`), in `conn`'s transaction; on `Err` the
/// caller rolls back what it did (a savepoint).
fn delete_and_take_next(
    conn: &rusqlite::Connection,
    queue: &str,
    receipt: &str,
    max_receives: u32,
    visibility: Duration,
) -> Result<Option<Received>, QueueError> {
    match remove_received(conn, queue, receipt)? {
        Some(group) => take_head(conn, queue, &group, max_receives, visibility),
        None => Ok(None),
    }
}

/// Hides a visible message for `visibility` under a new receipt and returns it as received.
fn take(
    conn: &rusqlite::Connection,
    (seq, message_id, group, body, count): (i64, String, Option<String>, String, u32),
    now: i64,
    visibility: Duration,
) -> Result<Received, QueueError> {
    let receipt = uuid::Uuid::new_v4().to_string();
    conn.prepare_cached(
        "UPDATE queue_messages SET receipt = ?2, receive_count = receive_count + 1, \
         visible_at_ms = ?3 WHERE seq = ?1",
    )
    .map_err(backend)?
    .execute(params![seq, receipt, now + ms(visibility)])
    .map_err(backend)?;
    Ok(Received {
        message_id,
        receipt,
        body,
        group,
        receive_count: count + 1,
    })
}

/// The head of `group` taken as `receive` would take it, when it is visible now; `None`
/// when there is none, it is hidden, or it is due for the dead letters (left to `receive`,
/// which moves it).
fn take_head(
    conn: &rusqlite::Connection,
    queue: &str,
    group: &str,
    max_receives: u32,
    visibility: Duration,
) -> Result<Option<Received>, QueueError> {
    let now = now_ms();
    // The group's first message is its head (`promote_head`); read by the group's index,
    // without looking further into its backlog.
    let first: Option<(i64, String, String, u32, bool, i64)> = conn
        .prepare_cached(
            "SELECT seq, message_id, body, receive_count, head, visible_at_ms \
             FROM queue_messages WHERE queue = ?1 AND grp = ?2 ORDER BY seq LIMIT 1",
        )
        .map_err(backend)?
        .query_row(params![queue, group], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .optional()
        .map_err(backend)?;
    match first {
        Some((seq, message_id, body, count, true, visible_at))
            if visible_at <= now && count < max_receives =>
        {
            let row = (seq, message_id, Some(group.to_owned()), body, count);
            take(conn, row, now, visibility).map(Some)
        }
        _ => Ok(None),
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
    ) -> Result<bool, String> {
        let id = uuid::Uuid::now_v7().to_string();
        insert(conn, &id, queue, group, body, Duration::ZERO).map_err(|e| e.to_string())
    }

    fn committed(&self) {
        self.work.notify_one();
    }

    fn delete_and_take_next_in(
        &self,
        conn: &rusqlite::Connection,
        queue: &str,
        receipt: &str,
        visibility: Duration,
    ) -> Result<Option<Received>, QueueError> {
        delete_and_take_next(conn, queue, receipt, self.max_receives, visibility)
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
        let head = self
            .with(move |conn| {
                insert(conn, &mid, &queue, group.as_deref(), &body, delay).map_err(backend)
            })
            .await?;
        // A message behind its group's head is received only after that one is deleted, and
        // its consumer is awake then: nothing to wake it for.
        if head {
            self.work.notify_one();
        }
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
        // Most receives of a busy consumer find every head in flight: a read on this thread
        // answers those without a write (and its wait for the writer). What becomes visible
        // after it is found by the next receive: sends and deletions wake the consumer after
        // their commit, and it polls for what a timeout makes visible.
        let visible = self.read(|conn| {
            conn.prepare_cached(
                "SELECT 1 FROM queue_messages INDEXED BY queue_messages_heads \
                 WHERE queue = ?1 AND head = 1 AND visible_at_ms <= ?2 LIMIT 1",
            )
            .map_err(backend)?
            .exists(params![queue, now_ms()])
            .map_err(backend)
        })?;
        if !visible {
            return Ok(Vec::new());
        }
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
                    taken.push(seq);
                    out.push(take(
                        &tx,
                        (seq, message_id, group, body, count),
                        now,
                        visibility,
                    )?);
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

    /// One relaxed commit: the deletion, and the receipt of the group's new head (as
    /// harmless to lose in a crash as those of `delete` and `receive`).
    async fn delete_and_take_next(
        &self,
        queue: &str,
        done: &Received,
        visibility: Duration,
    ) -> Result<Option<Received>, QueueError> {
        let (queue, receipt) = (queue.to_owned(), done.receipt.clone());
        let max_receives = self.max_receives;
        self.with_relaxed(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            let next = delete_and_take_next(&tx, &queue, &receipt, max_receives, visibility)?;
            tx.commit().map_err(backend)?;
            Ok(next)
        })
        .await
    }

    /// Relaxed: a release lost in a crash leaves the message in flight until its
    /// visibility timeout, or until the next start takes it back (`release_in_flight`).
    async fn release(&self, queue: &str, received: &Received) -> Result<(), QueueError> {
        let (queue, receipt) = (queue.to_owned(), received.receipt.clone());
        self.with_relaxed(move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE queue_messages SET receipt = NULL, visible_at_ms = ?3, \
                     receive_count = MAX(receive_count - 1, 0) WHERE queue = ?1 AND receipt = ?2",
                )
                .map_err(backend)?
                .execute(params![queue, receipt, now_ms()])
                .map_err(backend)?;
            by_receipt(n)
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
            by_receipt(n)
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
            by_receipt(n)?;
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

    /// An inbox is one more named queue in the same file: `inbox-{tag}`.
    async fn open_inbox(&self, tag: &str) -> Result<Option<String>, QueueError> {
        Ok(Some(format!("inbox-{tag}")))
    }

    async fn close_inbox(&self, inbox: &str) -> Result<(), QueueError> {
        let inbox = inbox.to_owned();
        self.with(move |conn| {
            conn.execute(
                "DELETE FROM queue_messages WHERE queue = ?1",
                params![inbox],
            )
            .map(|_| ())
            .map_err(backend)
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
mod tests;
