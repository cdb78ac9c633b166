//! The workers' replies to session requests in SQLite: one row per ask, read until its
//! expiry; writing a reply also removes the expired ones.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use uuid::Uuid;
use wa_core::session::Reply;
use wa_core::store::{ReplyStore, StoreError};
use wa_core::time::{self, OffsetDateTime};

use super::{SqliteStore, backend, ms};

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Backend(format!("corrupt reply: {e}"))
}

#[async_trait]
impl ReplyStore for SqliteStore {
    async fn put_reply(
        &self,
        ask_id: Uuid,
        reply: &Reply,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(reply)
            .map_err(|e| StoreError::Backend(format!("encoding a reply: {e}")))?;
        let expires = ms(expires_at);
        self.with(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            // Replies are read within seconds: the expired ones are only clutter.
            tx.prepare_cached("DELETE FROM replies WHERE expires_ms <= ?1")
                .map_err(backend)?
                .execute([ms(time::now())])
                .map_err(backend)?;
            tx.prepare_cached(
                "INSERT INTO replies (ask_id, body, expires_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (ask_id) DO UPDATE SET body = excluded.body, \
                 expires_ms = excluded.expires_ms",
            )
            .map_err(backend)?
            .execute(params![ask_id.to_string(), body, expires])
            .map_err(backend)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn get_reply(&self, ask_id: Uuid) -> Result<Option<Reply>, StoreError> {
        let now = ms(time::now());
        let body: Option<String> = self.read(|conn| {
            conn.prepare_cached("SELECT body FROM replies WHERE ask_id = ?1 AND expires_ms > ?2")
                .map_err(backend)?
                .query_row(params![ask_id.to_string(), now], |r| r.get(0))
                .optional()
                .map_err(backend)
        })?;
        body.map(|b| serde_json::from_str(&b).map_err(corrupt))
            .transpose()
    }
}
