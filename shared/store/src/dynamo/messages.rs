//! Messages, the inline media of pending sends, and idempotency keys in the table.
//!
//! A message item sits in its device's partition (listed newest first on GSI1; while
//! pending also on GSI2 per device and GSI3 for all). Media up to [`CHUNK_BYTES`] sits in
//! one media item written with the message; larger media (up to the 100 MiB of a document)
//! is split into chunk items under a fresh upload id, written before the message's
//! transaction, which then writes the media item naming them: readers never see part of a
//! file. Idempotency records carry a TTL and are replaced once expired.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use uuid::Uuid;
use wa_core::messages::{Message, MessageStatus, MessageUpdate};
use wa_core::store::{
    CHANGED, Created, IdempotencyRecord, MessageCursor, MessageStore, PendingCursor, StoreError,
};
use wa_core::time::{self, OffsetDateTime};
use wa_core::webhooks::Event;

use super::DynamoStore;
use super::codec::{
    EXPIRES_MS, Index, Item, MediaChunk, MediaItem, RESPONSE_BODY, RESPONSE_STATUS, StoredMedia,
    chunk_bytes, is_pending, key, list, message_order, ms, sortable,
};
use super::ops::{OnCondition, Query, Range, Write, WriteError, until_fresh};
use super::shards;
use crate::inbound;
use crate::page;

/// The largest media kept inline, and the size of a chunk of larger media: DynamoDB items
/// hold at most 400 KB, keys and attribute names included.
pub(crate) const CHUNK_BYTES: usize = 350 * 1024;

/// The revision of a message as its create writes it.
const CREATED_REV: u64 = 1;

/// The rule name under which a live Idempotency-Key refuses a create (never returned:
/// `create_message` answers `Existing`).
const KEY_TAKEN: &str = "idempotency_key";

/// Media as it will be stored, and the chunk items to write first (none when inline).
fn plan_media(device_id: Uuid, message_id: &str, bytes: &[u8]) -> (MediaItem, Vec<Item>) {
    if bytes.len() <= CHUNK_BYTES {
        let media = StoredMedia::Inline(bytes.to_vec());
        return (
            MediaItem {
                device_id,
                message_id: message_id.to_owned(),
                media,
            },
            Vec::new(),
        );
    }
    let upload = Uuid::new_v4();
    let chunks: Vec<Item> = bytes
        .chunks(CHUNK_BYTES)
        .enumerate()
        .map(|(i, part)| {
            Item::from(MediaChunk {
                device_id,
                message_id,
                upload,
                index: i as u32,
                bytes: part,
            })
        })
        .collect();
    let media = StoredMedia::Chunked {
        upload,
        chunks: chunks.len() as u32,
        size: bytes.len() as u64,
    };
    (
        MediaItem {
            device_id,
            message_id: message_id.to_owned(),
            media,
        },
        chunks,
    )
}

fn chunk_keys(device_id: Uuid, message_id: &str, upload: Uuid, chunks: u32) -> Vec<Item> {
    (0..chunks)
        .map(|i| key::media_chunk(device_id, message_id, upload, i))
        .collect()
}

impl DynamoStore {
    async fn message_at_rev(
        &self,
        device_id: Uuid,
        message_id: &str,
    ) -> Result<Option<(Message, u64)>, StoreError> {
        match self.get(key::message(device_id, message_id)).await? {
            Some(item) => {
                let (m, rev) = (Message::try_from(&item)?, item.rev()?);
                self.recent.keep(
                    (m.device_id, m.message_id.clone()),
                    &m,
                    rev,
                    item.body_len(),
                );
                Ok(Some((m, rev)))
            }
            None => Ok(None),
        }
    }

    /// Removes chunks that no message names (its create was refused). Best effort: a
    /// failure leaves unreachable items, which is logged.
    async fn discard_chunks(&self, keys: Vec<Item>) {
        if keys.is_empty() {
            return;
        }
        if let Err(e) = self.delete_many(keys).await {
            tracing::warn!(error = %e, "removing the media chunks of a refused message failed");
        }
    }

    /// The transaction of `create_message`: the key (when given), the message, its media
    /// item and its events, all or nothing.
    async fn try_insert_message(
        &self,
        message: &Message,
        media: Option<&MediaItem>,
        idempotency: Option<&IdempotencyRecord>,
        events: &[Event],
    ) -> Result<Created, WriteError> {
        // The key first: a live key wins over every other refusal (nothing is written).
        let mut writes = Vec::new();
        if let Some(rec) = idempotency {
            writes.push(
                Write::put(Item::from(rec))
                    .when(
                        "attribute_not_exists(pk) OR #exp <= :now",
                        OnCondition::Fail(StoreError::Conflict(KEY_TAKEN)),
                    )
                    .name("#exp", EXPIRES_MS)
                    .value(":now", AttributeValue::N(ms(time::now()).to_string())),
            );
        }
        writes.push(Write::insert(
            Item::from(message).with_rev(CREATED_REV),
            StoreError::Conflict("message_id"),
        ));
        if let Some(m) = media {
            writes.push(Write::put(Item::from(m)));
        }
        writes.extend(self.event_writes(events).await?);
        match self.write(writes).await {
            Ok(()) => Ok(Created::Created),
            Err(WriteError::Store(StoreError::Conflict(KEY_TAKEN))) => {
                let existing = match idempotency {
                    Some(rec) => self.get_idempotency(rec.app_id, &rec.key).await?,
                    None => None,
                };
                // Gone since the write (expired, purged): the next attempt takes the key.
                existing.map(Created::Existing).ok_or(WriteError::Stale)
            }
            Err(e) => Err(e),
        }
    }

    async fn try_update_message(
        &self,
        device_id: Uuid,
        message_id: &str,
        update: &MessageUpdate,
        expect: &[MessageStatus],
        events: &[Event],
    ) -> Result<Message, WriteError> {
        let expected = |m: &Message| expect.is_empty() || expect.contains(&m.status);
        // The copy this process read or wrote last, when it still has one and it passes
        // the status check: the revision condition finds out whether it is stale. A kept
        // copy that fails the check proves nothing: the stored record decides.
        let kept = self
            .recent
            .take(&(device_id, message_id.to_owned()))
            .filter(|(m, _)| expected(m));
        let (m, rev) = match kept {
            Some(copy) => copy,
            None => self
                .message_at_rev(device_id, message_id)
                .await?
                .ok_or(StoreError::NotFound)?,
        };
        if !expected(&m) {
            return Err(StoreError::Conflict("status").into());
        }
        self.replace_updated(m, rev, update, events).await
    }

    /// `m` (read at `rev`) with `update` applied, replacing the stored message on that
    /// revision with `events` in the same write (`Stale` when it moved on); the result is
    /// kept as this process's copy at the next revision.
    async fn replace_updated(
        &self,
        mut m: Message,
        rev: u64,
        update: &MessageUpdate,
        events: &[Event],
    ) -> Result<Message, WriteError> {
        update.apply_to(&mut m);
        let item = Item::from(&m);
        let len = item.body_len();
        let mut writes = vec![Write::replace(item, rev)];
        writes.extend(self.event_writes(events).await?);
        self.write(writes).await?;
        self.recent
            .keep((m.device_id, m.message_id.clone()), &m, rev + 1, len);
        Ok(m)
    }

    /// The messages of the index entries `candidates` that the table still has pending, in
    /// their order. The index lags the table: a message sent a moment ago may still be
    /// listed. Its record in the table decides.
    async fn still_pending(&self, candidates: &[Item]) -> Result<Vec<Message>, StoreError> {
        let fresh: HashMap<_, _> = self
            .get_many(candidates.iter().map(Item::primary_key).collect())
            .await?
            .into_iter()
            .map(|i| (i.key_text(), i))
            .collect();
        let mut pending = Vec::new();
        for c in candidates {
            if let Some(item) = fresh.get(&c.key_text()) {
                let m = Message::try_from(item)?;
                if is_pending(m.status) {
                    pending.push(m);
                }
            }
        }
        Ok(pending)
    }
}

#[async_trait]
impl MessageStore for DynamoStore {
    async fn create_message(
        &self,
        message: &Message,
        media: Option<&[u8]>,
        idempotency: Option<&IdempotencyRecord>,
        events: &[Event],
    ) -> Result<Created, StoreError> {
        let (media_item, chunks) = match media {
            Some(bytes) => {
                let (item, chunks) = plan_media(message.device_id, &message.message_id, bytes);
                (Some(item), chunks)
            }
            None => (None, Vec::new()),
        };
        let chunk_keys: Vec<Item> = chunks.iter().map(Item::primary_key).collect();
        if let Err(e) = self.put_many(chunks).await {
            // No message names them yet.
            self.discard_chunks(chunk_keys).await;
            return Err(e);
        }
        let media = media_item.as_ref();
        let outcome =
            until_fresh(move || self.try_insert_message(message, media, idempotency, events)).await;
        match &outcome {
            Ok(Created::Created) => {}
            // A timeout may hide a committed write: its chunks must stay.
            Err(StoreError::Backend(_)) if !chunk_keys.is_empty() => {
                tracing::warn!(
                    message_id = %message.message_id,
                    "keeping the media chunks of a create that may have failed"
                );
            }
            _ => self.discard_chunks(chunk_keys).await,
        }
        outcome
    }

    async fn get_message(
        &self,
        device_id: Uuid,
        message_id: &str,
    ) -> Result<Option<Message>, StoreError> {
        Ok(self
            .message_at_rev(device_id, message_id)
            .await?
            .map(|(m, _)| m))
    }

    async fn inbound_message_id(
        &self,
        device_id: Uuid,
        chat: &str,
        from: &str,
        message_id: &str,
    ) -> Result<Option<String>, StoreError> {
        inbound::message_id(chat, from, message_id, |[id, derived]| async move {
            let keys = vec![
                key::message(device_id, &id),
                key::message(device_id, &derived),
            ];
            let mut found = [None, None];
            for item in self.get_many(keys).await? {
                let m = Message::try_from(&item)?;
                let at = usize::from(m.message_id != id);
                found[at] = Some(m);
            }
            Ok(found)
        })
        .await
    }

    async fn list_messages(
        &self,
        device_id: Uuid,
        limit: u32,
        before: Option<&MessageCursor>,
    ) -> Result<(Vec<Message>, Option<MessageCursor>), StoreError> {
        let mut q = Query::new(Index::Gsi1, list::device_messages(device_id)).backwards();
        if let Some(c) = before {
            q = q.range(Range::Before(message_order(c.created_ms, &c.message_id)));
        }
        let items = self.query(&q, page::fetch(limit)).await?;
        let messages = items
            .iter()
            .map(Message::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page::cut(messages, limit, MessageCursor::of))
    }

    async fn update_message(
        &self,
        device_id: Uuid,
        message_id: &str,
        update: &MessageUpdate,
        expect: &[MessageStatus],
        events: &[Event],
    ) -> Result<Message, StoreError> {
        until_fresh(move || self.try_update_message(device_id, message_id, update, expect, events))
            .await
    }

    /// On the revision a create writes (1): no read, one conditional write.
    async fn update_created_message(
        &self,
        created: &Message,
        update: &MessageUpdate,
        events: &[Event],
    ) -> Result<Message, StoreError> {
        if created.status != MessageStatus::Queued {
            return Err(StoreError::Conflict(CHANGED));
        }
        match self
            .replace_updated(created.clone(), CREATED_REV, update, events)
            .await
        {
            Ok(m) => Ok(m),
            Err(WriteError::Stale) => Err(StoreError::Conflict(CHANGED)),
            Err(WriteError::Store(e)) => Err(e),
        }
    }

    async fn outbound_media(
        &self,
        device_id: Uuid,
        message_id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(head) = self.get(key::media(device_id, message_id)).await? else {
            return Ok(None);
        };
        let (upload, chunks, size) = match StoredMedia::try_from(&head)? {
            StoredMedia::Inline(bytes) => return Ok(Some(bytes)),
            StoredMedia::Chunked {
                upload,
                chunks,
                size,
            } => (upload, chunks, size),
        };
        let q = Query::new(
            Index::Table,
            list::media_chunks(device_id, message_id, upload),
        );
        let items = self.query(&q, chunks as usize).await?;
        let mut bytes = Vec::with_capacity(size as usize);
        for item in &items {
            bytes.extend_from_slice(chunk_bytes(item)?);
        }
        if items.len() != chunks as usize || bytes.len() as u64 != size {
            return Err(StoreError::Backend(format!(
                "media of {device_id}/{message_id}: {} of {chunks} chunks, {} of {size} bytes",
                items.len(),
                bytes.len()
            )));
        }
        Ok(Some(bytes))
    }

    async fn delete_outbound_media(
        &self,
        device_id: Uuid,
        message_id: &str,
    ) -> Result<(), StoreError> {
        let Some(head) = self.get(key::media(device_id, message_id)).await? else {
            return Ok(());
        };
        // The media item first: once it is gone no reader looks for the chunks.
        self.write(vec![Write::delete(key::media(device_id, message_id))])
            .await?;
        if let StoredMedia::Chunked { upload, chunks, .. } = StoredMedia::try_from(&head)? {
            self.delete_many(chunk_keys(device_id, message_id, upload, chunks))
                .await?;
        }
        Ok(())
    }

    async fn pending_messages(
        &self,
        device_id: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        let lists = match device_id {
            Some(d) => vec![Query::new(Index::Gsi2, list::device_pending_messages(d))],
            None => shards::all(list::PENDING_MESSAGES)
                .into_iter()
                .map(|k| Query::new(Index::Gsi3, k))
                .collect(),
        };
        let limit = limit as usize;
        let mut pending = Vec::new();
        // The first `limit` of all are among the first `limit` of each partition.
        for q in lists {
            let mut found = Vec::new();
            let mut start = None;
            while found.len() < limit {
                let (candidates, next) = self
                    .query_page(&q, start, (limit - found.len()).min(100))
                    .await?;
                found.extend(self.still_pending(&candidates).await?);
                match next {
                    Some(n) => start = Some(n),
                    None => break,
                }
            }
            found.truncate(limit);
            pending.extend(found);
        }
        pending.sort_by(|a, b| {
            (a.created_at, &a.message_id, a.device_id).cmp(&(
                b.created_at,
                &b.message_id,
                b.device_id,
            ))
        });
        pending.truncate(limit);
        Ok(pending)
    }

    /// Pages through the index of every pending message (creation order); the cursor is
    /// the last index entry's range key. Entries the table no longer has pending (the
    /// index lags) are skipped, so a page may be short while more follow.
    async fn pending_page(
        &self,
        after: Option<&PendingCursor>,
        limit: u32,
    ) -> Result<(Vec<Message>, Option<PendingCursor>), StoreError> {
        let limit = (limit as usize).clamp(1, 100);
        let range = match after {
            Some(c) => Range::After(c.0.clone()),
            None => Range::All,
        };
        // Each partition's first `limit` after the cursor, merged in range-key order (the
        // keys are unique): the first `limit` of all are among them.
        let mut candidates = Vec::new();
        let mut more = false;
        for k in shards::all(list::PENDING_MESSAGES) {
            let q = Query::new(Index::Gsi3, k).range(range.clone());
            let (items, next) = self.query_page(&q, None, limit).await?;
            more |= next.is_some();
            for item in items {
                let order = item.s(Index::Gsi3.range_key())?.to_owned();
                candidates.push((order, item));
            }
        }
        candidates.sort_by(|a, b| a.0.cmp(&b.0));
        more |= candidates.len() > limit;
        candidates.truncate(limit);
        let cursor = match candidates.last() {
            Some((order, _)) if more => Some(PendingCursor(order.clone())),
            _ => None,
        };
        let items: Vec<Item> = candidates.into_iter().map(|(_, i)| i).collect();
        Ok((self.still_pending(&items).await?, cursor))
    }

    async fn get_idempotency(
        &self,
        app_id: Uuid,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let Some(item) = self.get(key::idempotency(app_id, key)).await? else {
            return Ok(None);
        };
        // DynamoDB's TTL deletes up to days late: an expired record is not a record.
        let record = IdempotencyRecord::try_from(&item)?;
        Ok((record.expires_at > time::now()).then_some(record))
    }

    async fn set_idempotency_response(
        &self,
        app_id: Uuid,
        key: &str,
        status: u16,
        body: &str,
    ) -> Result<(), StoreError> {
        let w = Write::update(key::idempotency(app_id, key), "SET #s = :s, #b = :b")
            .when(
                "attribute_exists(pk) AND attribute_not_exists(#s)",
                OnCondition::Fail(StoreError::Conflict("idempotency_response")),
            )
            .name("#s", RESPONSE_STATUS)
            .name("#b", RESPONSE_BODY)
            .value(":s", AttributeValue::N(status.to_string()))
            .value(":b", AttributeValue::S(body.to_owned()));
        match self.write(vec![w]).await {
            // The first answer stays; a missing key has nothing to answer.
            Err(WriteError::Store(StoreError::Conflict(_))) => Ok(()),
            r => Ok(r?),
        }
    }

    async fn clear_idempotency_response(&self, app_id: Uuid, key: &str) -> Result<(), StoreError> {
        // Conditioned on the record: an update would otherwise create a bare item.
        let w = Write::update(key::idempotency(app_id, key), "REMOVE #s, #b")
            .when(
                "attribute_exists(pk)",
                OnCondition::Fail(StoreError::NotFound),
            )
            .name("#s", RESPONSE_STATUS)
            .name("#b", RESPONSE_BODY);
        match self.write(vec![w]).await {
            Err(WriteError::Store(StoreError::NotFound)) => Ok(()),
            r => Ok(r?),
        }
    }

    async fn purge_expired_idempotency(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let now_ms = ms(now);
        let mut purged = 0;
        for k in shards::all(list::IDEMPOTENCY_BY_EXPIRY) {
            let q = Query::new(Index::Gsi3, k).range(Range::AtMost(sortable(now_ms)));
            purged += self.purge_expired_in(&q, now_ms).await?;
        }
        Ok(purged)
    }
}

impl DynamoStore {
    /// Deletes the expired idempotency records one partition of the expiry list names.
    async fn purge_expired_in(&self, q: &Query, now_ms: i64) -> Result<u64, StoreError> {
        let mut purged = 0;
        let mut start = None;
        loop {
            let (expired, next) = self.query_page(q, start, 100).await?;
            for item in expired {
                // The index may be behind a replacement of the key: the table decides.
                let w = Write::delete(item.primary_key())
                    .when(
                        "#exp <= :now",
                        OnCondition::Fail(StoreError::Conflict("expires_at")),
                    )
                    .name("#exp", EXPIRES_MS)
                    .value(":now", AttributeValue::N(now_ms.to_string()));
                match self.write(vec![w]).await {
                    Ok(()) => purged += 1,
                    Err(WriteError::Store(StoreError::Conflict(_))) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            match next {
                Some(n) => start = Some(n),
                None => return Ok(purged),
            }
        }
    }
}
