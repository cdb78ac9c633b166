//! Inbound storage: a message received by a device, with its media written to the media
//! store first, stored once (a redelivery of a stored message is a no-op).

use uuid::Uuid;
use wa_core::messages::{Direction, Message, MessageRef, MessageStatus, is_valid_message_id};
use wa_core::provider::InboundMessage;
use wa_core::store::StoreError;
use wa_core::time;
use wa_core::webhooks::payload;

use crate::{Worker, media};

impl Worker {
    /// Stores an inbound message (its media first); the provider acknowledges WhatsApp after.
    pub async fn store_inbound(
        &self,
        device_id: Uuid,
        msg: &InboundMessage,
    ) -> Result<(), StoreError> {
        // Stored for the session: conditioned on this worker's lease of the device.
        let store = self.session_store(device_id)?;
        let Some(device) = store.get_device(device_id).await? else {
            tracing::warn!(%device_id, "inbound message for an unknown device dropped");
            return Ok(());
        };
        // WhatsApp's ids are unique per chat and sender: the store says where this one goes.
        let Some(message_id) = store
            .inbound_message_id(device_id, &msg.chat, &msg.from, &msg.message_id)
            .await?
        else {
            // A redelivery of a message already stored.
            return Ok(());
        };
        let stored = match &msg.media {
            Some(media) => Some(
                media::store(
                    &*self.media,
                    device.app_id,
                    device_id,
                    &message_id,
                    &media.mime_type,
                    &media.bytes,
                )
                .await
                .map_err(|e| StoreError::Backend(format!("writing media failed: {e}")))?,
            ),
            None => None,
        };
        let reply_to = match &msg.reply_to {
            Some(q) => Some(quoted(&*store, device_id, &msg.chat, q).await?),
            None => None,
        };
        let now = time::now();
        let m = Message {
            message_id,
            device_id,
            app_id: device.app_id,
            direction: Direction::Inbound,
            to: device.wa_device_jid.clone().unwrap_or_default(),
            from: Some(msg.from.clone()),
            from_phone: msg.from_phone.clone(),
            chat: msg.chat.clone(),
            kind: msg.kind,
            status: MessageStatus::Received,
            error: None,
            attempts: 0,
            idempotency_key: None,
            content: msg.content.clone(),
            text: msg.text.clone(),
            media_path: stored.as_ref().map(|s| s.path.clone()),
            mime_type: msg.media.as_ref().map(|m| m.mime_type.clone()),
            media_size: stored.as_ref().map(|s| s.size),
            media_sha256: stored.as_ref().map(|s| s.sha256.clone()),
            created_at: msg.timestamp,
            updated_at: now,
            sent_at: None,
            next_attempt_at: None,
            reply_to,
            mentions: msg.mentions.clone(),
            edited_at: None,
            poll_votes: Vec::new(),
        };
        let events: Vec<_> = payload::message(&m).into_iter().collect();
        match store.create_message(&m, None, None, &events).await {
            Ok(_) | Err(StoreError::Conflict("message_id")) => {}
            Err(e) => return Err(e),
        }
        tracing::info!(%device_id, message_id = %m.message_id, kind = m.kind.as_str(), "inbound message stored");
        Ok(())
    }
}

/// The message a received one quotes: the device's own record of it when the device has
/// it in that chat (its sender, whether the device sent it, its text), else what WhatsApp
/// named.
async fn quoted(
    store: &dyn wa_core::store::Store,
    device_id: Uuid,
    chat: &str,
    q: &MessageRef,
) -> Result<MessageRef, StoreError> {
    if !is_valid_message_id(&q.message_id) {
        return Ok(q.clone());
    }
    Ok(match store.get_message(device_id, &q.message_id).await? {
        Some(m) if m.chat == chat => MessageRef::of(&m),
        _ => q.clone(),
    })
}
