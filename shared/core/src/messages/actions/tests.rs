//! The rules of the actions on a message: a row per outcome.

use std::time::Duration;

use wa_errors::ErrorCode;

use super::*;
use crate::messages::sample::sample_message;
use crate::messages::{Media, MediaSource, MessageType};

fn sent_at(minutes_ago: u64, content: Content) -> Message {
    let now = crate::time::now();
    Message {
        kind: content.kind(),
        content: Some(content),
        sent_at: Some(now - Duration::from_secs(minutes_ago * 60)),
        ..sample_message()
    }
}

fn text() -> Content {
    Content::Text {
        text: "helo".into(),
    }
}

fn media() -> Media {
    Media {
        mime_type: "image/jpeg".into(),
        source: MediaSource::Url {
            url: "https://example.com/a.jpg".into(),
        },
    }
}

#[test]
fn a_sent_text_within_the_window_is_edited() {
    let now = crate::time::now();
    let m = sent_at(14, text());
    assert_eq!(
        edited(&m, "hello", now).unwrap(),
        Content::Text {
            text: "hello".into()
        }
    );
    for status in DELIVERED_STATUSES {
        let m = Message {
            status,
            ..m.clone()
        };
        assert!(edited(&m, "hello", now).is_ok(), "{status:?}");
    }
}

#[test]
fn a_caption_is_edited_and_the_media_kept() {
    let now = crate::time::now();
    let rows = [
        (
            Content::Image {
                media: media(),
                caption: None,
            },
            Content::Image {
                media: media(),
                caption: Some("new".into()),
            },
        ),
        (
            Content::Video {
                media: media(),
                caption: Some("old".into()),
            },
            Content::Video {
                media: media(),
                caption: Some("new".into()),
            },
        ),
        (
            Content::Document {
                media: media(),
                file_name: Some("a.pdf".into()),
                caption: Some("old".into()),
            },
            Content::Document {
                media: media(),
                file_name: Some("a.pdf".into()),
                caption: Some("new".into()),
            },
        ),
    ];
    for (before, after) in rows {
        assert_eq!(edited(&sent_at(1, before), "new", now).unwrap(), after);
    }
}

#[test]
fn edits_are_refused_by_field_or_as_conflicts() {
    let now = crate::time::now();
    let image = Content::Image {
        media: media(),
        caption: None,
    };
    let long_caption = "x".repeat(1025);
    let long_text = "x".repeat(65_537);
    let conflict = |m: Message| (m, "new", ErrorCode::Conflict, None);
    let field = |m: Message, t| (m, t, ErrorCode::ValidationError, Some("text"));
    let rows: Vec<(Message, &str, ErrorCode, Option<&str>)> = vec![
        conflict(sent_at(16, text())),
        conflict(Message {
            direction: Direction::Inbound,
            ..sent_at(1, text())
        }),
        conflict(Message {
            status: MessageStatus::Queued,
            ..sent_at(1, text())
        }),
        conflict(Message {
            status: MessageStatus::Failed,
            ..sent_at(1, text())
        }),
        conflict(Message {
            status: MessageStatus::Revoked,
            ..sent_at(1, text())
        }),
        conflict(sent_at(
            1,
            Content::Location {
                latitude: 1.0,
                longitude: 2.0,
                name: None,
                address: None,
            },
        )),
        conflict(sent_at(1, Content::Sticker { media: media() })),
        field(sent_at(1, text()), ""),
        field(sent_at(1, text()), &long_text),
        field(sent_at(1, image.clone()), &long_caption),
        field(sent_at(1, image), ""),
    ];
    for (m, t, code, f) in rows {
        let e = edited(&m, t, now).unwrap_err();
        assert_eq!(e.code(), code, "{:?} {:?} {}", m.kind, m.status, t.len());
        assert_eq!(e.details().get("field").and_then(|v| v.as_str()), f);
    }
}

#[test]
fn a_revoke_is_sent_once_for_a_sent_message() {
    let m = sent_at(60, text());
    for status in DELIVERED_STATUSES {
        assert_eq!(
            revoke(&Message {
                status,
                ..m.clone()
            })
            .unwrap(),
            Revoke::Send
        );
    }
    let done = Message {
        status: MessageStatus::Revoked,
        ..m.clone()
    };
    assert_eq!(revoke(&done).unwrap(), Revoke::Done);
    for refused in [
        Message {
            status: MessageStatus::Queued,
            ..m.clone()
        },
        Message {
            status: MessageStatus::Sending,
            ..m.clone()
        },
        Message {
            status: MessageStatus::Canceled,
            ..m.clone()
        },
        Message {
            direction: Direction::Inbound,
            status: MessageStatus::Received,
            ..m.clone()
        },
    ] {
        let e = revoke(&refused).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Conflict, "{:?}", refused.status);
    }
}

fn received(chat: &str, from: &str, status: MessageStatus) -> Message {
    Message {
        direction: Direction::Inbound,
        chat: chat.into(),
        from: Some(from.into()),
        status,
        kind: MessageType::Text,
        ..sample_message()
    }
}

#[test]
fn a_receipt_is_for_a_received_message_and_its_sender() {
    let g = received(
        "120363000000000001@g.us",
        "15550001111@s.whatsapp.net",
        MessageStatus::Received,
    );
    let r = read_target(&g).unwrap();
    assert_eq!(
        (r.message_id, r.sender.as_str()),
        (g.message_id.clone(), "15550001111@s.whatsapp.net")
    );
    let e = read_target(&sample_message()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Conflict);
}

#[test]
fn the_walk_back_covers_unread_messages_of_the_chat_until_a_read_one() {
    let (chat, other) = ("a@s.whatsapp.net", "b@s.whatsapp.net");
    let rows = [
        (
            received(chat, chat, MessageStatus::Received),
            Earlier::Unread,
        ),
        (received(chat, chat, MessageStatus::Read), Earlier::Stop),
        (
            received(other, other, MessageStatus::Received),
            Earlier::Other,
        ),
        (received(chat, chat, MessageStatus::Revoked), Earlier::Other),
        (
            Message {
                chat: chat.into(),
                ..sample_message()
            },
            Earlier::Other,
        ),
    ];
    for (m, want) in rows {
        assert_eq!(earlier(&m, chat), want, "{:?} {}", m.status, m.chat);
    }
}
