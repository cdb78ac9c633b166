//! The records tests build, in one place: an App, a device, an outbound and an inbound
//! message, and an environment of settings. Each is valid and fresh (new ids, new token, now); tests change the fields
//! they care about with struct update syntax (`App { webhook_url: None, ..app(t, n) }`).

use std::collections::HashMap;

use uuid::Uuid;
use wa_core::apps::App;
use wa_core::devices::Device;
use wa_core::messages::{Content, Direction, Message, MessageStatus, MessageType, new_message_id};
use wa_core::{auth, time};

/// The environment `pairs` (name, value) as a lookup of variables, for the
/// `from_lookup` constructors of the settings.
pub fn env_lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let vars: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| vars.get(k).cloned()
}

/// A fresh random tenant id: tests that share a backend never see each other's Apps.
pub fn tenant() -> String {
    format!("t-{}", Uuid::new_v4())
}

/// An App of `tenant` named `name`, with a webhook URL, a new token (hashed) and a new
/// webhook secret.
pub fn app(tenant: &str, name: &str) -> App {
    let now = time::now();
    App {
        app_id: Uuid::now_v7(),
        tenant_id: tenant.to_owned(),
        name: name.to_owned(),
        webhook_url: Some("https://example.com/hook".into()),
        token_hash: auth::hash_token(&auth::new_app_token()),
        webhook_secret: auth::new_webhook_secret(),
        created_at: now,
        updated_at: now,
    }
}

/// An `initializing` device of `app_id`, of tenant `t`.
pub fn device(app_id: Uuid, name: &str) -> Device {
    Device::new(app_id, "t", name, time::now())
}

/// A queued outbound text message (`text`) of `device_id` and `app_id`, created at `at`.
pub fn outbound_text(
    device_id: Uuid,
    app_id: Uuid,
    text: &str,
    at: time::OffsetDateTime,
) -> Message {
    Message {
        message_id: new_message_id(),
        device_id,
        app_id,
        direction: Direction::Outbound,
        to: "15550001111@s.whatsapp.net".into(),
        from: None,
        from_phone: None,
        chat: "15550001111@s.whatsapp.net".into(),
        kind: MessageType::Text,
        status: MessageStatus::Queued,
        error: None,
        attempts: 0,
        idempotency_key: None,
        content: Some(Content::Text { text: text.into() }),
        text: Some(text.into()),
        media_path: None,
        mime_type: None,
        media_size: None,
        media_sha256: None,
        created_at: at,
        updated_at: at,
        sent_at: None,
        next_attempt_at: None,
        reply_to: None,
        mentions: Vec::new(),
        edited_at: None,
        poll_votes: Vec::new(),
    }
}

/// A received text message with WhatsApp's id `message_id`, sent by `from` in `chat`.
pub fn inbound_text(
    device_id: Uuid,
    app_id: Uuid,
    chat: &str,
    from: &str,
    message_id: &str,
    text: &str,
) -> Message {
    let now = time::now();
    Message {
        message_id: message_id.to_owned(),
        direction: Direction::Inbound,
        to: "15551230001@s.whatsapp.net".into(),
        from: Some(from.to_owned()),
        chat: chat.to_owned(),
        status: MessageStatus::Received,
        content: None,
        ..outbound_text(device_id, app_id, text, now)
    }
}
