//! Messages, pending media and idempotency keys in SQLite.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;
use wa_core::messages::{Message, MessageStatus, MessageUpdate};
use wa_core::queue::{COMMANDS, Command, Queue, Received, command_message};
use wa_core::store::{
    Created, IdempotencyRecord, MessageCursor, MessageStore, PendingCursor, Settled, StoreError,
    create_then_enqueue,
};
use wa_core::time::OffsetDateTime;

use super::events::insert_events;
use super::{SqliteStore, backend, from_ms, ms, write_error};
use crate::inbound;
use crate::page;
use wa_core::webhooks::Event;

/// Applies `u` to the stored message if its status is one of `expect` (any when empty),
/// with `events`, in `conn`'s transaction.
fn apply_update(
    conn: &Connection,
    device_id: Uuid,
    id: &str,
    u: &MessageUpdate,
    expect: &[MessageStatus],
    events: &[Event],
) -> Result<Message, StoreError> {
    let mut m = get(conn, device_id, id)?.ok_or(StoreError::NotFound)?;
    if !expect.is_empty() && !expect.contains(&m.status) {
        return Err(StoreError::Conflict("status"));
    }
    u.apply_to(&mut m);
    conn.prepare_cached(
        "UPDATE messages SET status = ?3, body = ?4 WHERE device_id = ?1 AND message_id = ?2",
    )
    .map_err(backend)?
    .execute(params![
        device_id.to_string(),
        id,
        m.status.as_str(),
        encode(&m)
    ])
    .map_err(backend)?;
    insert_events(conn, events)?;
    Ok(m)
}

fn decode(body: &str) -> Result<Message, StoreError> {
    serde_json::from_str(body)
        .map_err(|e| StoreError::Backend(format!("corrupt message record: {e}")))
}

fn encode(m: &Message) -> String {
    serde_json::to_string(m).expect("messages serialize")
}

fn get(
    conn: &Connection,
    device_id: Uuid,
    message_id: &str,
) -> Result<Option<Message>, StoreError> {
    let body: Option<String> = conn
        .prepare_cached("SELECT body FROM messages WHERE device_id = ?1 AND message_id = ?2")
        .map_err(backend)?
        .query_row(params![device_id.to_string(), message_id], |r| r.get(0))
        .optional()
        .map_err(backend)?;
    body.as_deref().map(decode).transpose()
}

fn get_idem(
    conn: &Connection,
    app_id: Uuid,
    key: &str,
    now_ms: i64,
) -> Result<Option<IdempotencyRecord>, StoreError> {
    conn.prepare_cached(
        "SELECT request_hash, device_id, message_id, response_status, response_body, expires_ms \
         FROM idempotency WHERE app_id = ?1 AND key = ?2 AND expires_ms > ?3",
    )
    .map_err(backend)?
    .query_row(params![app_id.to_string(), key, now_ms], |r| {
        let device: String = r.get(1)?;
        let status: Option<i64> = r.get(3)?;
        let body: Option<String> = r.get(4)?;
        Ok((
            r.get::<_, String>(0)?,
            device,
            r.get::<_, String>(2)?,
            status,
            body,
            r.get::<_, i64>(5)?,
        ))
    })
    .optional()
    .map_err(backend)?
    .map(|(hash, device, message_id, status, body, expires)| {
        Ok(IdempotencyRecord {
            app_id,
            key: key.to_owned(),
            request_hash: hash,
            device_id: Uuid::parse_str(&device).map_err(|e| StoreError::Backend(e.to_string()))?,
            message_id,
            response: status.zip(body).map(|(s, b)| (s as u16, b)),
            expires_at: from_ms(expires),
        })
    })
    .transpose()
}

/// Writes a new message with its media, idempotency reservation and events in `tx`; writes
/// nothing when the key is taken (`Existing`).
fn insert_message(
    tx: &Connection,
    m: &Message,
    media: Option<Vec<u8>>,
    idem: Option<&IdempotencyRecord>,
    events: &[Event],
) -> Result<Created, StoreError> {
    if let Some(rec) = idem {
        let now = ms(wa_core::time::now());
        if let Some(existing) = get_idem(tx, rec.app_id, &rec.key, now)? {
            return Ok(Created::Existing(existing));
        }
        // An expired key is free again.
        tx.execute(
            "INSERT OR REPLACE INTO idempotency \
             (app_id, key, request_hash, device_id, message_id, expires_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                rec.app_id.to_string(),
                rec.key,
                rec.request_hash,
                rec.device_id.to_string(),
                rec.message_id,
                ms(rec.expires_at)
            ],
        )
        .map_err(backend)?;
    }
    tx.prepare_cached(
        "INSERT INTO messages (device_id, message_id, status, created_ms, body) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .map_err(backend)?
    .execute(params![
        m.device_id.to_string(),
        m.message_id,
        m.status.as_str(),
        ms(m.created_at),
        encode(m)
    ])
    .map_err(write_error)?;
    if let Some(bytes) = media {
        tx.execute(
            "INSERT OR REPLACE INTO outbound_media (device_id, message_id, bytes) VALUES (?1, ?2, ?3)",
            params![m.device_id.to_string(), m.message_id, bytes],
        )
        .map_err(backend)?;
    }
    insert_events(tx, events)?;
    Ok(Created::Created)
}

/// The pending statuses in listing order, with their cursor letters.
const PENDING: [(&str, &str); 2] = [("q", "queued"), ("s", "sending")];

fn parse_pending_cursor(cursor: &str) -> Result<(usize, i64), StoreError> {
    let bad = || StoreError::Backend(format!("not a pending-messages cursor: {cursor}"));
    let (letter, rowid) = cursor.split_once(':').ok_or_else(bad)?;
    let phase = PENDING
        .iter()
        .position(|(l, _)| *l == letter)
        .ok_or_else(bad)?;
    Ok((phase, rowid.parse().map_err(|_| bad())?))
}

#[async_trait]
impl MessageStore for SqliteStore {
    async fn create_message(
        &self,
        message: &Message,
        media: Option<&[u8]>,
        idempotency: Option<&IdempotencyRecord>,
        events: &[Event],
    ) -> Result<Created, StoreError> {
        let m = message.clone();
        let events = events.to_vec();
        let media = media.map(<[u8]>::to_vec);
        let idem = idempotency.cloned();
        self.with(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            let created = insert_message(&tx, &m, media, idem.as_ref(), &events)?;
            if created == Created::Created {
                tx.commit().map_err(backend)?;
            }
            Ok(created)
        })
        .await
    }

    async fn create_message_and_enqueue(
        &self,
        message: &Message,
        media: Option<&[u8]>,
        idempotency: Option<&IdempotencyRecord>,
        queue: &dyn Queue,
        command: Command,
    ) -> Result<Created, StoreError> {
        let Some(commands) = self.commands.clone() else {
            return create_then_enqueue(self, message, media, idempotency, queue, command).await;
        };
        // Made here: the body carries the id of the request this task serves.
        let (group, body) = command_message(command)
            .map_err(|e| StoreError::Backend(format!("queueing the command failed: {e}")))?;
        let m = message.clone();
        let media = media.map(<[u8]>::to_vec);
        let idem = idempotency.cloned();
        let inline = commands.clone();
        let (created, head) = self
            .with(move |conn| {
                let tx = conn.savepoint().map_err(backend)?;
                let created = insert_message(&tx, &m, media, idem.as_ref(), &[])?;
                let mut head = false;
                if created == Created::Created {
                    head = inline
                        .insert(&tx, COMMANDS, Some(&group), &body)
                        .map_err(|e| {
                            StoreError::Backend(format!("queueing the command failed: {e}"))
                        })?;
                    tx.commit().map_err(backend)?;
                }
                Ok((created, head))
            })
            .await?;
        // A command behind its device's current one is received after that one is settled:
        // its consumer is awake then.
        if head {
            commands.committed();
        }
        Ok(created)
    }

    async fn get_message(
        &self,
        device_id: Uuid,
        message_id: &str,
    ) -> Result<Option<Message>, StoreError> {
        let id = message_id.to_owned();
        self.read(move |conn| get(conn, device_id, &id))
    }

    async fn inbound_message_id(
        &self,
        device_id: Uuid,
        chat: &str,
        from: &str,
        message_id: &str,
    ) -> Result<Option<String>, StoreError> {
        inbound::message_id(chat, from, message_id, |[id, derived]| async move {
            self.read(move |conn| Ok([get(conn, device_id, &id)?, get(conn, device_id, &derived)?]))
        })
        .await
    }

    async fn list_messages(
        &self,
        device_id: Uuid,
        limit: u32,
        before: Option<&MessageCursor>,
    ) -> Result<(Vec<Message>, Option<MessageCursor>), StoreError> {
        let before = before.cloned();
        self.read(move |conn| {
            let (bms, bid) = match &before {
                Some(c) => (c.created_ms, c.message_id.clone()),
                None => (i64::MAX, String::new()),
            };
            let rows: Vec<String> = conn
                .prepare_cached(
                    "SELECT body FROM messages WHERE device_id = ?1 \
                     AND (created_ms < ?2 OR (created_ms = ?2 AND ?3 != '' AND message_id < ?3)) \
                     ORDER BY created_ms DESC, message_id DESC LIMIT ?4",
                )
                .map_err(backend)?
                .query_map(
                    params![device_id.to_string(), bms, bid, page::fetch(limit) as i64],
                    |r| r.get(0),
                )
                .map_err(backend)?
                .collect::<Result<_, _>>()
                .map_err(backend)?;
            let items = rows
                .iter()
                .map(|b| decode(b))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(page::cut(items, limit, MessageCursor::of))
        })
    }

    async fn update_message(
        &self,
        device_id: Uuid,
        message_id: &str,
        update: &MessageUpdate,
        expect: &[MessageStatus],
        events: &[Event],
    ) -> Result<Message, StoreError> {
        let (id, u, expect) = (message_id.to_owned(), update.clone(), expect.to_vec());
        let events = events.to_vec();
        self.with(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            let m = apply_update(&tx, device_id, &id, &u, &expect, &events)?;
            tx.commit().map_err(backend)?;
            Ok(m)
        })
        .await
    }

    async fn update_message_settling(
        &self,
        device_id: Uuid,
        message_id: &str,
        update: &MessageUpdate,
        expect: &[MessageStatus],
        events: &[Event],
        done: &Received,
        visibility: Duration,
    ) -> Result<(Message, Settled), StoreError> {
        let Some(commands) = self.commands.clone() else {
            let m = self
                .update_message(device_id, message_id, update, expect, events)
                .await?;
            return Ok((m, Settled::No));
        };
        let (id, u, expect) = (message_id.to_owned(), update.clone(), expect.to_vec());
        let (events, receipt) = (events.to_vec(), done.receipt.clone());
        self.with(move |conn| {
            let mut tx = conn.savepoint().map_err(backend)?;
            let m = apply_update(&tx, device_id, &id, &u, &expect, &events)?;
            // The command's deletion commits with the outcome, or not at all: never deleted
            // before its outcome is durable, so a crash at any point leaves either both or
            // the command to be received again (and then skipped, its message no longer
            // pending). A stale receipt leaves the command to the caller.
            let sp = tx.savepoint().map_err(backend)?;
            let settled =
                match commands.delete_and_take_next_in(&sp, COMMANDS, &receipt, visibility) {
                    Ok(next) => {
                        sp.commit().map_err(backend)?;
                        Settled::Deleted { next }
                    }
                    Err(_) => {
                        drop(sp);
                        Settled::No
                    }
                };
            tx.commit().map_err(backend)?;
            Ok((m, settled))
        })
        .await
    }

    async fn outbound_media(
        &self,
        device_id: Uuid,
        message_id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let id = message_id.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT bytes FROM outbound_media WHERE device_id = ?1 AND message_id = ?2",
            )
            .map_err(backend)?
            .query_row(params![device_id.to_string(), id], |r| r.get(0))
            .optional()
            .map_err(backend)
        })
    }

    async fn delete_outbound_media(
        &self,
        device_id: Uuid,
        message_id: &str,
    ) -> Result<(), StoreError> {
        let id = message_id.to_owned();
        self.with(move |conn| {
            conn.execute(
                "DELETE FROM outbound_media WHERE device_id = ?1 AND message_id = ?2",
                params![device_id.to_string(), id],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn pending_messages(
        &self,
        device_id: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        self.read(move |conn| {
            let rows: Vec<String> = conn
                .prepare_cached(
                    "SELECT body FROM messages WHERE status IN ('queued', 'sending') \
                     AND (?1 IS NULL OR device_id = ?1) ORDER BY created_ms, message_id LIMIT ?2",
                )
                .map_err(backend)?
                .query_map(
                    params![device_id.map(|d| d.to_string()), limit as i64],
                    |r| r.get(0),
                )
                .map_err(backend)?
                .collect::<Result<_, _>>()
                .map_err(backend)?;
            rows.iter().map(|b| decode(b)).collect()
        })
    }

    /// Pages by status (`queued` first, then `sending`) and rowid, through the partial
    /// index of pending messages; the cursor is `<q|s>:<rowid>`.
    async fn pending_page(
        &self,
        after: Option<&PendingCursor>,
        limit: u32,
    ) -> Result<(Vec<Message>, Option<PendingCursor>), StoreError> {
        let (mut phase, mut rowid) = match after {
            None => (0usize, 0i64),
            Some(c) => parse_pending_cursor(&c.0)?,
        };
        self.read(move |conn| {
            let mut out: Vec<Message> = Vec::new();
            let mut last = None;
            while phase < PENDING.len() && out.len() < limit as usize {
                let want = limit as usize - out.len();
                let rows: Vec<(i64, String)> = conn
                    .prepare_cached(
                        "SELECT rowid, body FROM messages WHERE status IN ('queued', 'sending') \
                         AND status = ?1 AND rowid > ?2 ORDER BY rowid LIMIT ?3",
                    )
                    .map_err(backend)?
                    .query_map(params![PENDING[phase].1, rowid, want as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .map_err(backend)?
                    .collect::<Result<_, _>>()
                    .map_err(backend)?;
                for (id, body) in &rows {
                    out.push(decode(body)?);
                    last = Some((phase, *id));
                }
                if rows.len() < want {
                    phase += 1;
                    rowid = 0;
                }
            }
            // A full page may have a next one; the next phase may too.
            let next = match last {
                Some((p, id)) if out.len() >= limit as usize => Some((p, id)),
                _ => None,
            };
            Ok((
                out,
                next.map(|(p, id)| PendingCursor(format!("{}:{id}", PENDING[p].0))),
            ))
        })
    }

    async fn get_idempotency(
        &self,
        app_id: Uuid,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let key = key.to_owned();
        self.read(move |conn| get_idem(conn, app_id, &key, ms(wa_core::time::now())))
    }

    async fn set_idempotency_response(
        &self,
        app_id: Uuid,
        key: &str,
        status: u16,
        body: &str,
    ) -> Result<(), StoreError> {
        let (key, body) = (key.to_owned(), body.to_owned());
        self.with(move |conn| {
            conn.execute(
                "UPDATE idempotency SET response_status = ?3, response_body = ?4 \
                 WHERE app_id = ?1 AND key = ?2 AND response_status IS NULL",
                params![app_id.to_string(), key, status as i64, body],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn clear_idempotency_response(&self, app_id: Uuid, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.with(move |conn| {
            conn.execute(
                "UPDATE idempotency SET response_status = NULL, response_body = NULL \
                 WHERE app_id = ?1 AND key = ?2",
                params![app_id.to_string(), key],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn purge_expired_idempotency(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.with(move |conn| {
            let n = conn
                .execute("DELETE FROM idempotency WHERE expires_ms <= ?1", [ms(now)])
                .map_err(backend)?;
            Ok(n as u64)
        })
        .await
    }
}
