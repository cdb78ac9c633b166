//! The webhook events in the OpenAPI document: its `webhooks` section (OpenAPI 3.1), one
//! `POST` per event with the body wa-server sends, the signature headers, and the answers
//! it takes as delivered. utoipa does not describe webhooks, so the section is JSON built
//! here ([`section`]) and added to the document where it is served; a test holds every
//! event's schema to the payload wa-server builds for it.

use serde_json::{Map, Value, json};
use wa_core::webhooks::EventType;

/// Every event, in the order the docs list them.
pub const EVENTS: [EventType; 16] = [
    EventType::DeviceQrGenerated,
    EventType::DeviceConnected,
    EventType::DeviceDisconnected,
    EventType::DeviceLoggedOut,
    EventType::DeviceDestroyed,
    EventType::Message,
    EventType::MessageFailed,
    EventType::Receipt,
    EventType::MessageRevoked,
    EventType::Reaction,
    EventType::MessageEdited,
    EventType::PollVote,
    EventType::Call,
    EventType::GroupUpdate,
    EventType::Presence,
    EventType::ChatPresence,
];

/// The `webhooks` section: each event's name to its `POST`.
pub fn section() -> Value {
    let mut out = Map::new();
    for kind in EVENTS {
        let name = kind.as_str();
        let operation = json!({
            "operationId": format!("webhook_{name}"),
            "tags": ["webhook events"],
            "summary": summary(kind),
            "description": "POSTed to the App's `webhook_url`, signed per Standard Webhooks: \
                `webhook-signature` is `v1,` and the base64 HMAC-SHA256 of \
                `{webhook-id}.{webhook-timestamp}.{body}` keyed with the base64 part of the \
                App's `webhook_secret`. Deduplicate on `webhook-id` (the event's `request_id`): \
                a failed delivery is retried under the same id.",
            "parameters": [
                header("webhook-id", "The event's `request_id`, the same on every attempt"),
                header("webhook-timestamp", "Unix seconds of this attempt"),
                header("webhook-signature", "`v1,<base64 HMAC-SHA256>`"),
                header("X-WA-Request-ID", "The event's `request_id`"),
            ],
            "requestBody": {
                "required": true,
                "content": {"application/json": {"schema": body(kind)}},
            },
            "responses": {
                "200": {"description": "Any 2xx answer within the timeout: delivered"},
                "default": {"description": "Anything else (or no answer): retried with backoff"},
            },
        });
        out.insert(name.to_owned(), json!({ "post": operation }));
    }
    Value::Object(out)
}

/// The whole body of `kind`: the event's envelope around its payload.
pub fn body(kind: EventType) -> Value {
    object(
        &[
            ("request_id", string()),
            ("event", json!({"type": "string", "const": kind.as_str()})),
            ("app_id", uuid()),
            ("device_id", uuid()),
            ("timestamp", date_time()),
            ("payload", payload(kind)),
        ],
        &[],
    )
}

fn summary(kind: EventType) -> &'static str {
    match kind {
        EventType::DeviceQrGenerated => "A new QR code to scan",
        EventType::DeviceConnected => "The device connected to WhatsApp",
        EventType::DeviceDisconnected => "The device lost or closed its connection",
        EventType::DeviceLoggedOut => "The device was logged out (unlinked)",
        EventType::DeviceDestroyed => "The device was destroyed",
        EventType::Message => "A message received, or one sent",
        EventType::MessageFailed => "A send failed for good (or was canceled)",
        EventType::Receipt => "A sent message was delivered, read or played",
        EventType::MessageRevoked => "A peer deleted its message for everyone",
        EventType::Reaction => "A peer reacted to a message (`\"\"`: took it back)",
        EventType::MessageEdited => "A peer edited its message",
        EventType::PollVote => "A vote on a poll, with the tally",
        EventType::Call => "An incoming call",
        EventType::GroupUpdate => "A change to a group, made by the device or elsewhere",
        EventType::Presence => "A peer's presence (subscribed to)",
        EventType::ChatPresence => "A peer is typing or recording, or stopped",
    }
}

/// The payload of `kind`.
fn payload(kind: EventType) -> Value {
    match kind {
        EventType::DeviceQrGenerated
        | EventType::DeviceConnected
        | EventType::DeviceDisconnected
        | EventType::DeviceLoggedOut
        | EventType::DeviceDestroyed => device(),
        EventType::Message | EventType::MessageFailed => message(),
        EventType::Receipt => object(
            &[
                ("message_id", string()),
                ("status", string()),
                ("from", string()),
                ("chat", string()),
            ],
            &[],
        ),
        EventType::MessageRevoked => object(
            &[
                ("message_id", string()),
                ("chat", string()),
                ("from", string()),
            ],
            &[],
        ),
        EventType::Reaction => object(
            &[
                ("message_id", string()),
                ("chat", string()),
                ("from", string()),
                ("emoji", string()),
                ("direction", string()),
            ],
            &[],
        ),
        EventType::MessageEdited => object(
            &[
                ("message_id", string()),
                ("chat", string()),
                ("from", string()),
                ("text", string()),
                ("edited_at", date_time()),
            ],
            &[],
        ),
        EventType::PollVote => object(
            &[
                ("poll_message_id", string()),
                ("chat", string()),
                ("voter", string()),
                ("selected_options", strings()),
                (
                    "tally",
                    json!({"type": "object", "additionalProperties": {"type": "integer"},
                        "description": "Each option's votes, over every voter's latest vote"}),
                ),
            ],
            &[],
        ),
        EventType::Call => object(
            &[
                ("call_id", string()),
                ("from", string()),
                ("is_video", boolean()),
                ("status", one_of(&["offer", "missed", "rejected"])),
            ],
            &[],
        ),
        EventType::GroupUpdate => group_update(),
        EventType::Presence => object(
            &[
                ("jid", string()),
                ("presence", string()),
                ("last_seen", nullable(date_time())),
            ],
            &[],
        ),
        EventType::ChatPresence => object(
            &[
                ("jid", string()),
                ("chat", string()),
                ("state", one_of(&["composing", "recording", "paused"])),
            ],
            &[],
        ),
    }
}

fn device() -> Value {
    object(
        &[
            ("device_id", uuid()),
            ("device_name", string()),
            ("status", string()),
        ],
        &[
            (
                "qr",
                object(&[("code", string()), ("expires_at", date_time())], &[]),
            ),
            ("qr_expires_at", date_time()),
            ("wa_number", nullable(string())),
            ("wa_device_jid", nullable(string())),
            ("linked_at", nullable(date_time())),
            (
                "last_error",
                object(
                    &[
                        ("code", string()),
                        ("message", string()),
                        ("at", date_time()),
                    ],
                    &[],
                ),
            ),
        ],
    )
}

fn message() -> Value {
    let reply_to = object(
        &[("message_id", string()), ("from", nullable(string()))],
        &[],
    );
    object(
        &[
            ("direction", one_of(&["inbound", "outbound"])),
            ("message_id", string()),
            ("from", nullable(string())),
            ("from_phone", nullable(string())),
            ("to", string()),
            ("chat", string()),
            ("type", string()),
            ("text", nullable(string())),
            ("media_path", nullable(string())),
            ("mime_type", nullable(string())),
            ("media_size", nullable(integer())),
            ("media_sha256", nullable(string())),
            ("status", string()),
            ("idempotency_key", nullable(string())),
            ("reply_to", nullable(reply_to)),
            ("mentions", strings()),
        ],
        &[
            ("target_message_id", string()),
            ("emoji", string()),
            ("question", string()),
            ("options", strings()),
            ("selectable_count", integer()),
            (
                "error",
                object(&[("code", string()), ("message", string())], &[]),
            ),
        ],
    )
}

fn group_update() -> Value {
    let actions = [
        "created",
        "participants_added",
        "participants_removed",
        "promoted",
        "demoted",
        "subject",
        "description",
        "settings",
        "left",
    ];
    object(
        &[
            ("group_jid", string()),
            ("action", one_of(&actions)),
            ("participants", strings()),
            ("by", nullable(string())),
        ],
        &[
            ("subject", string()),
            ("description", string()),
            ("is_announce", boolean()),
            ("is_locked", boolean()),
            ("ephemeral_secs", integer()),
            ("is_join_approval_required", boolean()),
        ],
    )
}

fn header(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "header", "required": true, "description": description,
        "schema": {"type": "string"}})
}

fn object(required: &[(&str, Value)], optional: &[(&str, Value)]) -> Value {
    let properties: Map<String, Value> = required
        .iter()
        .chain(optional)
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let required: Vec<&str> = required.iter().map(|(k, _)| *k).collect();
    json!({"type": "object", "required": required, "properties": properties})
}

fn string() -> Value {
    json!({"type": "string"})
}

fn uuid() -> Value {
    json!({"type": "string", "format": "uuid"})
}

fn date_time() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn integer() -> Value {
    json!({"type": "integer"})
}

fn boolean() -> Value {
    json!({"type": "boolean"})
}

fn strings() -> Value {
    json!({"type": "array", "items": {"type": "string"}})
}

fn one_of(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

/// `schema`, or null.
fn nullable(schema: Value) -> Value {
    json!({"oneOf": [schema, {"type": "null"}]})
}

#[cfg(test)]
mod tests;
