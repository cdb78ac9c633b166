//! The conversation parts of a received message, from whatsapp-rust's shapes to the
//! port's: the quote and the mentions (`ContextInfo`, on every message type), a poll
//! (`PollCreationMessage` v1, v2 or v3, with its secret from `messageContextInfo`) and a
//! vote on a poll (`PollUpdateMessage`, still sealed: the worker has the poll's secret and
//! opens it through [`open_vote`]). Every function here but [`open_vote`] is pure.

use wa_core::messages::{Content, MessageRef};
use wa_core::provider::{Ballot, ProviderFailure, SealedVote, SessionEvent};
use wa_errors::ErrorCode;
use whatsapp_rust::prelude::{MessageExt, wa};
use whatsapp_rust::{Client, Jid};

use whatsapp_rust::types::events::InboundMessage as LibInbound;

use super::compose::user_jid;
use super::inbound::{self, Classified};
use super::mapping;
use super::queries::parse_jid;

fn non_empty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty()).map(str::to_string)
}

/// What a peer's message of a committed batch does to earlier messages, as the event to
/// report: a revoke, a reaction, an edit or a vote (`own_pn`, `own_lid`: this account's
/// identities, for a vote on its own poll). `None` for anything else.
pub(crate) fn action(
    item: &LibInbound,
    own_pn: Option<&Jid>,
    own_lid: Option<&Jid>,
) -> Option<SessionEvent> {
    let chat = item.info.source.chat.to_non_ad().to_string();
    let sender = &item.info.source.sender;
    let from = sender.to_non_ad().to_string();
    let at = || mapping::from_chrono(item.info.timestamp).unwrap_or_else(wa_core::time::now);
    match inbound::classify(&item.message) {
        Classified::Revoke { message_id } => Some(SessionEvent::Revoked {
            message_id,
            chat,
            from,
        }),
        Classified::Reaction { message_id, emoji } => Some(SessionEvent::Reaction {
            message_id,
            chat,
            from,
            emoji,
        }),
        Classified::Edit { message_id, text } => Some(SessionEvent::Edited {
            message_id,
            chat,
            from,
            text,
            edited_at: at(),
        }),
        Classified::Vote => {
            let base = item.message.get_base_message();
            let (poll_message_id, vote) = sealed_vote(base, sender, own_pn, own_lid)?;
            Some(SessionEvent::PollVote {
                poll_message_id,
                chat,
                voter: from,
                ballot: Ballot::Sealed(vote),
                voted_at: at(),
            })
        }
        _ => None,
    }
}

/// The context of a message's content (its base message), whatever its type.
pub(crate) fn context_info(base: &wa::Message) -> Option<&wa::ContextInfo> {
    let slots = [
        base.extended_text_message
            .as_option()
            .and_then(|m| m.context_info.as_option()),
        base.image_message
            .as_option()
            .and_then(|m| m.context_info.as_option()),
        base.video_message
            .as_option()
            .and_then(|m| m.context_info.as_option()),
        base.ptv_message
            .as_option()
            .and_then(|m| m.context_info.as_option()),
        base.audio_message
            .as_option()
            .and_then(|m| m.context_info.as_option()),
        base.document_message
            .as_option()
            .and_then(|m| m.context_info.as_option()),
        base.sticker_message
            .as_option()
            .and_then(|m| m.context_info.as_option()),
        base.location_message
            .as_option()
            .and_then(|m| m.context_info.as_option()),
        base.live_location_message
            .as_option()
            .and_then(|m| m.context_info.as_option()),
        base.contact_message
            .as_option()
            .and_then(|m| m.context_info.as_option()),
        base.contacts_array_message
            .as_option()
            .and_then(|m| m.context_info.as_option()),
        poll_creation(base).and_then(|m| m.context_info.as_option()),
    ];
    slots.into_iter().flatten().next()
}

/// The message `ctx` quotes in `chat` (its id, its sender without a device part, its
/// text or caption), and the JIDs it mentions.
pub(crate) fn quote_and_mentions(
    ctx: Option<&wa::ContextInfo>,
    chat: &str,
) -> (Option<MessageRef>, Vec<String>) {
    let Some(ctx) = ctx else {
        return (None, Vec::new());
    };
    let reply_to = non_empty(ctx.stanza_id.as_deref()).map(|message_id| {
        let quoted = ctx.quoted_message.as_option();
        MessageRef {
            message_id,
            from: non_empty(ctx.participant.as_deref()).map(|p| user_jid(&p)),
            from_me: false,
            chat: non_empty(ctx.remote_jid.as_deref()).unwrap_or_else(|| chat.to_owned()),
            text: quoted
                .and_then(|m| m.text_content().or_else(|| m.get_caption()))
                .map(str::to_owned),
        }
    });
    let mut mentions: Vec<String> = Vec::new();
    for jid in &ctx.mentioned_jid {
        let jid = user_jid(jid.trim());
        if !jid.is_empty() && !mentions.contains(&jid) {
            mentions.push(jid);
        }
    }
    (reply_to, mentions)
}

/// The poll creation message of `base`, whichever version carries it.
fn poll_creation(base: &wa::Message) -> Option<&wa::message::PollCreationMessage> {
    base.poll_creation_message
        .as_option()
        .or_else(|| base.poll_creation_message_v2.as_option())
        .or_else(|| base.poll_creation_message_v3.as_option())
}

/// A received poll: its question, its options by name, how many a voter may choose
/// (1 when unset), and its secret (hex) from the message's context, without which no
/// vote on it could be read. `None` when `message` is no poll, or one without a
/// question, two options or a secret.
pub(crate) fn poll(message: &wa::Message) -> Option<Content> {
    let base = message.get_base_message();
    let poll = poll_creation(base)?;
    let question = non_empty(poll.name.as_deref())?;
    let options: Vec<String> = poll
        .options
        .iter()
        .filter_map(|o| o.option_name.clone())
        .collect();
    if options.len() < 2 {
        return None;
    }
    let secret = [base, message]
        .into_iter()
        .find_map(|m| m.message_context_info.as_option()?.message_secret.clone())
        .filter(|s| !s.is_empty())?;
    let count = poll.selectable_options_count.unwrap_or(0);
    let selectable_count = if count == 0 {
        // 0 means "any number" on WhatsApp.
        options.len() as u32
    } else {
        count.min(options.len() as u32)
    };
    Some(Content::Poll {
        question,
        options,
        selectable_count,
        secret: wa_core::auth::hex(&secret),
    })
}

/// A vote in a received message: the poll's id and the sealed vote, its creator named
/// from the vote's key as the voter's client set it (`from_me`: the voter created the
/// poll; `participant`: the creator in a group; neither: the poll is this account's,
/// named by the identity the voter used, its LID or its phone number). `own_pn` and
/// `own_lid` are this account's.
pub(crate) fn sealed_vote(
    base: &wa::Message,
    voter: &Jid,
    own_pn: Option<&Jid>,
    own_lid: Option<&Jid>,
) -> Option<(String, SealedVote)> {
    let update = base.poll_update_message.as_option()?;
    let key = update.poll_creation_message_key.as_option()?;
    let poll_message_id = non_empty(key.id.as_deref())?;
    let vote = update.vote.as_option()?;
    let poll_creator = if key.from_me == Some(true) {
        voter.to_non_ad().to_string()
    } else if let Some(p) = non_empty(key.participant.as_deref()) {
        user_jid(&p)
    } else {
        let own = if voter.is_lid() {
            own_lid.or(own_pn)
        } else {
            own_pn.or(own_lid)
        };
        own?.to_non_ad().to_string()
    };
    Some((
        poll_message_id,
        SealedVote {
            poll_creator,
            enc_payload: vote.enc_payload.clone()?,
            enc_iv: vote.enc_iv.clone()?,
        },
    ))
}

/// Opens `vote` of `voter` on the poll `poll_message_id` with the poll's `secret`
/// (`polls().decrypt_vote`, which also tries the other identity, LID or phone number, of
/// the creator and the voter): the hashes of the options chosen.
pub(crate) async fn open_vote(
    client: &Client,
    poll_message_id: &str,
    voter: &str,
    vote: &SealedVote,
    secret: &[u8],
) -> Result<Vec<Vec<u8>>, ProviderFailure> {
    let creator = parse_jid(&vote.poll_creator)?;
    let voter = parse_jid(voter)?;
    let ciphertext = whatsapp_rust::features::PollVoteCiphertext {
        enc_payload: &vote.enc_payload,
        enc_iv: &vote.enc_iv,
    };
    client
        .polls()
        .decrypt_vote(ciphertext, secret, poll_message_id, &creator, &voter)
        .await
        .map_err(|e| {
            ProviderFailure::new(
                ErrorCode::ProviderError,
                format!("the vote could not be opened: {e}"),
            )
        })
}

#[cfg(test)]
mod tests;
