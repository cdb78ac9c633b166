//! A stored message for the tests of the message rules.

use super::record::*;

/// A text message the device sent, with nothing else set.
pub(crate) fn sample_message() -> Message {
    let now = crate::time::now();
    Message {
        message_id: new_message_id(),
        device_id: uuid::Uuid::nil(),
        app_id: uuid::Uuid::nil(),
        direction: Direction::Outbound,
        to: "15551230001@s.whatsapp.net".into(),
        from: None,
        from_phone: None,
        chat: "15551230001@s.whatsapp.net".into(),
        kind: MessageType::Text,
        status: MessageStatus::Sent,
        error: None,
        attempts: 1,
        idempotency_key: None,
        content: None,
        text: None,
        media_path: None,
        mime_type: None,
        media_size: None,
        media_sha256: None,
        created_at: now,
        updated_at: now,
        sent_at: None,
        next_attempt_at: None,
        reply_to: None,
        mentions: Vec::new(),
        edited_at: None,
        poll_votes: Vec::new(),
    }
}
