//! Webhook events and their Standard Webhooks signature.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use crate::time::OffsetDateTime;

/// The events an App's webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    DeviceQrGenerated,
    DeviceConnected,
    DeviceDisconnected,
    DeviceLoggedOut,
    DeviceDestroyed,
    Message,
    MessageFailed,
    Receipt,
    MessageRevoked,
    Reaction,
    MessageEdited,
    GroupUpdate,
    Presence,
    ChatPresence,
    PollVote,
    Call,
}

impl EventType {
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::DeviceQrGenerated => "device_qr_generated",
            EventType::DeviceConnected => "device_connected",
            EventType::DeviceDisconnected => "device_disconnected",
            EventType::DeviceLoggedOut => "device_logged_out",
            EventType::DeviceDestroyed => "device_destroyed",
            EventType::Message => "message",
            EventType::MessageFailed => "message_failed",
            EventType::Receipt => "receipt",
            EventType::MessageRevoked => "message_revoked",
            EventType::Reaction => "reaction",
            EventType::MessageEdited => "message_edited",
            EventType::GroupUpdate => "group_update",
            EventType::Presence => "presence",
            EventType::ChatPresence => "chat_presence",
            EventType::PollVote => "poll_vote",
            EventType::Call => "call",
        }
    }
}

/// An event to deliver: stored in the same transaction as the change that caused it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Also the `webhook-id` and `X-WA-Request-ID` of every delivery attempt.
    pub request_id: String,
    pub event: EventType,
    pub app_id: Uuid,
    pub device_id: Uuid,
    #[serde(with = "crate::time::rfc3339")]
    pub timestamp: OffsetDateTime,
    pub payload: serde_json::Value,
}

impl Event {
    pub fn new(
        event: EventType,
        app_id: Uuid,
        device_id: Uuid,
        payload: serde_json::Value,
    ) -> Event {
        Event {
            request_id: Uuid::now_v7().to_string(),
            event,
            app_id,
            device_id,
            timestamp: crate::time::now(),
            payload,
        }
    }

    /// The JSON body POSTed to the webhook.
    pub fn body(&self) -> String {
        serde_json::to_string(self).expect("events serialize")
    }
}

/// The `webhook-signature` value for a delivery: `v1,<base64 HMAC-SHA256>` of
/// `"{id}.{timestamp}.{body}"`, keyed with the base64 part of `whsec_...`.
/// `None` when the secret is not in that form.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{msg_id}.{timestamp}.{body}").as_bytes());
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification.
    #[test]
    fn matches_the_specification_example() {
        let sig = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(sign("whsec_!!!", "id", 1, "b").is_none());
    }
}

/// Payloads of the events, built from the records they describe.
pub mod payload {
    use serde_json::{Value, json};

    use super::{Event, EventType};
    use crate::devices::{Device, DeviceStatus};
    use crate::messages::{Content, Direction, Message, MessageStatus};
    use crate::provider::Presence;
    use crate::time::{self, OffsetDateTime};

    /// The event a device status change causes, if any.
    pub fn device(before: DeviceStatus, d: &Device) -> Option<Event> {
        let kind = match d.status {
            DeviceStatus::QrGenerated => EventType::DeviceQrGenerated,
            DeviceStatus::Connected if before != DeviceStatus::Connected => {
                EventType::DeviceConnected
            }
            DeviceStatus::Connecting if before == DeviceStatus::Connected => {
                EventType::DeviceDisconnected
            }
            DeviceStatus::Disconnected if before != DeviceStatus::Disconnected => {
                EventType::DeviceDisconnected
            }
            DeviceStatus::LoggedOut if before != DeviceStatus::LoggedOut => {
                EventType::DeviceLoggedOut
            }
            DeviceStatus::Destroyed if before != DeviceStatus::Destroyed => {
                EventType::DeviceDestroyed
            }
            _ => return None,
        };
        let mut p = json!({
            "device_id": d.device_id,
            "device_name": d.device_name,
            "status": d.status.as_str(),
        });
        match kind {
            EventType::DeviceQrGenerated => {
                let q = d.qr.as_ref()?;
                p["qr"] = json!({"code": q.code, "expires_at": time::format(q.expires_at)});
                p["qr_expires_at"] = time::format(q.expires_at).into();
            }
            EventType::DeviceConnected => {
                p["wa_number"] = json!(d.wa_number);
                p["wa_device_jid"] = json!(d.wa_device_jid);
                p["linked_at"] = json!(d.linked_at.map(time::format));
            }
            _ => {}
        }
        if let Some(e) = &d.last_error {
            p["last_error"] =
                json!({"code": e.code.as_str(), "message": e.message, "at": time::format(e.at)});
        }
        Some(Event::new(kind, d.app_id, d.device_id, p))
    }

    fn message_fields(m: &Message) -> Value {
        let mut p = json!({
            "direction": match m.direction { Direction::Inbound => "inbound", Direction::Outbound => "outbound" },
            "message_id": m.message_id,
            "from": m.from,
            "from_phone": m.from_phone,
            "to": m.to,
            "chat": m.chat,
            "type": m.kind.as_str(),
            "text": m.text,
            "media_path": m.media_path,
            "mime_type": m.mime_type,
            "media_size": m.media_size,
            "media_sha256": m.media_sha256,
            "status": m.status.as_str(),
            "idempotency_key": m.idempotency_key,
            "reply_to": m.reply_to.as_ref().map(|r| json!({"message_id": r.message_id, "from": r.from})),
            "mentions": m.mentions,
        });
        match &m.content {
            Some(Content::Reaction { target, emoji }) => {
                p["target_message_id"] = json!(target.message_id);
                p["emoji"] = json!(emoji);
            }
            Some(Content::Poll {
                question,
                options,
                selectable_count,
                ..
            }) => {
                p["question"] = json!(question);
                p["options"] = json!(options);
                p["selectable_count"] = json!(selectable_count);
            }
            _ => {}
        }
        p
    }

    /// `message` (inbound, or outbound once sent) or `message_failed`.
    pub fn message(m: &Message) -> Option<Event> {
        let kind = match (m.direction, m.status) {
            (Direction::Inbound, _) | (Direction::Outbound, MessageStatus::Sent) => {
                EventType::Message
            }
            (Direction::Outbound, MessageStatus::Failed | MessageStatus::Canceled) => {
                EventType::MessageFailed
            }
            _ => return None,
        };
        let mut p = message_fields(m);
        if let Some(e) = &m.error {
            p["error"] = json!({"code": e.code.as_str(), "message": e.message});
        }
        Some(Event::new(kind, m.app_id, m.device_id, p))
    }

    pub fn receipt(m: &Message, from: &str) -> Event {
        Event::new(
            EventType::Receipt,
            m.app_id,
            m.device_id,
            json!({"message_id": m.message_id, "status": m.status.as_str(), "from": from, "chat": m.chat}),
        )
    }

    pub fn revoked(
        app_id: uuid::Uuid,
        device_id: uuid::Uuid,
        message_id: &str,
        chat: &str,
        from: &str,
    ) -> Event {
        Event::new(
            EventType::MessageRevoked,
            app_id,
            device_id,
            json!({"message_id": message_id, "chat": chat, "from": from}),
        )
    }

    /// A peer's reaction to `message_id` (`emoji` `""`: taken back).
    pub fn reaction(
        app_id: uuid::Uuid,
        device_id: uuid::Uuid,
        message_id: &str,
        chat: &str,
        from: &str,
        emoji: &str,
    ) -> Event {
        Event::new(
            EventType::Reaction,
            app_id,
            device_id,
            json!({"message_id": message_id, "chat": chat, "from": from, "emoji": emoji, "direction": "inbound"}),
        )
    }

    /// A peer's edit of its message `message_id`.
    pub fn edited(
        app_id: uuid::Uuid,
        device_id: uuid::Uuid,
        message_id: &str,
        chat: &str,
        from: &str,
        text: &str,
        edited_at: OffsetDateTime,
    ) -> Event {
        Event::new(
            EventType::MessageEdited,
            app_id,
            device_id,
            json!({"message_id": message_id, "chat": chat, "from": from, "text": text, "edited_at": time::format(edited_at)}),
        )
    }

    /// A change to a group the device is in.
    pub fn group_update(
        app_id: uuid::Uuid,
        device_id: uuid::Uuid,
        update: &crate::groups::GroupUpdate,
    ) -> Event {
        let payload = serde_json::to_value(update).unwrap_or_else(|_| json!({}));
        Event::new(EventType::GroupUpdate, app_id, device_id, payload)
    }

    /// A vote in `chat` on the poll `poll` (the stored poll, the vote applied): the
    /// voter's choices and the tally over every voter's latest vote.
    pub fn poll_vote(
        poll: &Message,
        chat: &str,
        voter: &str,
        selected_options: &[String],
    ) -> Event {
        let options = crate::messages::polls::poll_of(poll.content.as_ref())
            .map(|(o, _, _)| o)
            .unwrap_or_default();
        let tally: serde_json::Map<String, Value> =
            crate::messages::polls::tally(options, &poll.poll_votes)
                .into_iter()
                .map(|(o, n)| (o, json!(n)))
                .collect();
        Event::new(
            EventType::PollVote,
            poll.app_id,
            poll.device_id,
            json!({
                "poll_message_id": poll.message_id,
                "chat": chat,
                "voter": voter,
                "selected_options": selected_options,
                "tally": tally,
            }),
        )
    }

    /// An incoming call, as it ended up.
    pub fn call(
        app_id: uuid::Uuid,
        device_id: uuid::Uuid,
        call_id: &str,
        from: &str,
        is_video: bool,
        status: crate::provider::CallStatus,
    ) -> Event {
        Event::new(
            EventType::Call,
            app_id,
            device_id,
            json!({"call_id": call_id, "from": from, "is_video": is_video, "status": status.as_str()}),
        )
    }

    /// `presence`, and `chat_presence` when the peer is typing or stopped typing.
    pub fn presence(app_id: uuid::Uuid, device_id: uuid::Uuid, p: &Presence) -> Vec<Event> {
        let mut out = vec![Event::new(
            EventType::Presence,
            app_id,
            device_id,
            json!({"jid": p.jid, "presence": p.presence, "last_seen": p.last_seen.map(time::format)}),
        )];
        if let Some(state) = &p.chat_state {
            out.push(Event::new(
                EventType::ChatPresence,
                app_id,
                device_id,
                json!({"jid": p.jid, "chat": p.jid, "state": state}),
            ));
        }
        out
    }
}
