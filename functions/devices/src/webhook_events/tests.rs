use super::*;
use uuid::Uuid;
use wa_core::devices::{Device, DeviceStatus, LastError, Qr};
use wa_core::groups::{GroupChanges, GroupUpdate, GroupUpdateAction};
use wa_core::messages::{Content, MessageError, MessageRef, MessageStatus, PollVote};
use wa_core::provider::{CallStatus, Presence};
use wa_core::time;
use wa_core::webhooks::{Event, payload};
use wa_errors::ErrorCode;
use wa_testkit::fixtures;

/// Where `value` breaks `schema` (the subset of JSON Schema [`section`] uses: `type`,
/// `const`, `enum`, `oneOf`, `required`, `properties`, `additionalProperties`, `items`):
/// an undeclared property counts, so a payload field the document leaves out fails.
fn violations(schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let fits = options.iter().any(|o| {
            let mut v = Vec::new();
            violations(o, value, at, &mut v);
            v.is_empty()
        });
        if !fits {
            out.push(format!("{at}: {value} fits none of {options:?}"));
        }
        return;
    }
    if let Some(want) = schema.get("const")
        && want != value
    {
        out.push(format!("{at}: {value} is not {want}"));
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        out.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    let kind = schema["type"].as_str().unwrap_or("any");
    let fits = match (kind, value) {
        ("string", Value::String(_)) | ("boolean", Value::Bool(_)) | ("null", Value::Null) => true,
        ("integer", Value::Number(n)) => n.is_i64() || n.is_u64(),
        ("array", Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                violations(&schema["items"], item, &format!("{at}[{i}]"), out);
            }
            true
        }
        ("object", Value::Object(fields)) => {
            for key in schema["required"].as_array().into_iter().flatten() {
                if !fields.contains_key(key.as_str().unwrap()) {
                    out.push(format!("{at}: {key} is missing"));
                }
            }
            for (key, v) in fields {
                let inner = &format!("{at}.{key}");
                match (
                    schema["properties"].get(key),
                    schema.get("additionalProperties"),
                ) {
                    (Some(s), _) | (None, Some(s)) => violations(s, v, inner, out),
                    (None, None) => out.push(format!("{inner} is not in the document")),
                }
            }
            true
        }
        ("any", _) => true,
        _ => false,
    };
    if !fits {
        out.push(format!("{at}: {value} is not of type {kind}"));
    }
}

fn device(status: DeviceStatus) -> Device {
    let mut d = fixtures::device(Uuid::now_v7(), "front desk");
    d.status = status;
    d
}

/// Every event wa-server sends, built by the functions that build them for delivery,
/// with every optional field filled in at least once.
fn examples() -> Vec<Event> {
    let app = Uuid::now_v7();
    let dev = Uuid::now_v7();
    let now = time::now();
    let mut out = Vec::new();
    let mut qr = device(DeviceStatus::QrGenerated);
    qr.qr = Some(Qr::new("2@abc".into(), now));
    out.push(payload::device(DeviceStatus::Initializing, &qr).unwrap());
    let mut connected = device(DeviceStatus::Connected);
    connected.wa_number = Some("15551230001".into());
    connected.wa_device_jid = Some("15551230001:3@s.whatsapp.net".into());
    connected.linked_at = Some(now);
    out.push(payload::device(DeviceStatus::Connecting, &connected).unwrap());
    for status in [
        DeviceStatus::Disconnected,
        DeviceStatus::LoggedOut,
        DeviceStatus::Destroyed,
    ] {
        let mut d = device(status);
        d.last_error = Some(LastError {
            code: ErrorCode::WhatsappConnectionLost,
            message: "gone".into(),
            at: now,
        });
        out.push(payload::device(DeviceStatus::Connected, &d).unwrap());
    }
    let chat = "15551230002@s.whatsapp.net";
    let mut inbound = fixtures::inbound_text(dev, app, chat, chat, "3EB0A", "hi");
    inbound.reply_to = Some(MessageRef {
        message_id: "3EB09".into(),
        from: Some(chat.into()),
        from_me: false,
        chat: chat.into(),
        text: Some("earlier".into()),
    });
    inbound.mentions = vec!["15551230003@s.whatsapp.net".into()];
    out.push(payload::message(&inbound).unwrap());
    let mut reaction = fixtures::outbound_text(dev, app, "x", now);
    reaction.status = MessageStatus::Sent;
    reaction.content = Some(Content::Reaction {
        target: MessageRef {
            message_id: "3EB0A".into(),
            from: None,
            from_me: true,
            chat: chat.into(),
            text: None,
        },
        emoji: "👍".into(),
    });
    out.push(payload::message(&reaction).unwrap());
    let mut poll = fixtures::outbound_text(dev, app, "x", now);
    poll.status = MessageStatus::Failed;
    poll.error = Some(MessageError {
        code: ErrorCode::ProviderError,
        message: "no".into(),
    });
    poll.content = Some(Content::Poll {
        question: "Lunch?".into(),
        options: vec!["Yes".into(), "No".into()],
        selectable_count: 1,
        secret: "00".repeat(32),
    });
    out.push(payload::message(&poll).unwrap());
    out.push(payload::receipt(&inbound, chat));
    out.push(payload::revoked(app, dev, "3EB0A", chat, chat));
    out.push(payload::reaction(app, dev, "3EB0A", chat, chat, "🎉"));
    out.push(payload::edited(app, dev, "3EB0A", chat, chat, "hello", now));
    poll.poll_votes = vec![PollVote {
        voter: chat.into(),
        selected_options: vec!["Yes".into()],
        voted_at: now,
    }];
    out.push(payload::poll_vote(&poll, chat, chat, &["Yes".into()]));
    out.push(payload::call(
        app,
        dev,
        "C1",
        chat,
        true,
        CallStatus::Rejected,
    ));
    for (action, changes) in [
        (
            GroupUpdateAction::ParticipantsAdded,
            GroupChanges::default(),
        ),
        (
            GroupUpdateAction::Settings,
            GroupChanges {
                subject: Some("Team".into()),
                description: Some("About".into()),
                is_announce: Some(true),
                is_locked: Some(false),
                ephemeral_secs: Some(86_400),
                is_join_approval_required: Some(true),
            },
        ),
    ] {
        let update = GroupUpdate {
            group_jid: "120363000000000001@g.us".into(),
            action,
            participants: vec![chat.into()],
            by: None,
            changes,
        };
        out.push(payload::group_update(app, dev, &update));
    }
    let presence = Presence {
        jid: chat.into(),
        presence: "available".into(),
        chat_state: Some("composing".into()),
        last_seen: Some(now),
        updated_at: now,
    };
    out.extend(payload::presence(app, dev, &presence));
    out
}

#[test]
fn every_event_sent_fits_its_schema() {
    let examples = examples();
    for kind in EVENTS {
        let of_kind: Vec<&Event> = examples.iter().filter(|e| e.event == kind).collect();
        assert!(!of_kind.is_empty(), "no example of {}", kind.as_str());
        for event in of_kind {
            let value: Value = serde_json::from_str(&event.body()).unwrap();
            let mut out = Vec::new();
            violations(&body(kind), &value, kind.as_str(), &mut out);
            assert!(out.is_empty(), "{out:#?}");
        }
    }
}

#[test]
fn the_checker_refuses_an_undeclared_field_a_missing_one_and_a_wrong_type() {
    let schema = object(&[("a", string())], &[("b", nullable(integer()))]);
    let check = |v: Value| {
        let mut out = Vec::new();
        violations(&schema, &v, "x", &mut out);
        out.len()
    };
    assert_eq!(check(json!({"a": "1", "b": null})), 0);
    assert_eq!(check(json!({"a": "1", "b": 2})), 0);
    assert_eq!(check(json!({"a": "1", "c": 2})), 1);
    assert_eq!(check(json!({"b": 2})), 1);
    assert_eq!(check(json!({"a": 1})), 1);
    assert_eq!(check(json!({"a": "1", "b": "2"})), 1);
}

#[test]
fn every_event_type_is_described_once() {
    let section = section();
    let names: Vec<&String> = section.as_object().unwrap().keys().collect();
    assert_eq!(names.len(), EVENTS.len());
    for kind in EVENTS {
        let op = &section[kind.as_str()]["post"];
        assert_eq!(op["operationId"], format!("webhook_{}", kind.as_str()));
        assert!(op["summary"].as_str().is_some_and(|s| !s.is_empty()));
    }
    // A new event type must be added to EVENTS (and so described): this match has no
    // wildcard.
    for kind in EVENTS {
        match kind {
            EventType::DeviceQrGenerated
            | EventType::DeviceConnected
            | EventType::DeviceDisconnected
            | EventType::DeviceLoggedOut
            | EventType::DeviceDestroyed
            | EventType::Message
            | EventType::MessageFailed
            | EventType::Receipt
            | EventType::MessageRevoked
            | EventType::Reaction
            | EventType::MessageEdited
            | EventType::GroupUpdate
            | EventType::Presence
            | EventType::ChatPresence
            | EventType::PollVote
            | EventType::Call => {}
        }
    }
}
