//! The conversation parts of an outbound message on the wire: the quote and the mentions
//! (`ContextInfo`, on every message type), reactions (`ReactionMessage`) and polls
//! (`PollCreationMessage` with its secret). Every builder here is pure.

use wa_core::messages::{Content, MessageRef};
use whatsapp_rust::prelude::{MessageField, wa};

/// A JID without its device part: `15551230001:7@s.whatsapp.net` → `15551230001@s.whatsapp.net`.
pub(crate) fn user_jid(jid: &str) -> String {
    match jid.split_once('@') {
        Some((user, server)) => {
            let user = user.split_once(':').map_or(user, |(u, _)| u);
            format!("{user}@{server}")
        }
        None => jid.to_owned(),
    }
}

/// The key WhatsApp knows `target` by, in its chat: the sender is named in groups only
/// (as WhatsApp Web does).
pub(crate) fn message_key(target: &MessageRef) -> wa::MessageKey {
    let in_group = wa_core::jid::is_group(&target.chat);
    wa::MessageKey {
        remote_jid: Some(target.chat.clone()),
        from_me: Some(target.from_me),
        id: Some(target.message_id.clone()),
        participant: target.from.as_deref().filter(|_| in_group).map(user_jid),
    }
}

/// The context of a message sent to `to` that quotes `reply_to` and mentions `mentions`;
/// `None` when it does neither. The quoted message is its text (or caption), as a
/// conversation; the quoted chat is named only when it is not `to`.
pub(crate) fn context_info(
    reply_to: Option<&MessageRef>,
    mentions: &[String],
    to: &str,
) -> Option<wa::ContextInfo> {
    if reply_to.is_none() && mentions.is_empty() {
        return None;
    }
    let mut ctx = wa::ContextInfo {
        mentioned_jid: mentions.to_vec(),
        ..Default::default()
    };
    if let Some(q) = reply_to {
        ctx.stanza_id = Some(q.message_id.clone());
        ctx.participant = q.from.as_deref().map(user_jid);
        ctx.remote_jid = (q.chat != to).then(|| q.chat.clone());
        ctx.quoted_message = MessageField::some(wa::Message {
            conversation: Some(q.text.clone().unwrap_or_default()),
            ..Default::default()
        });
    }
    Some(ctx)
}

/// Puts `ctx` on the message's content. A plain conversation becomes an extended text
/// (a conversation has no context); a message without a content that takes one (a
/// reaction) is left as it is.
pub(crate) fn attach_context(message: &mut wa::Message, ctx: wa::ContextInfo) {
    if let Some(text) = message.conversation.take() {
        message.extended_text_message = MessageField::some(wa::message::ExtendedTextMessage {
            text: Some(text),
            ..Default::default()
        });
    }
    let slot = if let Some(m) = message.extended_text_message.as_option_mut() {
        &mut m.context_info
    } else if let Some(m) = message.image_message.as_option_mut() {
        &mut m.context_info
    } else if let Some(m) = message.video_message.as_option_mut() {
        &mut m.context_info
    } else if let Some(m) = message.audio_message.as_option_mut() {
        &mut m.context_info
    } else if let Some(m) = message.document_message.as_option_mut() {
        &mut m.context_info
    } else if let Some(m) = message.sticker_message.as_option_mut() {
        &mut m.context_info
    } else if let Some(m) = message.location_message.as_option_mut() {
        &mut m.context_info
    } else if let Some(m) = message.contact_message.as_option_mut() {
        &mut m.context_info
    } else if let Some(m) = message.poll_creation_message.as_option_mut() {
        &mut m.context_info
    } else if let Some(m) = message.poll_creation_message_v3.as_option_mut() {
        &mut m.context_info
    } else {
        return;
    };
    *slot = MessageField::some(ctx);
}

/// The reaction `emoji` on `target` (`""` takes it back), stamped `sent_at_ms`.
pub(crate) fn reaction_message(target: &MessageRef, emoji: &str, sent_at_ms: i64) -> wa::Message {
    whatsapp_rust::wacore::proto_helpers::build_reaction_message(
        message_key(target),
        emoji,
        sent_at_ms,
    )
}

/// Bytes from hex; `None` when `s` is not hex.
fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A poll as WhatsApp Web creates one: a single-choice poll is a v3 creation message, a
/// multiple-choice one a v1; the options by name; the secret (hex) in the message's
/// context, where voters' clients take it from to encrypt their votes. `None` when the
/// secret is not hex.
pub(crate) fn poll_message(
    question: &str,
    options: &[String],
    selectable_count: u32,
    secret: &str,
) -> Option<wa::Message> {
    let poll = wa::message::PollCreationMessage {
        name: Some(question.to_owned()),
        options: options
            .iter()
            .map(|o| wa::message::poll_creation_message::Option {
                option_name: Some(o.clone()),
                option_hash: None,
            })
            .collect(),
        selectable_options_count: Some(selectable_count),
        poll_content_type: Some(wa::message::PollContentType::TEXT),
        ..Default::default()
    };
    let mut message = wa::Message::default();
    if selectable_count == 1 {
        message.poll_creation_message_v3 = MessageField::some(poll);
    } else {
        message.poll_creation_message = MessageField::some(poll);
    }
    message.message_context_info = MessageField::some(wa::MessageContextInfo {
        message_secret: Some(unhex(secret)?),
        ..Default::default()
    });
    Some(message)
}

/// The message for a reaction or a poll; `None` for other content (and for a poll whose
/// stored secret is not hex).
pub(crate) fn conversation_message(content: &Content, sent_at_ms: i64) -> Option<wa::Message> {
    match content {
        Content::Reaction { target, emoji } => Some(reaction_message(target, emoji, sent_at_ms)),
        Content::Poll {
            question,
            options,
            selectable_count,
            secret,
        } => poll_message(question, options, *selectable_count, secret),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(chat: &str, from: Option<&str>, from_me: bool) -> MessageRef {
        MessageRef {
            message_id: "3EB0QUOTED".into(),
            from: from.map(str::to_owned),
            from_me,
            chat: chat.into(),
            text: Some("the question".into()),
        }
    }

    #[test]
    fn device_parts_are_dropped_from_jids() {
        assert_eq!(
            user_jid("15551230001:7@s.whatsapp.net"),
            "15551230001@s.whatsapp.net"
        );
        assert_eq!(user_jid("100000000000001@lid"), "100000000000001@lid");
        assert_eq!(user_jid("15551230001"), "15551230001");
    }

    #[test]
    fn a_reply_quotes_the_message_and_its_sender() {
        let peer = "15550001111@s.whatsapp.net";
        let q = quoted(peer, Some(peer), false);
        let ctx = context_info(Some(&q), &[], peer).expect("context");
        assert_eq!(ctx.stanza_id.as_deref(), Some("3EB0QUOTED"));
        assert_eq!(ctx.participant.as_deref(), Some(peer));
        // Same chat: the quoted chat is not named.
        assert_eq!(ctx.remote_jid, None);
        let inner = ctx.quoted_message.as_option().expect("quoted message");
        assert_eq!(inner.conversation.as_deref(), Some("the question"));
        assert!(ctx.mentioned_jid.is_empty());
    }

    #[test]
    fn a_reply_to_a_message_of_another_chat_names_that_chat() {
        let group = "120363000000000001@g.us";
        let q = quoted(group, Some("15551230001:3@s.whatsapp.net"), true);
        let ctx = context_info(Some(&q), &[], "15550001111@s.whatsapp.net").expect("context");
        assert_eq!(ctx.remote_jid.as_deref(), Some(group));
        assert_eq!(
            ctx.participant.as_deref(),
            Some("15551230001@s.whatsapp.net")
        );
    }

    #[test]
    fn mentions_alone_make_a_context_and_nothing_makes_none() {
        let jids = vec![
            "15550002222@s.whatsapp.net".to_string(),
            "100000000000001@lid".to_string(),
        ];
        let ctx = context_info(None, &jids, "120363000000000001@g.us").expect("context");
        assert_eq!(ctx.mentioned_jid, jids);
        assert_eq!(ctx.stanza_id, None);
        assert!(ctx.quoted_message.as_option().is_none());
        assert!(context_info(None, &[], "15550001111@s.whatsapp.net").is_none());
    }

    #[test]
    fn a_conversation_with_context_becomes_an_extended_text() {
        let mut m = wa::Message {
            conversation: Some("hi @15550002222".into()),
            ..Default::default()
        };
        let ctx = context_info(None, &["15550002222@s.whatsapp.net".into()], "x").unwrap();
        attach_context(&mut m, ctx);
        assert_eq!(m.conversation, None);
        let ext = m.extended_text_message.as_option().expect("extended text");
        assert_eq!(ext.text.as_deref(), Some("hi @15550002222"));
        let ctx = ext.context_info.as_option().expect("context");
        assert_eq!(ctx.mentioned_jid, vec!["15550002222@s.whatsapp.net"]);
    }

    #[test]
    fn every_content_with_a_context_slot_gets_it() {
        let ctx = || wa::ContextInfo {
            stanza_id: Some("3EB0QUOTED".into()),
            ..Default::default()
        };
        let stanza =
            |c: &MessageField<wa::ContextInfo>| c.as_option().and_then(|c| c.stanza_id.clone());
        let mut image = wa::Message {
            image_message: MessageField::some(Default::default()),
            ..Default::default()
        };
        attach_context(&mut image, ctx());
        assert_eq!(
            stanza(&image.image_message.as_option().unwrap().context_info).as_deref(),
            Some("3EB0QUOTED")
        );
        let mut location = wa::Message {
            location_message: MessageField::some(Default::default()),
            ..Default::default()
        };
        attach_context(&mut location, ctx());
        assert!(stanza(&location.location_message.as_option().unwrap().context_info).is_some());
        let mut poll =
            poll_message("Lunch?", &["a".into(), "b".into()], 1, &"00".repeat(32)).expect("poll");
        attach_context(&mut poll, ctx());
        assert!(
            stanza(
                &poll
                    .poll_creation_message_v3
                    .as_option()
                    .unwrap()
                    .context_info
            )
            .is_some()
        );
        let mut reaction = reaction_message(&quoted("x@s.whatsapp.net", None, false), "👍", 1);
        attach_context(&mut reaction, ctx());
        assert!(reaction.extended_text_message.as_option().is_none());
    }

    #[test]
    fn a_reaction_keys_the_target_and_names_group_senders() {
        let peer = "15550001111@s.whatsapp.net";
        let m = reaction_message(&quoted(peer, Some(peer), false), "👍", 1_700_000_000_000);
        let r = m.reaction_message.as_option().expect("reaction");
        assert_eq!(r.text.as_deref(), Some("👍"));
        assert_eq!(r.sender_timestamp_ms, Some(1_700_000_000_000));
        let key = r.key.as_option().expect("key");
        assert_eq!(key.id.as_deref(), Some("3EB0QUOTED"));
        assert_eq!(key.remote_jid.as_deref(), Some(peer));
        assert_eq!(key.from_me, Some(false));
        assert_eq!(key.participant, None);

        let group = "120363000000000001@g.us";
        let m = reaction_message(
            &quoted(group, Some("15551230001:4@s.whatsapp.net"), true),
            "",
            1,
        );
        let r = m.reaction_message.as_option().unwrap();
        assert_eq!(r.text.as_deref(), Some(""));
        let key = r.key.as_option().unwrap();
        assert_eq!(key.from_me, Some(true));
        assert_eq!(
            key.participant.as_deref(),
            Some("15551230001@s.whatsapp.net")
        );
    }

    #[test]
    fn polls_carry_options_count_and_secret() {
        let options = vec![
            "Pizza".to_string(),
            "Sushi".to_string(),
            "Tacos".to_string(),
        ];
        let secret = "ab".repeat(32);
        let single = poll_message("Lunch?", &options, 1, &secret).expect("poll");
        assert!(single.poll_creation_message.as_option().is_none());
        let p = single.poll_creation_message_v3.as_option().expect("v3");
        assert_eq!(p.name.as_deref(), Some("Lunch?"));
        let names: Vec<_> = p.options.iter().map(|o| o.option_name.clone()).collect();
        assert_eq!(names, options.iter().cloned().map(Some).collect::<Vec<_>>());
        assert_eq!(p.selectable_options_count, Some(1));
        assert_eq!(
            p.poll_content_type,
            Some(wa::message::PollContentType::TEXT)
        );
        let info = single
            .message_context_info
            .as_option()
            .expect("context info");
        assert_eq!(info.message_secret.as_deref(), Some(&[0xAB; 32][..]));

        let multi = poll_message("Lunch?", &options, 2, &secret).expect("poll");
        assert!(multi.poll_creation_message_v3.as_option().is_none());
        let p = multi.poll_creation_message.as_option().expect("v1");
        assert_eq!(p.selectable_options_count, Some(2));

        assert!(poll_message("Lunch?", &options, 1, "not hex").is_none());
        assert!(poll_message("Lunch?", &options, 1, "abc").is_none());
    }

    #[test]
    fn only_reactions_and_polls_are_conversation_messages() {
        let reaction = Content::Reaction {
            target: quoted("15550001111@s.whatsapp.net", None, false),
            emoji: "🎉".into(),
        };
        assert!(
            conversation_message(&reaction, 5)
                .unwrap()
                .reaction_message
                .as_option()
                .is_some()
        );
        let poll = Content::Poll {
            question: "Q".into(),
            options: vec!["a".into(), "b".into()],
            selectable_count: 2,
            secret: "00".repeat(32),
        };
        assert!(
            conversation_message(&poll, 5)
                .unwrap()
                .poll_creation_message
                .as_option()
                .is_some()
        );
        assert!(conversation_message(&Content::Text { text: "t".into() }, 5).is_none());
    }
}
