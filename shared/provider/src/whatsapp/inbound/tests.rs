//! Unit tests of the inbound module: classification, receipts and the durability hook.

use super::*;
use tokio::sync::mpsc;
use whatsapp_rust::prelude::MessageField;

fn text(t: &str) -> wa::Message {
    wa::Message {
        conversation: Some(t.to_string()),
        ..Default::default()
    }
}

fn kind_of(m: &wa::Message) -> Option<MessageType> {
    match classify(m) {
        Classified::Message { kind, .. } => Some(kind),
        _ => None,
    }
}

fn text_of(m: &wa::Message) -> Option<String> {
    match classify(m) {
        Classified::Message { text, .. } => text,
        _ => None,
    }
}

#[test]
fn plain_and_extended_text_are_text() {
    assert_eq!(kind_of(&text("hi")), Some(MessageType::Text));
    assert_eq!(text_of(&text("hi")).as_deref(), Some("hi"));
    let ext = wa::Message {
        extended_text_message: MessageField::some(wa::message::ExtendedTextMessage {
            text: Some("see https://example.com".to_string()),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(kind_of(&ext), Some(MessageType::Text));
    assert!(matches!(classify(&text("")), Classified::Ignored));
}

#[test]
fn wrappers_are_unwrapped() {
    let wrapped = wa::Message {
        ephemeral_message: MessageField::some(wa::message::FutureProofMessage {
            message: MessageField::some(text("secret")),
        }),
        ..Default::default()
    };
    assert_eq!(kind_of(&wrapped), Some(MessageType::Text));
}

#[test]
fn media_kinds_carry_mime_caption_and_file_name() {
    let image = wa::Message {
        image_message: MessageField::some(wa::message::ImageMessage {
            caption: Some("cap".to_string()),
            mimetype: Some("image/png".to_string()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let Classified::Message {
        kind,
        text,
        media: Some(media),
    } = classify(&image)
    else {
        panic!("image");
    };
    assert_eq!(kind, MessageType::Image);
    assert_eq!(text.as_deref(), Some("cap"));
    assert_eq!(media.mime_type, "image/png");

    let doc = wa::Message {
        document_message: MessageField::some(wa::message::DocumentMessage {
            file_name: Some("a.pdf".to_string()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let Classified::Message {
        kind,
        media: Some(media),
        ..
    } = classify(&doc)
    else {
        panic!("document");
    };
    assert_eq!(kind, MessageType::Document);
    assert_eq!(media.mime_type, "application/octet-stream");
    assert_eq!(media.file_name.as_deref(), Some("a.pdf"));

    let cases = [
        (
            wa::Message {
                video_message: MessageField::some(Default::default()),
                ..Default::default()
            },
            MessageType::Video,
            "video/mp4",
        ),
        (
            wa::Message {
                ptv_message: MessageField::some(Default::default()),
                ..Default::default()
            },
            MessageType::Video,
            "video/mp4",
        ),
        (
            wa::Message {
                audio_message: MessageField::some(Default::default()),
                ..Default::default()
            },
            MessageType::Audio,
            "audio/ogg",
        ),
        (
            wa::Message {
                sticker_message: MessageField::some(Default::default()),
                ..Default::default()
            },
            MessageType::Sticker,
            "image/webp",
        ),
    ];
    for (message, expected, mime) in cases {
        let Classified::Message {
            kind,
            media: Some(media),
            ..
        } = classify(&message)
        else {
            panic!("{expected:?}");
        };
        assert_eq!(kind, expected);
        assert_eq!(media.mime_type, mime);
    }
}

#[test]
fn location_and_contact_texts_are_their_names() {
    let loc = wa::Message {
        location_message: MessageField::some(wa::message::LocationMessage {
            degrees_latitude: Some(1.0),
            degrees_longitude: Some(2.0),
            name: Some("Cafe".to_string()),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(kind_of(&loc), Some(MessageType::Location));
    assert_eq!(text_of(&loc).as_deref(), Some("Cafe"));

    let contact = wa::Message {
        contact_message: MessageField::some(wa::message::ContactMessage {
            display_name: Some("Bob".to_string()),
            vcard: Some("BEGIN:VCARD\nEND:VCARD".to_string()),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(kind_of(&contact), Some(MessageType::Contact));
    assert_eq!(text_of(&contact).as_deref(), Some("Bob"));

    let several = wa::Message {
        contacts_array_message: MessageField::some(wa::message::ContactsArrayMessage {
            contacts: vec![wa::message::ContactMessage {
                display_name: Some("Ann".to_string()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(kind_of(&several), Some(MessageType::Contact));
    assert_eq!(text_of(&several).as_deref(), Some("Ann"));
}

#[test]
fn revoke_names_the_revoked_message() {
    let revoke = wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            r#type: Some(wa::message::protocol_message::Type::REVOKE),
            key: MessageField::some(wa::MessageKey {
                id: Some("3EB0REVOKED".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(matches!(
        classify(&revoke),
        Classified::Revoke { message_id } if message_id == "3EB0REVOKED"
    ));
}

fn key(id: &str) -> MessageField<wa::MessageKey> {
    MessageField::some(wa::MessageKey {
        id: Some(id.to_string()),
        ..Default::default()
    })
}

#[test]
fn a_reaction_names_its_message_and_emoji() {
    let reaction = |emoji: Option<&str>| wa::Message {
        reaction_message: MessageField::some(wa::message::ReactionMessage {
            key: key("3EB0TARGET"),
            text: emoji.map(str::to_string),
            ..Default::default()
        }),
        ..Default::default()
    };
    for (emoji, shown) in [(Some("👍"), "👍"), (Some(""), ""), (None, "")] {
        assert!(
            matches!(
                classify(&reaction(emoji)),
                Classified::Reaction { message_id, emoji } if message_id == "3EB0TARGET" && emoji == shown
            ),
            "{emoji:?}"
        );
    }
}

#[test]
fn an_edit_names_its_message_and_the_new_text_or_caption() {
    let edit = |edited: wa::Message| wa::Message {
        edited_message: MessageField::some(wa::message::FutureProofMessage {
            message: MessageField::some(wa::Message {
                protocol_message: MessageField::some(wa::message::ProtocolMessage {
                    r#type: Some(wa::message::protocol_message::Type::MESSAGE_EDIT),
                    key: key("3EB0MINE"),
                    edited_message: MessageField::some(edited),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }),
        ..Default::default()
    };
    let caption = wa::Message {
        image_message: MessageField::some(wa::message::ImageMessage {
            caption: Some("new caption".to_string()),
            ..Default::default()
        }),
        ..Default::default()
    };
    for (edited, shown) in [(text("changed"), "changed"), (caption, "new caption")] {
        assert!(
            matches!(
                classify(&edit(edited)),
                Classified::Edit { message_id, text } if message_id == "3EB0MINE" && text == shown
            ),
            "{shown}"
        );
    }
    assert!(matches!(
        classify(&edit(wa::Message::default())),
        Classified::Ignored
    ));
}

#[test]
fn reactions_and_edits_without_a_key_and_other_protocol_messages_are_ignored() {
    let reaction = wa::Message {
        reaction_message: MessageField::some(wa::message::ReactionMessage {
            text: Some("+1".to_string()),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(matches!(classify(&reaction), Classified::Ignored));
    let edit = wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            r#type: Some(wa::message::protocol_message::Type::MESSAGE_EDIT),
            edited_message: MessageField::some(text("changed")),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(matches!(classify(&edit), Classified::Ignored));
    assert!(matches!(
        classify(&wa::Message::default()),
        Classified::Ignored
    ));
}

#[test]
fn receipt_types_map_to_statuses() {
    assert_eq!(
        receipt_status(&ReceiptType::Delivered),
        Some(MessageStatus::Delivered)
    );
    assert_eq!(
        receipt_status(&ReceiptType::Read),
        Some(MessageStatus::Read)
    );
    assert_eq!(
        receipt_status(&ReceiptType::Played),
        Some(MessageStatus::Played)
    );
    for other in [
        ReceiptType::Sent,
        ReceiptType::Sender,
        ReceiptType::Retry,
        ReceiptType::ReadSelf,
        ReceiptType::PlayedSelf,
        ReceiptType::ServerError,
        ReceiptType::Other("x".to_string()),
    ] {
        assert_eq!(receipt_status(&other), None, "{other:?}");
    }
}

#[test]
fn phone_numbers_come_from_pn_jids_or_the_alternate() {
    let pn = Jid::pn("15551234567");
    let lid = Jid::lid("100000012345678");
    assert_eq!(known_phone(&pn, None).as_deref(), Some("15551234567"));
    assert_eq!(known_phone(&lid, Some(&pn)).as_deref(), Some("15551234567"));
    assert_eq!(known_phone(&lid, None), None);
    assert_eq!(known_phone(&lid, Some(&lid)), None);
    let group: Jid = "120363025246125486@g.us".parse().expect("group jid");
    assert_eq!(known_phone(&group, None), None);
}

#[test]
fn status_updates_and_channels_are_not_conversations() {
    assert!(is_conversation(&Jid::pn("15551234567")));
    assert!(!is_conversation(&Jid::status_broadcast()));
    let channel: Jid = "120363000000000000@newsletter".parse().expect("jid");
    assert!(!is_conversation(&channel));
}

#[test]
fn limited_writer_refuses_past_the_limit_and_stays_refused() {
    let (mut w, exceeded) = LimitedWriter::new(8, 1 << 40);
    assert!(w.write_all(b"12345678").is_ok());
    assert!(w.write_all(b"9").is_err());
    assert!(exceeded.load(Ordering::Relaxed));
    // A retry rewinds and truncates; it must still be refused.
    w.truncate(0).expect("truncate");
    w.seek(SeekFrom::Start(0)).expect("seek");
    assert!(w.write_all(b"1").is_err());
}

#[test]
fn limited_writer_keeps_what_fits() {
    let (mut w, exceeded) = LimitedWriter::new(8, 4);
    w.write_all(b"abcd").expect("write");
    w.truncate(2).expect("truncate");
    w.seek(SeekFrom::Start(2)).expect("seek");
    w.write_all(b"xy").expect("write");
    assert_eq!(w.inner.into_inner(), b"abxy");
    assert!(!exceeded.load(Ordering::Relaxed));
}

fn message(id: &str) -> InboundMessage {
    InboundMessage {
        message_id: id.to_string(),
        chat: "15551234567@s.whatsapp.net".to_string(),
        from: "15551234567@s.whatsapp.net".to_string(),
        from_phone: Some("15551234567".to_string()),
        kind: MessageType::Text,
        text: Some("hi".to_string()),
        media: None,
        timestamp: wa_core::time::now(),
        reply_to: None,
        mentions: Vec::new(),
        content: None,
    }
}

#[tokio::test]
async fn delivery_waits_for_the_worker_to_store_everything() {
    let (tx, mut rx) = mpsc::unbounded_channel::<InboundDelivery>();
    let device_id = Uuid::new_v4();
    let worker = tokio::spawn(async move {
        let mut ids = Vec::new();
        while let Some(d) = rx.recv().await {
            assert_eq!(d.device_id, device_id);
            ids.push(d.message.message_id.clone());
            let _ = d.stored.send(Ok(()));
        }
        ids
    });
    let result = deliver_and_wait(
        device_id,
        &tx,
        vec![message("A"), message("B")],
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(result, Ok(()));
    drop(tx);
    assert_eq!(worker.await.expect("worker"), vec!["A", "B"]);
}

#[tokio::test]
async fn one_refusal_fails_the_batch() {
    let (tx, mut rx) = mpsc::unbounded_channel::<InboundDelivery>();
    tokio::spawn(async move {
        while let Some(d) = rx.recv().await {
            let answer = if d.message.message_id == "B" {
                Err("disk full".to_string())
            } else {
                Ok(())
            };
            let _ = d.stored.send(answer);
        }
    });
    let result = deliver_and_wait(
        Uuid::new_v4(),
        &tx,
        vec![message("A"), message("B")],
        Duration::from_secs(5),
    )
    .await;
    let why = result.expect_err("refused");
    assert!(why.contains("disk full"), "{why}");
}

/// On the paused clock: the wait ends at its timeout, not later.
#[tokio::test(start_paused = true)]
async fn an_unanswered_delivery_times_out() {
    let (tx, mut rx) = mpsc::unbounded_channel::<InboundDelivery>();
    // Keeps the deliveries (and their answer channels) without answering.
    let keeper = tokio::spawn(async move {
        let mut kept = Vec::new();
        while let Some(d) = rx.recv().await {
            kept.push(d);
        }
        kept.len()
    });
    let started = tokio::time::Instant::now();
    let result = deliver_and_wait(
        Uuid::new_v4(),
        &tx,
        vec![message("A")],
        Duration::from_millis(100),
    )
    .await;
    assert!(result.expect_err("timeout").contains("within"));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(100) && waited < Duration::from_millis(200),
        "{waited:?}"
    );
    drop(tx);
    assert_eq!(keeper.await.expect("keeper"), 1);
}

#[tokio::test]
async fn dropped_answers_and_a_gone_worker_fail() {
    let (tx, mut rx) = mpsc::unbounded_channel::<InboundDelivery>();
    tokio::spawn(async move {
        while let Some(d) = rx.recv().await {
            drop(d.stored);
        }
    });
    let result = deliver_and_wait(
        Uuid::new_v4(),
        &tx,
        vec![message("A")],
        Duration::from_secs(5),
    )
    .await;
    assert!(result.expect_err("dropped").contains("dropped"));

    let (tx, rx) = mpsc::unbounded_channel::<InboundDelivery>();
    drop(rx);
    let result = deliver_and_wait(
        Uuid::new_v4(),
        &tx,
        vec![message("A")],
        Duration::from_secs(5),
    )
    .await;
    assert!(result.expect_err("closed").contains("closed"));
}

#[test]
fn a_poll_with_its_secret_is_a_poll_and_a_vote_is_a_vote() {
    let poll = wa::Message {
        poll_creation_message_v3: MessageField::some(wa::message::PollCreationMessage {
            name: Some("Where?".to_string()),
            options: ["Pizza", "Sushi"]
                .iter()
                .map(|o| wa::message::poll_creation_message::Option {
                    option_name: Some(o.to_string()),
                    option_hash: None,
                })
                .collect(),
            selectable_options_count: Some(1),
            ..Default::default()
        }),
        message_context_info: MessageField::some(wa::MessageContextInfo {
            message_secret: Some(vec![1; 32]),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(matches!(
        classify(&poll),
        Classified::Poll(Content::Poll { question, .. }) if question == "Where?"
    ));
    let vote = wa::Message {
        poll_update_message: MessageField::some(wa::message::PollUpdateMessage::default()),
        ..Default::default()
    };
    assert!(matches!(classify(&vote), Classified::Vote));
}
