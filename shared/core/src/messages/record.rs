//! The message record: what kind a message is, where it is in its life, its content, the
//! changes the store applies to it, and its ids.

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use wa_errors::ErrorCode;

use crate::time::OffsetDateTime;

/// What kind of message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageType {
    Text,
    Image,
    Video,
    Audio,
    Document,
    Sticker,
    Location,
    Contact,
    /// A reaction (an emoji) to a message of the chat.
    Reaction,
    /// A poll.
    Poll,
}

impl MessageType {
    pub const ALL: [MessageType; 10] = [
        MessageType::Text,
        MessageType::Image,
        MessageType::Video,
        MessageType::Audio,
        MessageType::Document,
        MessageType::Sticker,
        MessageType::Location,
        MessageType::Contact,
        MessageType::Reaction,
        MessageType::Poll,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            MessageType::Text => "text",
            MessageType::Image => "image",
            MessageType::Video => "video",
            MessageType::Audio => "audio",
            MessageType::Document => "document",
            MessageType::Sticker => "sticker",
            MessageType::Location => "location",
            MessageType::Contact => "contact",
            MessageType::Reaction => "reaction",
            MessageType::Poll => "poll",
        }
    }

    pub fn parse(s: &str) -> Option<MessageType> {
        MessageType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn is_media(self) -> bool {
        matches!(
            self,
            MessageType::Image
                | MessageType::Video
                | MessageType::Audio
                | MessageType::Document
                | MessageType::Sticker
        )
    }
}

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Accepted, waiting in the queue (also while a rate-limited send waits for its retry).
    Queued,
    /// Being handed to WhatsApp.
    Sending,
    /// WhatsApp accepted it.
    Sent,
    Delivered,
    Read,
    Played,
    /// It will not be sent; `error` says why.
    Failed,
    /// Canceled before it was sent.
    Canceled,
    /// An incoming message.
    Received,
    /// Deleted for everyone (`POST .../revoke` for a sent message).
    Revoked,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 10] = [
        MessageStatus::Queued,
        MessageStatus::Sending,
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Read,
        MessageStatus::Played,
        MessageStatus::Failed,
        MessageStatus::Canceled,
        MessageStatus::Received,
        MessageStatus::Revoked,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Sending => "sending",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
            MessageStatus::Played => "played",
            MessageStatus::Failed => "failed",
            MessageStatus::Canceled => "canceled",
            MessageStatus::Received => "received",
            MessageStatus::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<MessageStatus> {
        MessageStatus::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether the send is over (one way or another).
    pub fn is_final(self) -> bool {
        !matches!(self, MessageStatus::Queued | MessageStatus::Sending)
    }
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Outbound,
    Inbound,
}

/// Why a send failed (or is waiting for a retry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageError {
    pub code: ErrorCode,
    pub message: String,
}

/// Where a media file comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum MediaSource {
    /// Sent in the request; the bytes are stored beside the message.
    Inline { size: u64, sha256: String },
    /// Fetched by the worker.
    Url { url: String },
}

/// A media file of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    pub mime_type: String,
    #[serde(flatten)]
    pub source: MediaSource,
}

/// A message of a device's history that a send refers to: the one it quotes, or the one
/// it reacts to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRef {
    pub message_id: String,
    /// Its sender: the peer (inbound), or this account (outbound; unknown before the
    /// device was linked).
    pub from: Option<String>,
    /// Whether this device sent it.
    pub from_me: bool,
    /// Its chat: the peer, or the group.
    pub chat: String,
    /// Its text or caption, quoted in a reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl MessageRef {
    /// The reference to the stored message `m`.
    pub fn of(m: &Message) -> MessageRef {
        MessageRef {
            message_id: m.message_id.clone(),
            from: m.from.clone(),
            from_me: m.direction == Direction::Outbound,
            chat: m.chat.clone(),
            text: m.text.clone(),
        }
    }

    /// A reference to `message_id` not looked up yet (what a request names).
    pub fn unresolved(message_id: &str, chat: &str) -> MessageRef {
        MessageRef {
            message_id: message_id.to_owned(),
            from: None,
            from_me: false,
            chat: chat.to_owned(),
            text: None,
        }
    }
}

/// The validated content of an outbound message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Content {
    Text {
        text: String,
    },
    Image {
        media: Media,
        caption: Option<String>,
    },
    Video {
        media: Media,
        caption: Option<String>,
    },
    Audio {
        media: Media,
        ptt: bool,
    },
    Document {
        media: Media,
        file_name: Option<String>,
        caption: Option<String>,
    },
    Sticker {
        media: Media,
    },
    Location {
        latitude: f64,
        longitude: f64,
        name: Option<String>,
        address: Option<String>,
    },
    Contact {
        contact_name: String,
        vcard: String,
    },
    /// `emoji` on `target`; `""` takes the reaction back.
    Reaction {
        target: MessageRef,
        emoji: String,
    },
    Poll {
        question: String,
        options: Vec<String>,
        selectable_count: u32,
        /// The poll's secret (32 bytes, hex): voters' clients derive their vote's key from
        /// it, so it is needed to read the votes.
        secret: String,
    },
}

impl Content {
    pub fn kind(&self) -> MessageType {
        match self {
            Content::Text { .. } => MessageType::Text,
            Content::Image { .. } => MessageType::Image,
            Content::Video { .. } => MessageType::Video,
            Content::Audio { .. } => MessageType::Audio,
            Content::Document { .. } => MessageType::Document,
            Content::Sticker { .. } => MessageType::Sticker,
            Content::Location { .. } => MessageType::Location,
            Content::Contact { .. } => MessageType::Contact,
            Content::Reaction { .. } => MessageType::Reaction,
            Content::Poll { .. } => MessageType::Poll,
        }
    }

    pub fn media(&self) -> Option<&Media> {
        match self {
            Content::Image { media, .. }
            | Content::Video { media, .. }
            | Content::Audio { media, .. }
            | Content::Document { media, .. }
            | Content::Sticker { media } => Some(media),
            _ => None,
        }
    }

    /// The text shown for the message: the text, a caption, a place or a contact's name,
    /// a reaction's emoji, a poll's question.
    pub fn display_text(&self) -> Option<String> {
        match self {
            Content::Text { text } => Some(text.clone()),
            Content::Image { caption, .. }
            | Content::Video { caption, .. }
            | Content::Document { caption, .. } => caption.clone(),
            Content::Location { name, .. } => name.clone(),
            Content::Contact { contact_name, .. } => Some(contact_name.clone()),
            Content::Reaction { emoji, .. } => Some(emoji.clone()),
            Content::Poll { question, .. } => Some(question.clone()),
            _ => None,
        }
    }
}

/// A stored message, outbound or inbound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The WhatsApp message id (fixed when the send is accepted).
    pub message_id: String,
    pub device_id: Uuid,
    pub app_id: Uuid,
    pub direction: Direction,
    /// The recipient's JID (outbound) or this account (inbound).
    pub to: String,
    /// The sender's JID (inbound) or this account (outbound).
    pub from: Option<String>,
    /// The sender's phone number when WhatsApp lets us resolve an `@lid` sender.
    pub from_phone: Option<String>,
    /// The chat: the peer, or the group.
    pub chat: String,
    pub kind: MessageType,
    pub status: MessageStatus,
    pub error: Option<MessageError>,
    pub attempts: u32,
    pub idempotency_key: Option<String>,
    /// Outbound: what to send. Inbound: what arrived (media by reference).
    pub content: Option<Content>,
    pub text: Option<String>,
    /// Inbound media stored by the server.
    pub media_path: Option<String>,
    pub mime_type: Option<String>,
    /// Inbound media: size in bytes and SHA-256 (hex).
    pub media_size: Option<u64>,
    pub media_sha256: Option<String>,
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "crate::time::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "crate::time::rfc3339::option")]
    pub sent_at: Option<OffsetDateTime>,
    /// When a rate-limited send is retried.
    #[serde(with = "crate::time::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// The message this one quotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<MessageRef>,
    /// The JIDs mentioned in its text or caption.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
    /// When its text or caption was last edited.
    #[serde(
        default,
        with = "crate::time::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub edited_at: Option<OffsetDateTime>,
    /// A poll's votes: each voter's latest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poll_votes: Vec<super::PollVote>,
}

/// A change to a message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageUpdate {
    pub status: Option<MessageStatus>,
    pub error: Option<Option<MessageError>>,
    pub attempts: Option<u32>,
    pub sent_at: Option<Option<OffsetDateTime>>,
    pub next_attempt_at: Option<Option<OffsetDateTime>>,
    pub updated_at: Option<OffsetDateTime>,
    /// An edit: the new text and content, and when.
    pub edit: Option<Edit>,
    /// A poll's vote: it becomes its voter's latest (one that selects nothing withdraws
    /// the voter's vote).
    pub vote: Option<super::PollVote>,
}

/// The new text of an edited message, its content with that text (an outbound message's;
/// a received one keeps none), and the edit's time.
#[derive(Debug, Clone, PartialEq)]
pub struct Edit {
    pub text: String,
    pub content: Option<Content>,
    pub edited_at: OffsetDateTime,
}

impl MessageUpdate {
    pub fn apply_to(&self, m: &mut Message) {
        if let Some(s) = self.status {
            m.status = s;
        }
        if let Some(e) = &self.error {
            m.error = e.clone();
        }
        if let Some(a) = self.attempts {
            m.attempts = a;
        }
        if let Some(s) = self.sent_at {
            m.sent_at = s;
        }
        if let Some(n) = self.next_attempt_at {
            m.next_attempt_at = n;
        }
        if let Some(t) = self.updated_at {
            m.updated_at = t;
        }
        if let Some(e) = &self.edit {
            m.text = Some(e.text.clone());
            if let Some(c) = &e.content {
                m.content = Some(c.clone());
            }
            m.edited_at = Some(e.edited_at);
        }
        if let Some(v) = &self.vote {
            super::polls::apply_vote(&mut m.poll_votes, v);
        }
    }
}

/// A new WhatsApp-style message id: `3EB0` and 18 random upper-case hex digits.
pub fn new_message_id() -> String {
    let u = Uuid::new_v4();
    let hex: String = u.as_bytes()[..9]
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    format!("3EB0{hex}")
}

/// Whether a string may be a message id in a path: 1-128 chars of `[A-Za-z0-9._:-]`.
pub fn is_valid_message_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The notifier key of a message.
pub fn wait_key(device_id: Uuid, message_id: &str) -> Uuid {
    Uuid::new_v5(&device_id, message_id.as_bytes())
}
