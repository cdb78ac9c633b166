//! The event outbox in SQLite: one row per event, carrying its delivery state.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;
use wa_core::store::{Attempt, Delivery, DeliveryStatus, DeviceHead, EventStore, StoreError};
use wa_core::time::OffsetDateTime;
use wa_core::webhooks::Event;

use super::{SqliteStore, backend, from_ms, ms};
use crate::page;

/// Writes events in the caller's transaction, pending and due at once.
pub(crate) fn insert_events(tx: &Connection, events: &[Event]) -> Result<(), StoreError> {
    for e in events {
        let now = ms(wa_core::time::now());
        tx.prepare_cached(
            "INSERT INTO deliveries (request_id, app_id, device_id, body, status, next_attempt_ms, updated_ms) \
             VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?5)",
        )
        .map_err(backend)?
        .execute(params![e.request_id, e.app_id.to_string(), e.device_id.to_string(), e.body(), now])
        .map_err(backend)?;
    }
    Ok(())
}

type RawRow = (
    i64,
    String,
    String,
    u32,
    i64,
    Option<String>,
    Option<i64>,
    i64,
);

const COLUMNS: &str =
    "seq, body, status, attempts, next_attempt_ms, last_error, last_status, updated_ms";

fn from_row(r: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

fn decode(raw: RawRow) -> Result<Delivery, StoreError> {
    let (seq, body, status, attempts, next, last_error, last_status, updated) = raw;
    Ok(Delivery {
        seq,
        event: serde_json::from_str(&body)
            .map_err(|e| StoreError::Backend(format!("corrupt event: {e}")))?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| StoreError::Backend(format!("bad status {status}")))?,
        attempts,
        next_attempt_at: from_ms(next),
        last_error,
        last_status_code: last_status.map(|s| s as u16),
        updated_at: from_ms(updated),
    })
}

fn query(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Delivery>, StoreError> {
    let rows: Vec<RawRow> = conn
        .prepare_cached(sql)
        .map_err(backend)?
        .query_map(params, from_row)
        .map_err(backend)?
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    rows.into_iter().map(decode).collect()
}

/// The delivery `request_id` after an update conditioned on its status changed `n` rows:
/// `NotFound` when there is none, `Conflict("status")` when its status refused the update.
fn changed(conn: &Connection, request_id: &str, n: usize) -> Result<Delivery, StoreError> {
    if n == 0 {
        return Err(match get(conn, request_id)? {
            None => StoreError::NotFound,
            Some(_) => StoreError::Conflict("status"),
        });
    }
    get(conn, request_id)?.ok_or(StoreError::NotFound)
}

fn get(conn: &Connection, request_id: &str) -> Result<Option<Delivery>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM deliveries WHERE request_id = ?1"
    ))
    .map_err(backend)?
    .query_row([request_id], from_row)
    .optional()
    .map_err(backend)?
    .map(decode)
    .transpose()
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append_events(&self, events: &[Event]) -> Result<(), StoreError> {
        let events = events.to_vec();
        self.with(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            insert_events(&tx, &events)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn due_deliveries(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.read(move |conn| {
            query(
                conn,
                &format!(
                    "SELECT {COLUMNS} FROM deliveries WHERE seq IN \
                     (SELECT MIN(seq) FROM deliveries WHERE status = 'pending' GROUP BY device_id) \
                     AND next_attempt_ms <= ?1 ORDER BY seq LIMIT ?2"
                ),
                params![ms(now), limit as i64],
            )
        })
    }

    async fn next_delivery_of_device(
        &self,
        device_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<DeviceHead, StoreError> {
        self.read(move |conn| {
            let mut d = query(
                conn,
                &format!(
                    "SELECT {COLUMNS} FROM deliveries WHERE device_id = ?1 AND status = 'pending' \
                     ORDER BY seq LIMIT 2"
                ),
                params![device_id.to_string()],
            )?;
            let more = d.len() > 1;
            d.truncate(1);
            Ok(DeviceHead::of(d.pop(), now, more))
        })
    }

    async fn record_attempt(
        &self,
        request_id: &str,
        attempt: &Attempt,
    ) -> Result<Delivery, StoreError> {
        let (id, attempt) = (request_id.to_owned(), attempt.clone());
        self.with(move |conn| {
            let now = ms(wa_core::time::now());
            let (status, next, error, code, count) = match &attempt {
                Attempt::Delivered { status_code } => ("delivered", now, None, Some(*status_code), 1),
                Attempt::Retry { next, error, status_code } => ("pending", ms(*next), Some(error.clone()), *status_code, 1),
                Attempt::Failed { error, status_code } => ("failed", now, Some(error.clone()), *status_code, 1),
                Attempt::Skipped => ("skipped", now, Some("the App has no webhook URL".to_owned()), None, 0),
            };
            let n = conn
                .prepare_cached(
                    "UPDATE deliveries SET status = ?2, attempts = attempts + ?6, next_attempt_ms = ?3, \
                     last_error = ?4, last_status = ?5, updated_ms = ?7 \
                     WHERE request_id = ?1 AND status = 'pending'",
                )
                .map_err(backend)?
                .execute(params![id, status, next, error, code.map(i64::from), count, now])
                .map_err(backend)?;
            changed(conn, &id, n)
        })
        .await
    }

    async fn release_delivery(&self, request_id: &str) -> Result<(), StoreError> {
        let id = request_id.to_owned();
        self.with(move |conn| {
            let now = ms(wa_core::time::now());
            conn.prepare_cached(
                "UPDATE deliveries SET next_attempt_ms = ?2, updated_ms = ?2 \
                 WHERE request_id = ?1 AND status = 'pending' AND attempts = 0 AND next_attempt_ms > ?2",
            )
            .map_err(backend)?
            .execute(params![id, now])
            .map_err(backend)?;
            get(conn, &id)?.map(|_| ()).ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn list_deliveries(
        &self,
        app_id: Uuid,
        status: Option<DeliveryStatus>,
        limit: u32,
        before_seq: Option<i64>,
    ) -> Result<(Vec<Delivery>, Option<i64>), StoreError> {
        self.read(move |conn| {
            let items = query(
                conn,
                &format!(
                    "SELECT {COLUMNS} FROM deliveries WHERE app_id = ?1 AND (?2 IS NULL OR status = ?2) \
                     AND seq < ?3 ORDER BY seq DESC LIMIT ?4"
                ),
                params![
                    app_id.to_string(),
                    status.map(|s| s.as_str()),
                    before_seq.unwrap_or(i64::MAX),
                    page::fetch(limit) as i64
                ],
            )?;
            Ok(page::cut(items, limit, |d| d.seq))
        })
    }

    async fn get_delivery(&self, request_id: &str) -> Result<Option<Delivery>, StoreError> {
        let id = request_id.to_owned();
        self.read(move |conn| get(conn, &id))
    }

    async fn redeliver(&self, request_id: &str) -> Result<Delivery, StoreError> {
        let id = request_id.to_owned();
        self.with(move |conn| {
            let now = ms(wa_core::time::now());
            let n = conn
                .execute(
                    "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_ms = ?2, \
                     updated_ms = ?2 WHERE request_id = ?1 AND status IN ('failed', 'skipped')",
                    params![id, now],
                )
                .map_err(backend)?;
            changed(conn, &id, n)
        })
        .await
    }
}
