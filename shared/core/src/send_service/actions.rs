//! The actions on a stored message: edit, revoke for everyone, read receipts. Each checks
//! the message by the rules of [`crate::messages::actions`], has the device's live session
//! carry it out (a session request, like the profile), then records what changed. What
//! WhatsApp refused is answered as its error and nothing is recorded.

use uuid::Uuid;
use wa_errors::{ApiError, ApiResult};

use super::Messages;
use crate::apps::App;
use crate::devices::Device;
use crate::messages::actions::{
    self, DELIVERED_STATUSES, Earlier, MAX_READ_IDS, Revoke, edited, read_target,
};
use crate::messages::{Edit, Message, MessageStatus, MessageUpdate};
use crate::session::{SessionRequest, Sessions};
use crate::store::{MessageCursor, StoreError};
use crate::time;

/// The most earlier messages a read receipt looks through for unread ones of its chat.
pub const MAX_READ_SCAN: usize = 1_000;

/// Page size of that walk.
const READ_PAGE: u32 = 100;

impl Messages {
    /// The device `device_id` of `app` and its message `message_id` (404 not_found).
    async fn device_and_message(
        &self,
        app: &App,
        device_id: Uuid,
        message_id: &str,
    ) -> ApiResult<(Device, Message)> {
        let d = self.devices.get(app, device_id).await?;
        let m = self
            .store
            .get_message(device_id, message_id)
            .await?
            .ok_or_else(|| ApiError::not_found("message not found"))?;
        Ok((d, m))
    }

    /// Replaces the text (or caption) of a message the device sent with `text`: the
    /// message as edited, with `edited_at`.
    pub async fn edit(
        &self,
        sessions: &dyn Sessions,
        app: &App,
        device_id: Uuid,
        message_id: &str,
        text: &str,
    ) -> ApiResult<Message> {
        let (d, m) = self.device_and_message(app, device_id, message_id).await?;
        let now = time::now();
        let content = edited(&m, text, now)?;
        d.ensure_connected()?;
        let request = SessionRequest::EditMessage {
            chat: m.chat.clone(),
            message_id: m.message_id.clone(),
            text: text.to_owned(),
        };
        sessions.ask(&d, request).await?.into_done()?;
        let u = MessageUpdate {
            edit: Some(Edit {
                text: text.to_owned(),
                content: Some(content),
                edited_at: now,
            }),
            updated_at: Some(now),
            ..MessageUpdate::default()
        };
        self.changed(&m, &u).await
    }

    /// Deletes a message the device sent for everyone: the message, `revoked`. A message
    /// revoked already is answered as it is, without asking WhatsApp again.
    pub async fn revoke(
        &self,
        sessions: &dyn Sessions,
        app: &App,
        device_id: Uuid,
        message_id: &str,
    ) -> ApiResult<Message> {
        let (d, m) = self.device_and_message(app, device_id, message_id).await?;
        if actions::revoke(&m)? == Revoke::Done {
            return Ok(m);
        }
        d.ensure_connected()?;
        let request = SessionRequest::RevokeMessage {
            chat: m.chat.clone(),
            message_id: m.message_id.clone(),
        };
        sessions.ask(&d, request).await?.into_done()?;
        let u = MessageUpdate {
            status: Some(MessageStatus::Revoked),
            updated_at: Some(time::now()),
            ..MessageUpdate::default()
        };
        match self.changed(&m, &u).await {
            Err(e) if e.code() == wa_errors::ErrorCode::Conflict => {
                match self.store.get_message(device_id, message_id).await? {
                    Some(now) if now.status == MessageStatus::Revoked => Ok(now),
                    _ => Err(e),
                }
            }
            r => r,
        }
    }

    /// Sends a read receipt for a message the device received, and for the earlier
    /// received messages of its chat not read yet (back to the first one read, at most
    /// [`MAX_READ_IDS`] in all, looking through at most [`MAX_READ_SCAN`] earlier
    /// messages); each of them is `read` afterwards.
    pub async fn read(
        &self,
        sessions: &dyn Sessions,
        app: &App,
        device_id: Uuid,
        message_id: &str,
    ) -> ApiResult<()> {
        let (d, m) = self.device_and_message(app, device_id, message_id).await?;
        let target = read_target(&m)?;
        d.ensure_connected()?;
        let earlier = self.earlier_unread(&m).await?;
        let mut messages = vec![target];
        for e in &earlier {
            messages.push(read_target(e)?);
        }
        let request = SessionRequest::MarkRead {
            chat: m.chat.clone(),
            messages,
        };
        sessions.ask(&d, request).await?.into_done()?;
        let u = MessageUpdate {
            status: Some(MessageStatus::Read),
            updated_at: Some(time::now()),
            ..MessageUpdate::default()
        };
        for r in std::iter::once(&m).chain(&earlier) {
            let expect = [MessageStatus::Received];
            match self
                .store
                .update_message(device_id, &r.message_id, &u, &expect, &[])
                .await
            {
                Ok(_) | Err(StoreError::Conflict(_)) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The received messages of `m`'s chat before `m` that a receipt for `m` covers.
    async fn earlier_unread(&self, m: &Message) -> ApiResult<Vec<Message>> {
        let mut out = Vec::new();
        let mut scanned = 0;
        let mut cursor = Some(MessageCursor::of(m));
        while let Some(before) = cursor.take() {
            let (page, next) = self
                .store
                .list_messages(m.device_id, READ_PAGE, Some(&before))
                .await?;
            for e in page {
                scanned += 1;
                match actions::earlier(&e, &m.chat) {
                    Earlier::Unread => out.push(e),
                    Earlier::Stop => return Ok(out),
                    Earlier::Other => {}
                }
                if out.len() + 1 >= MAX_READ_IDS || scanned >= MAX_READ_SCAN {
                    return Ok(out);
                }
            }
            cursor = next;
        }
        Ok(out)
    }

    /// Records `u` on `m`, WhatsApp having done it: 409 conflict when the message changed
    /// meanwhile so that it no longer applies (revoked, for an edit).
    async fn changed(&self, m: &Message, u: &MessageUpdate) -> ApiResult<Message> {
        match self
            .store
            .update_message(m.device_id, &m.message_id, u, &DELIVERED_STATUSES, &[])
            .await
        {
            Ok(m) => Ok(m),
            Err(StoreError::Conflict(_)) => Err(ApiError::conflict(
                "WhatsApp took the change, but the message changed meanwhile; read it again",
            )),
            Err(e) => Err(e.into()),
        }
    }
}
