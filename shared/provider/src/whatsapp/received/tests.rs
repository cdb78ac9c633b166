//! Unit tests of the received module, each built from the library's own protobuf types.

use std::sync::Arc;

use super::*;
use whatsapp_rust::prelude::MessageField;
use whatsapp_rust::wacore::types::message::{MessageInfo, MessageSource};

const PEER: &str = "15552220000@s.whatsapp.net";
const GROUP: &str = "120363000000000001@g.us";

fn jid(s: &str) -> Jid {
    s.parse().expect("jid")
}

fn ctx() -> wa::ContextInfo {
    wa::ContextInfo {
        stanza_id: Some("3EB0QUOTED".to_string()),
        participant: Some("15553330000:4@s.whatsapp.net".to_string()),
        quoted_message: MessageField::some(wa::Message {
            conversation: Some("lunch?".to_string()),
            ..Default::default()
        }),
        mentioned_jid: vec![
            "15554440000@s.whatsapp.net".to_string(),
            "100000000000001@lid".to_string(),
            "15554440000@s.whatsapp.net".to_string(),
        ],
        ..Default::default()
    }
}

fn poll_creation() -> wa::message::PollCreationMessage {
    wa::message::PollCreationMessage {
        name: Some("Where?".to_string()),
        options: ["Pizza", "Sushi", "Tacos"]
            .iter()
            .map(|o| wa::message::poll_creation_message::Option {
                option_name: Some(o.to_string()),
                option_hash: None,
            })
            .collect(),
        selectable_options_count: Some(2),
        context_info: MessageField::some(ctx()),
        ..Default::default()
    }
}

fn with_secret(mut m: wa::Message) -> wa::Message {
    m.message_context_info = MessageField::some(wa::MessageContextInfo {
        message_secret: Some(vec![0xab; 32]),
        ..Default::default()
    });
    m
}

/// One message of every type that carries a context, each with `ctx()` on it.
fn every_type() -> Vec<(&'static str, wa::Message)> {
    let c = || MessageField::some(ctx());
    vec![
        (
            "extended text",
            wa::Message {
                extended_text_message: MessageField::some(wa::message::ExtendedTextMessage {
                    text: Some("yes @15554440000".to_string()),
                    context_info: c(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        (
            "image",
            wa::Message {
                image_message: MessageField::some(wa::message::ImageMessage {
                    context_info: c(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        (
            "video",
            wa::Message {
                video_message: MessageField::some(wa::message::VideoMessage {
                    context_info: c(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        (
            "round video",
            wa::Message {
                ptv_message: MessageField::some(wa::message::VideoMessage {
                    context_info: c(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        (
            "audio",
            wa::Message {
                audio_message: MessageField::some(wa::message::AudioMessage {
                    context_info: c(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        (
            "document",
            wa::Message {
                document_message: MessageField::some(wa::message::DocumentMessage {
                    context_info: c(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        (
            "sticker",
            wa::Message {
                sticker_message: MessageField::some(wa::message::StickerMessage {
                    context_info: c(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        (
            "location",
            wa::Message {
                location_message: MessageField::some(wa::message::LocationMessage {
                    context_info: c(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        (
            "live location",
            wa::Message {
                live_location_message: MessageField::some(wa::message::LiveLocationMessage {
                    context_info: c(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        (
            "contact",
            wa::Message {
                contact_message: MessageField::some(wa::message::ContactMessage {
                    context_info: c(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        (
            "contacts",
            wa::Message {
                contacts_array_message: MessageField::some(wa::message::ContactsArrayMessage {
                    context_info: c(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        (
            "poll v1",
            wa::Message {
                poll_creation_message: MessageField::some(poll_creation()),
                ..Default::default()
            },
        ),
        (
            "poll v2",
            wa::Message {
                poll_creation_message_v2: MessageField::some(poll_creation()),
                ..Default::default()
            },
        ),
        (
            "poll v3",
            wa::Message {
                poll_creation_message_v3: MessageField::some(poll_creation()),
                ..Default::default()
            },
        ),
    ]
}

#[test]
fn every_message_type_carries_its_quote_and_mentions() {
    for (name, message) in every_type() {
        let (reply_to, mentions) = quote_and_mentions(context_info(&message), PEER);
        assert_eq!(
            reply_to,
            Some(MessageRef {
                message_id: "3EB0QUOTED".to_string(),
                from: Some("15553330000@s.whatsapp.net".to_string()),
                from_me: false,
                chat: PEER.to_string(),
                text: Some("lunch?".to_string()),
            }),
            "{name}"
        );
        assert_eq!(
            mentions,
            ["15554440000@s.whatsapp.net", "100000000000001@lid"],
            "{name}: device parts stripped, each once"
        );
    }
}

#[test]
fn a_context_without_a_quote_has_only_mentions_and_none_has_neither() {
    let mentions_only = wa::ContextInfo {
        mentioned_jid: vec!["15554440000@s.whatsapp.net".to_string()],
        ..Default::default()
    };
    assert_eq!(
        quote_and_mentions(Some(&mentions_only), PEER),
        (None, vec!["15554440000@s.whatsapp.net".to_string()])
    );
    assert_eq!(quote_and_mentions(None, PEER), (None, Vec::new()));
    let plain = wa::Message {
        conversation: Some("hi".to_string()),
        ..Default::default()
    };
    assert!(context_info(&plain).is_none());
}

#[test]
fn a_quote_in_another_chat_names_that_chat_and_a_quoted_caption_is_its_text() {
    let c = wa::ContextInfo {
        stanza_id: Some("3EB0ELSEWHERE".to_string()),
        remote_jid: Some(GROUP.to_string()),
        quoted_message: MessageField::some(wa::Message {
            image_message: MessageField::some(wa::message::ImageMessage {
                caption: Some("the menu".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (reply_to, _) = quote_and_mentions(Some(&c), PEER);
    let q = reply_to.expect("quote");
    assert_eq!(q.chat, GROUP);
    assert_eq!(q.from, None);
    assert_eq!(q.text.as_deref(), Some("the menu"));
}

#[test]
fn polls_of_every_version_carry_question_options_count_and_secret() {
    for (version, message) in every_type()
        .into_iter()
        .filter(|(n, _)| n.starts_with("poll"))
    {
        let got = poll(&with_secret(message));
        assert_eq!(
            got,
            Some(Content::Poll {
                question: "Where?".to_string(),
                options: vec!["Pizza".into(), "Sushi".into(), "Tacos".into()],
                selectable_count: 2,
                secret: "ab".repeat(32),
            }),
            "{version}"
        );
    }
}

#[test]
fn a_poll_without_a_secret_question_or_two_options_is_none() {
    let v3 = |p: wa::message::PollCreationMessage| wa::Message {
        poll_creation_message_v3: MessageField::some(p),
        ..Default::default()
    };
    assert_eq!(poll(&v3(poll_creation())), None, "no secret");
    let no_question = wa::message::PollCreationMessage {
        name: None,
        ..poll_creation()
    };
    assert_eq!(poll(&with_secret(v3(no_question))), None);
    let one_option = wa::message::PollCreationMessage {
        options: poll_creation().options[..1].to_vec(),
        ..poll_creation()
    };
    assert_eq!(poll(&with_secret(v3(one_option))), None);
}

#[test]
fn a_poll_selectable_count_of_zero_is_any_number() {
    let any = wa::message::PollCreationMessage {
        selectable_options_count: Some(0),
        ..poll_creation()
    };
    let message = with_secret(wa::Message {
        poll_creation_message: MessageField::some(any),
        ..Default::default()
    });
    assert!(matches!(
        poll(&message),
        Some(Content::Poll {
            selectable_count: 3,
            ..
        })
    ));
}

fn vote_message(from_me: bool, participant: Option<&str>) -> wa::Message {
    wa::Message {
        poll_update_message: MessageField::some(wa::message::PollUpdateMessage {
            poll_creation_message_key: MessageField::some(wa::MessageKey {
                remote_jid: Some(PEER.to_string()),
                from_me: Some(from_me),
                id: Some("3EB0POLL".to_string()),
                participant: participant.map(str::to_string),
            }),
            vote: MessageField::some(wa::message::PollEncValue {
                enc_payload: Some(vec![1, 2, 3]),
                enc_iv: Some(vec![4; 12]),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn a_vote_names_its_poll_and_the_poll_creator_from_its_key() {
    let own_pn = jid("15550001111:7@s.whatsapp.net");
    let own_lid = jid("100000000000001:7@lid");
    let peer = jid("15552220000:2@s.whatsapp.net");
    let peer_lid = jid("100000000000009:2@lid");
    let rows = [
        // The voter's own poll.
        (
            vote_message(true, None),
            &peer,
            "15552220000@s.whatsapp.net",
        ),
        // A group poll of someone else, named by its key.
        (
            vote_message(false, Some("15553330000:1@s.whatsapp.net")),
            &peer,
            "15553330000@s.whatsapp.net",
        ),
        // This account's poll, in the identity the voter used.
        (
            vote_message(false, None),
            &peer,
            "15550001111@s.whatsapp.net",
        ),
        (vote_message(false, None), &peer_lid, "100000000000001@lid"),
    ];
    for (message, voter, creator) in rows {
        let (poll_message_id, vote) =
            sealed_vote(&message, voter, Some(&own_pn), Some(&own_lid)).expect("vote");
        assert_eq!(poll_message_id, "3EB0POLL");
        assert_eq!(vote.poll_creator, creator, "{voter}");
        assert_eq!(vote.enc_payload, [1, 2, 3]);
        assert_eq!(vote.enc_iv, [4; 12]);
    }
    let text = wa::Message {
        conversation: Some("hi".to_string()),
        ..Default::default()
    };
    assert!(sealed_vote(&text, &peer, Some(&own_pn), None).is_none());
    assert!(
        sealed_vote(&vote_message(false, None), &peer, None, None).is_none(),
        "a vote on this account's poll before it knows itself"
    );
}

#[test]
fn a_vote_in_a_committed_batch_is_reported_sealed() {
    let mut info = MessageInfo {
        source: MessageSource {
            chat: jid(PEER),
            sender: jid("15552220000:2@s.whatsapp.net"),
            ..Default::default()
        },
        id: "3EB0VOTE".to_string(),
        ..Default::default()
    };
    info.source.is_from_me = false;
    let item = LibInbound::builder()
        .message(Arc::new(vote_message(false, None)))
        .info(Arc::new(info))
        .build();
    let own = jid("15550001111:7@s.whatsapp.net");
    let Some(SessionEvent::PollVote {
        poll_message_id,
        chat,
        voter,
        ballot: Ballot::Sealed(vote),
        ..
    }) = action(&item, Some(&own), None)
    else {
        panic!("a sealed vote");
    };
    assert_eq!(poll_message_id, "3EB0POLL");
    assert_eq!(chat, PEER);
    assert_eq!(voter, PEER);
    assert_eq!(vote.poll_creator, "15550001111@s.whatsapp.net");
}

/// A vote sealed as a WhatsApp client seals it opens with the poll's secret into the
/// hashes of the options chosen, which map back to their names.
#[test]
fn a_sealed_vote_opens_into_the_hashes_of_the_option_names() {
    use whatsapp_rust::wacore::poll;
    let secret = [7u8; 32];
    let options: Vec<String> = vec!["Pizza".into(), "Sushi".into(), "Tacos".into()];
    let chosen = vec![
        poll::compute_option_hash("Tacos").to_vec(),
        poll::compute_option_hash("Pizza").to_vec(),
    ];
    let (creator, voter) = ("15550001111@s.whatsapp.net", PEER);
    let (payload, iv) =
        poll::encrypt_poll_vote_with_secret(&chosen, &secret, "3EB0POLL", creator, voter)
            .expect("seal");
    let opened = poll::decrypt_poll_vote_with_fallback(
        poll::PollVoteCiphertext {
            enc_payload: &payload,
            enc_iv: &iv,
        },
        &secret,
        "3EB0POLL",
        poll::PollVoteAddressing {
            poll_creator_jid: creator,
            voter_jid: voter,
        },
        None,
    )
    .expect("open");
    assert_eq!(
        wa_core::messages::polls::options_of(&options, &opened),
        ["Pizza", "Tacos"]
    );
}
