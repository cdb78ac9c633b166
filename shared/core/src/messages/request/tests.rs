//! Send requests' validation: a row per accepted shape and per refusal, with its field.

use crate::messages::sample::sample_message;
use crate::messages::*;
use base64::Engine;
use serde_json::json;
use wa_errors::ErrorCode;

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F'];
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
const WEBP: &[u8] = b"RIFF\x10\0\0\0WEBPVP8 ";
const MP4: &[u8] = b"\0\0\0\x18ftypmp42\0\0\0\0";
const OGG: &[u8] = b"OggS\0\x02\0\0\0\0";
const PDF: &[u8] = b"%PDF-1.7\n";

fn req(v: serde_json::Value) -> SendRequest {
    serde_json::from_value(v).unwrap()
}

fn field(v: serde_json::Value) -> String {
    let e = req(v).validate(false).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ValidationError);
    e.details()["field"].as_str().unwrap().to_owned()
}

#[test]
fn every_type_validates() {
    let ok = [
        json!({"to": "+15551230001", "text": "hi"}),
        json!({"to": "15551230001@s.whatsapp.net", "type": "text", "text": "hi"}),
        json!({"to": "100000000000001@lid", "type": "image", "mime_type": "image/jpeg", "data_base64": b64(JPEG), "caption": "c"}),
        json!({"to": "120363000000000001@g.us", "type": "image", "mime_type": "image/png", "data_base64": b64(PNG)}),
        json!({"to": "15551230001", "type": "video", "mime_type": "video/mp4", "data_base64": b64(MP4)}),
        json!({"to": "15551230001", "type": "audio", "mime_type": "audio/ogg; codecs=opus", "data_base64": b64(OGG), "ptt": true}),
        json!({"to": "15551230001", "type": "document", "mime_type": "application/pdf", "data_base64": b64(PDF), "file_name": "a.pdf"}),
        json!({"to": "15551230001", "type": "sticker", "mime_type": "image/webp", "data_base64": b64(WEBP)}),
        json!({"to": "15551230001", "type": "image", "mime_type": "image/jpeg", "url": "https://example.com/a.jpg"}),
        json!({"to": "15551230001", "type": "location", "latitude": 48.85, "longitude": 2.35, "name": "Paris"}),
        json!({"to": "15551230001", "type": "contact", "contact_name": "Bob", "vcard": "BEGIN:VCARD\nVERSION:3.0\nFN:Bob\nEND:VCARD"}),
    ];
    for v in ok {
        let s = req(v.clone())
            .validate(false)
            .unwrap_or_else(|e| panic!("{v}: {e}"));
        assert!(s.to.contains('@'));
    }
    let s = req(json!({"to": "15551230001", "type": "audio", "mime_type": "audio/ogg", "data_base64": b64(OGG), "ptt": true}))
        .validate(false)
        .unwrap();
    assert_eq!(s.media.as_deref(), Some(OGG));
    assert!(matches!(s.content, Content::Audio { ptt: true, .. }));
}

#[test]
fn refusals_name_the_field() {
    let big = [JPEG, &vec![0u8; 5 * 1024 * 1024]].concat();
    for (body, wanted) in [
        (json!({"text": "hi"}), "to"),
        (json!({"to": "abc", "text": "hi"}), "to"),
        (json!({"to": "15551230001", "type": "sms"}), "type"),
        (json!({"to": "15551230001"}), "text"),
        (json!({"to": "15551230001", "text": ""}), "text"),
        (
            json!({"to": "15551230001", "text": "x".repeat(65537)}),
            "text",
        ),
        (
            json!({"to": "15551230001", "text": "hi", "caption": "c"}),
            "caption",
        ),
        (
            json!({"to": "15551230001", "type": "image", "data_base64": b64(JPEG)}),
            "mime_type",
        ),
        (
            json!({"to": "15551230001", "type": "image", "mime_type": "image/gif", "data_base64": b64(JPEG)}),
            "mime_type",
        ),
        (
            json!({"to": "15551230001", "type": "sticker", "mime_type": "image/png", "data_base64": b64(PNG)}),
            "mime_type",
        ),
        (
            json!({"to": "15551230001", "type": "image", "mime_type": "image/png", "data_base64": b64(JPEG)}),
            "data_base64",
        ),
        (
            json!({"to": "15551230001", "type": "image", "mime_type": "image/jpeg", "data_base64": "%%%"}),
            "data_base64",
        ),
        (
            json!({"to": "15551230001", "type": "image", "mime_type": "image/jpeg"}),
            "data_base64",
        ),
        (
            json!({"to": "15551230001", "type": "image", "mime_type": "image/jpeg", "data_base64": b64(JPEG), "url": "https://example.com/x"}),
            "data_base64",
        ),
        (
            json!({"to": "15551230001", "type": "image", "mime_type": "image/jpeg", "url": "ftp://example.com/x"}),
            "url",
        ),
        (
            json!({"to": "15551230001", "type": "image", "mime_type": "image/jpeg", "url": "http://127.0.0.1/x"}),
            "url",
        ),
        (
            json!({"to": "15551230001", "type": "image", "mime_type": "image/jpeg", "data_base64": b64(&big)}),
            "data_base64",
        ),
        (
            json!({"to": "15551230001", "type": "sticker", "mime_type": "image/webp", "data_base64": b64(WEBP), "caption": "no"}),
            "caption",
        ),
        (
            json!({"to": "15551230001", "type": "location", "latitude": 91.0, "longitude": 0.0}),
            "latitude",
        ),
        (
            json!({"to": "15551230001", "type": "location", "latitude": 0.0, "longitude": -180.5}),
            "longitude",
        ),
        (
            json!({"to": "15551230001", "type": "location", "longitude": 0.0}),
            "latitude",
        ),
        (
            json!({"to": "15551230001", "type": "contact", "contact_name": "Bob"}),
            "vcard",
        ),
        (
            json!({"to": "15551230001", "type": "contact", "contact_name": "Bob", "vcard": "hello"}),
            "vcard",
        ),
        (
            json!({"to": "15551230001", "type": "contact", "vcard": "BEGIN:VCARD\nEND:VCARD"}),
            "contact_name",
        ),
        (
            json!({"to": "15551230001", "type": "document", "mime_type": "application/pdf", "data_base64": b64(PDF), "file_name": "../x"}),
            "file_name",
        ),
        (
            json!({"to": "15551230001", "type": "audio", "mime_type": "audio/ogg", "data_base64": b64(PDF)}),
            "data_base64",
        ),
    ] {
        assert_eq!(field(body.clone()), wanted, "{body}");
    }
}

#[test]
fn conversation_sends_validate() {
    let s = req(json!({"to": "+15551230001", "text": "hi @15550002222", "reply_to": {"message_id": "3EB0ABC"}, "mentions": ["+15550002222", "15550002222@s.whatsapp.net", "100000000000001@lid"]}))
        .validate(false)
        .unwrap();
    assert_eq!(
        s.reply_to,
        Some(MessageRef::unresolved(
            "3EB0ABC",
            "15551230001@s.whatsapp.net"
        ))
    );
    // Normalized like `to`, each once, in order.
    assert_eq!(
        s.mentions,
        vec!["15550002222@s.whatsapp.net", "100000000000001@lid"]
    );
    assert_eq!(s.references(), vec![("reply_to", "3EB0ABC".to_string())]);

    let s = req(
        json!({"to": "15551230001", "type": "reaction", "message_id": "3EB0ABC", "emoji": "👍"}),
    )
    .validate(false)
    .unwrap();
    assert!(
        matches!(&s.content, Content::Reaction { target, emoji } if target.message_id == "3EB0ABC" && emoji == "👍")
    );
    assert_eq!(s.references(), vec![("message_id", "3EB0ABC".to_string())]);
    let removed =
        req(json!({"to": "15551230001", "type": "reaction", "message_id": "3EB0ABC", "emoji": ""}))
            .validate(false)
            .unwrap();
    assert_eq!(removed.content.display_text().as_deref(), Some(""));

    let s = req(json!({"to": "120363000000000001@g.us", "type": "poll", "question": "Lunch?", "options": ["Pizza", "Sushi", "Tacos"], "reply_to": {"message_id": "3EB0ABC"}}))
        .validate(false)
        .unwrap();
    let Content::Poll {
        question,
        options,
        selectable_count,
        secret,
    } = &s.content
    else {
        panic!("{:?}", s.content)
    };
    assert_eq!(question, "Lunch?");
    assert_eq!(options.len(), 3);
    assert_eq!(*selectable_count, 1);
    assert_eq!(secret.len(), 64);
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
    let two = req(json!({"to": "15551230001", "type": "poll", "question": "Q", "options": ["a", "b"], "selectable_count": 2}))
        .validate(false)
        .unwrap();
    assert!(matches!(
        two.content,
        Content::Poll {
            selectable_count: 2,
            ..
        }
    ));
    // Media and every other type may quote; captions may mention.
    req(json!({"to": "15551230001", "type": "image", "mime_type": "image/jpeg", "url": "https://example.com/a.jpg", "caption": "@15550002222", "mentions": ["15550002222"], "reply_to": {"message_id": "X"}}))
        .validate(false)
        .unwrap();
    req(json!({"to": "15551230001", "type": "location", "latitude": 1.0, "longitude": 2.0, "reply_to": {"message_id": "X"}}))
        .validate(false)
        .unwrap();
}

#[test]
fn conversation_refusals_name_the_field() {
    let to = "15551230001";
    let rows = [
        (
            json!({"to": to, "text": "hi", "reply_to": {"message_id": "bad id"}}),
            "reply_to",
        ),
        (
            json!({"to": to, "text": "hi", "reply_to": {"message_id": ""}}),
            "reply_to",
        ),
        (
            json!({"to": to, "text": "hi", "mentions": ["abc"]}),
            "mentions",
        ),
        (
            json!({"to": to, "text": "hi", "mentions": ["1555@example.com"]}),
            "mentions",
        ),
        (
            json!({"to": to, "text": "hi", "mentions": vec!["15550002222"; 257]}),
            "mentions",
        ),
        (
            json!({"to": to, "type": "location", "latitude": 1.0, "longitude": 2.0, "mentions": ["15550002222"]}),
            "mentions",
        ),
        (
            json!({"to": to, "type": "audio", "mime_type": "audio/ogg", "data_base64": b64(OGG), "mentions": ["15550002222"]}),
            "mentions",
        ),
        (json!({"to": to, "text": "hi", "emoji": "👍"}), "emoji"),
        (json!({"to": to, "text": "hi", "question": "Q"}), "question"),
        (
            json!({"type": "reaction", "message_id": "3EB0ABC", "emoji": "👍"}),
            "to",
        ),
        (
            json!({"to": to, "type": "reaction", "emoji": "👍"}),
            "message_id",
        ),
        (
            json!({"to": to, "type": "reaction", "message_id": "a/b", "emoji": "👍"}),
            "message_id",
        ),
        (
            json!({"to": to, "type": "reaction", "message_id": "3EB0ABC"}),
            "emoji",
        ),
        (
            json!({"to": to, "type": "reaction", "message_id": "3EB0ABC", "emoji": "ok"}),
            "emoji",
        ),
        (
            json!({"to": to, "type": "reaction", "message_id": "3EB0ABC", "emoji": "👍👍"}),
            "emoji",
        ),
        (
            json!({"to": to, "type": "reaction", "message_id": "3EB0ABC", "emoji": "👍", "text": "x"}),
            "text",
        ),
        (
            json!({"to": to, "type": "reaction", "message_id": "3EB0ABC", "emoji": "👍", "reply_to": {"message_id": "X"}}),
            "reply_to",
        ),
        (
            json!({"to": to, "type": "reaction", "message_id": "3EB0ABC", "emoji": "👍", "mentions": []}),
            "mentions",
        ),
        (
            json!({"to": to, "type": "poll", "options": ["a", "b"]}),
            "question",
        ),
        (
            json!({"to": to, "type": "poll", "question": "", "options": ["a", "b"]}),
            "question",
        ),
        (
            json!({"to": to, "type": "poll", "question": "  ", "options": ["a", "b"]}),
            "question",
        ),
        (
            json!({"to": to, "type": "poll", "question": "q".repeat(256), "options": ["a", "b"]}),
            "question",
        ),
        (
            json!({"to": to, "type": "poll", "question": "Q"}),
            "options",
        ),
        (
            json!({"to": to, "type": "poll", "question": "Q", "options": ["a"]}),
            "options",
        ),
        (
            json!({"to": to, "type": "poll", "question": "Q", "options": (0..13).map(|i| i.to_string()).collect::<Vec<_>>()}),
            "options",
        ),
        (
            json!({"to": to, "type": "poll", "question": "Q", "options": ["a", "a"]}),
            "options",
        ),
        (
            json!({"to": to, "type": "poll", "question": "Q", "options": ["a", ""]}),
            "options",
        ),
        (
            json!({"to": to, "type": "poll", "question": "Q", "options": ["a", "o".repeat(101)]}),
            "options",
        ),
        (
            json!({"to": to, "type": "poll", "question": "Q", "options": ["a", "b"], "selectable_count": 0}),
            "selectable_count",
        ),
        (
            json!({"to": to, "type": "poll", "question": "Q", "options": ["a", "b"], "selectable_count": 3}),
            "selectable_count",
        ),
        (
            json!({"to": to, "type": "poll", "question": "Q", "options": ["a", "b"], "mentions": ["15550002222"]}),
            "mentions",
        ),
        (
            json!({"to": to, "type": "poll", "question": "Q", "options": ["a", "b"], "emoji": "👍"}),
            "emoji",
        ),
    ];
    for (body, want) in rows {
        assert_eq!(field(body.clone()), want, "{body}");
    }
}

#[test]
fn resolving_names_the_unknown_reference() {
    let mut s = req(
        json!({"to": "15551230001", "type": "reaction", "message_id": "3EB0ABC", "emoji": "👍"}),
    )
    .validate(false)
    .unwrap();
    let e = s.resolve("message_id", None).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ValidationError);
    assert_eq!(e.details()["field"], "message_id");

    let stored = Message {
        message_id: "3EB0ABC".into(),
        direction: Direction::Inbound,
        from: Some("15550001111@s.whatsapp.net".into()),
        chat: "120363000000000001@g.us".into(),
        text: Some("lunch?".into()),
        ..sample_message()
    };
    s.resolve("message_id", Some(&stored)).unwrap();
    let Content::Reaction { target, .. } = &s.content else {
        panic!()
    };
    assert_eq!(
        target,
        &MessageRef {
            message_id: "3EB0ABC".into(),
            from: Some("15550001111@s.whatsapp.net".into()),
            from_me: false,
            chat: "120363000000000001@g.us".into(),
            text: Some("lunch?".into()),
        }
    );

    let mut r =
        req(json!({"to": "15551230001", "text": "yes", "reply_to": {"message_id": "3EB0ABC"}}))
            .validate(false)
            .unwrap();
    assert_eq!(
        r.resolve("reply_to", None).unwrap_err().details()["field"],
        "reply_to"
    );
    let mine = Message {
        direction: Direction::Outbound,
        from: Some("15551230001:3@s.whatsapp.net".into()),
        ..stored
    };
    r.resolve("reply_to", Some(&mine)).unwrap();
    let q = r.reply_to.unwrap();
    assert!(q.from_me);
    assert_eq!(q.from.as_deref(), Some("15551230001:3@s.whatsapp.net"));
}

#[test]
fn ids_and_keys() {
    let id = new_message_id();
    assert!(id.starts_with("3EB0") && id.len() == 22 && is_valid_message_id(&id));
    assert_ne!(new_message_id(), id);
    assert!(validate_idempotency_key("order-123").is_ok());
    for bad in ["", "has space", &"k".repeat(256), "é"] {
        assert_eq!(
            validate_idempotency_key(bad).unwrap_err().details()["field"],
            "Idempotency-Key"
        );
    }
}
