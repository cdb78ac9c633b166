//! The workers' replies to session requests in DynamoDB: one item `REPLY#{ask_id}` per ask,
//! with the TTL attribute, so DynamoDB deletes it once expired (late: reads skip expired
//! replies themselves).

use async_trait::async_trait;
use uuid::Uuid;
use wa_core::session::Reply;
use wa_core::store::{ReplyStore, StoreError};
use wa_core::time::{self, OffsetDateTime};

use super::DynamoStore;
use super::codec::{EXPIRES_AT, EXPIRES_MS, Item, from_ms, ms};
use super::ops::Write;

fn reply_key(ask_id: Uuid) -> Item {
    Item::key(format!("REPLY#{ask_id}"), "REPLY")
}

#[async_trait]
impl ReplyStore for DynamoStore {
    async fn put_reply(
        &self,
        ask_id: Uuid,
        reply: &Reply,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(reply)
            .map_err(|e| StoreError::Backend(format!("encoding a reply: {e}")))?;
        let expires_ms = ms(expires_at);
        let item = reply_key(ask_id)
            .with_s("kind", "reply")
            .with_s("body", body)
            .with_n(EXPIRES_MS, expires_ms)
            // DynamoDB's TTL wants whole seconds; round up so it never deletes early.
            .with_n(EXPIRES_AT, expires_ms.div_euclid(1000) + 1);
        Ok(self.write(vec![Write::put(item)]).await?)
    }

    async fn get_reply(&self, ask_id: Uuid) -> Result<Option<Reply>, StoreError> {
        let Some(item) = self.get(reply_key(ask_id)).await? else {
            return Ok(None);
        };
        if from_ms(item.n(EXPIRES_MS)?) <= time::now() {
            return Ok(None);
        }
        serde_json::from_str(item.s("body")?)
            .map(Some)
            .map_err(|e| StoreError::Backend(format!("corrupt reply: {e}")))
    }
}
