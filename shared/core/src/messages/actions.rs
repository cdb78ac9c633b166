//! The rules of the actions on a stored message: what may be edited (and into what), what
//! may be revoked, what a read receipt is for and which earlier messages it covers. Pure
//! decisions; the use cases (`send_service::actions`) carry them out.

use std::time::Duration;

use wa_errors::{ApiError, ApiResult};

use super::record::{Content, Direction, Message, MessageStatus};
use super::request::{MAX_CAPTION_CHARS, MAX_TEXT_CHARS, chars_between};
use crate::provider::ReadMessage;
use crate::time::OffsetDateTime;

/// How long after `sent_at` WhatsApp accepts an edit.
pub const EDIT_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The most earlier messages of a chat one read receipt covers (WhatsApp's limit per
/// receipt stanza is 256 ids).
pub const MAX_READ_IDS: usize = 256;

/// The statuses of a message WhatsApp has: it may be edited or revoked.
pub const DELIVERED_STATUSES: [MessageStatus; 4] = [
    MessageStatus::Sent,
    MessageStatus::Delivered,
    MessageStatus::Read,
    MessageStatus::Played,
];

/// 409 conflict unless `m` is a message this device sent and WhatsApp has (`doing`: what
/// the caller wants, for the message).
fn ensure_sent(m: &Message, doing: &str) -> ApiResult<()> {
    if m.direction != Direction::Outbound {
        return Err(ApiError::conflict(format!(
            "only messages this device sent can be {doing}; this one was received"
        )));
    }
    if !DELIVERED_STATUSES.contains(&m.status) {
        return Err(ApiError::conflict(format!(
            "only sent messages can be {doing}; this one is {}",
            m.status.as_str()
        )));
    }
    Ok(())
}

/// The content of `m` with its text (or caption) replaced by `text`, when `m` may be
/// edited at `now`: a text, image, video or document message the device sent, at most
/// [`EDIT_WINDOW`] after `sent_at` (409 conflict otherwise); `text` is 1-65536 characters
/// for a text and 1-1024 for a caption (400 validation_error, `details.field = "text"`).
pub fn edited(m: &Message, text: &str, now: OffsetDateTime) -> ApiResult<Content> {
    ensure_sent(m, "edited")?;
    let sent_at = m.sent_at.unwrap_or(m.created_at);
    if now > sent_at + EDIT_WINDOW {
        return Err(ApiError::conflict(
            "WhatsApp takes edits for 15 minutes after a message was sent; this one is older",
        ));
    }
    let caption = |max| chars_between("text", text, 1, max).map(|()| Some(text.to_owned()));
    Ok(match m.content.clone() {
        Some(Content::Text { .. }) => {
            chars_between("text", text, 1, MAX_TEXT_CHARS)?;
            Content::Text {
                text: text.to_owned(),
            }
        }
        Some(Content::Image { media, .. }) => Content::Image {
            media,
            caption: caption(MAX_CAPTION_CHARS)?,
        },
        Some(Content::Video { media, .. }) => Content::Video {
            media,
            caption: caption(MAX_CAPTION_CHARS)?,
        },
        Some(Content::Document {
            media, file_name, ..
        }) => Content::Document {
            media,
            file_name,
            caption: caption(MAX_CAPTION_CHARS)?,
        },
        _ => {
            return Err(ApiError::conflict(format!(
                "a {} message has no text or caption to edit",
                m.kind.as_str()
            )));
        }
    })
}

/// What a revoke of `m` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoke {
    /// Ask WhatsApp to delete it for everyone.
    Send,
    /// It is revoked already: answer it as it is.
    Done,
}

/// Whether `m` may be revoked: a message the device sent that WhatsApp has (409 conflict
/// otherwise; a queued one can be canceled instead).
pub fn revoke(m: &Message) -> ApiResult<Revoke> {
    if m.direction == Direction::Outbound && m.status == MessageStatus::Revoked {
        return Ok(Revoke::Done);
    }
    if m.direction == Direction::Outbound && m.status == MessageStatus::Queued {
        return Err(ApiError::conflict(
            "this message is still queued: cancel it (DELETE) instead",
        ));
    }
    ensure_sent(m, "revoked")?;
    Ok(Revoke::Send)
}

/// The receipt of `m` itself (under WhatsApp's id of it): 409 conflict unless it is a
/// message the device received.
pub fn read_target(m: &Message) -> ApiResult<ReadMessage> {
    if m.direction != Direction::Inbound {
        return Err(ApiError::conflict(
            "read receipts are for received messages; this one was sent by the device",
        ));
    }
    Ok(ReadMessage {
        message_id: super::inbound_id::whatsapp_id(m).to_owned(),
        sender: m.from.clone().unwrap_or_else(|| m.chat.clone()),
    })
}

/// Whether the earlier messages a receipt covers go on past `m` (newest first): a received
/// message of `chat` not read yet is covered; one already read ends the walk (everything
/// before it was covered by its receipt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Earlier {
    /// Covered by the receipt.
    Unread,
    /// Not of this chat or not received: skipped.
    Other,
    /// Read already: the walk stops.
    Stop,
}

/// Where `m` stands in the walk back through `chat`'s earlier messages.
pub fn earlier(m: &Message, chat: &str) -> Earlier {
    if m.direction != Direction::Inbound || m.chat != chat {
        return Earlier::Other;
    }
    match m.status {
        MessageStatus::Received => Earlier::Unread,
        MessageStatus::Read => Earlier::Stop,
        _ => Earlier::Other,
    }
}

#[cfg(test)]
mod tests;
