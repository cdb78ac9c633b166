//! How records that several routers answer with look on the wire: messages, as the
//! message routes and the sandbox's inbound route show them.

use serde::Serialize;
use uuid::Uuid;
use wa_core::messages::{Direction, Message, MessageStatus, MessageType};
use wa_core::time::OffsetDateTime;

/// A message as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MessageView {
    pub message_id: String,
    pub device_id: Uuid,
    pub direction: Direction,
    /// The recipient (outbound) or this account (inbound).
    pub to: String,
    /// The sender (inbound) or this account (outbound).
    pub from: Option<String>,
    /// The sender's phone number when WhatsApp lets us resolve an `@lid` sender.
    pub from_phone: Option<String>,
    pub chat: String,
    #[serde(rename = "type")]
    pub kind: MessageType,
    pub status: MessageStatus,
    pub error: Option<MessageErrorView>,
    pub attempts: u32,
    pub idempotency_key: Option<String>,
    /// The text, caption, place name or contact name.
    pub text: Option<String>,
    /// Inbound media: pass to `GET /media?path=`.
    pub media_path: Option<String>,
    pub mime_type: Option<String>,
    #[serde(with = "wa_core::time::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "wa_core::time::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sent_at: Option<OffsetDateTime>,
    /// When a rate-limited send is tried again.
    #[serde(with = "wa_core::time::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// The message this one quotes.
    pub reply_to: Option<ReplyToView>,
    /// The JIDs mentioned in its text or caption.
    pub mentions: Vec<String>,
    /// When its text or caption was last edited (`PATCH`).
    #[serde(with = "wa_core::time::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub edited_at: Option<OffsetDateTime>,
}

/// The message a message quotes.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReplyToView {
    pub message_id: String,
    /// Its sender (this account for a message the device sent).
    pub from: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MessageErrorView {
    pub code: String,
    pub message: String,
}

impl From<&Message> for MessageView {
    fn from(m: &Message) -> Self {
        MessageView {
            message_id: m.message_id.clone(),
            device_id: m.device_id,
            direction: m.direction,
            to: m.to.clone(),
            from: m.from.clone(),
            from_phone: m.from_phone.clone(),
            chat: m.chat.clone(),
            kind: m.kind,
            status: m.status,
            error: m.error.as_ref().map(|e| MessageErrorView {
                code: e.code.as_str().to_owned(),
                message: e.message.clone(),
            }),
            attempts: m.attempts,
            idempotency_key: m.idempotency_key.clone(),
            text: m.text.clone(),
            media_path: m.media_path.clone(),
            mime_type: m.mime_type.clone(),
            created_at: m.created_at,
            sent_at: m.sent_at,
            next_attempt_at: m.next_attempt_at,
            reply_to: m.reply_to.as_ref().map(|r| ReplyToView {
                message_id: r.message_id.clone(),
                from: r.from.clone(),
            }),
            mentions: m.mentions.clone(),
            edited_at: m.edited_at,
        }
    }
}

/// `{"message": ...}`, the `data` of message answers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MessageData {
    pub message: MessageView,
}
