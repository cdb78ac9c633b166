//! Actions on messages over a live session: an edit of a sent text or caption
//! (`Client::edit_message`), a revoke for everyone (`Client::revoke_message`, as the
//! sender) and read receipts (`Client::mark_as_read`). Each resolves once the library has
//! written the stanza; its failures are classified like a send's.

use wa_core::provider::{ProviderFailure, ReadMessage};
use whatsapp_rust::prelude::wa;
use whatsapp_rust::wacore_binary::JidExt;
use whatsapp_rust::{Client, Jid, RevokeType};

use super::classify::{classify_error, classify_send_error};
use super::queries::parse_jid;

/// Replaces the text of `message_id` in `chat` with `text`.
pub(super) async fn edit(
    client: &Client,
    chat: &str,
    message_id: &str,
    text: &str,
) -> Result<(), ProviderFailure> {
    let to = parse_jid(chat)?;
    let is_group = to.is_group();
    client
        .edit_message(to, message_id, edited_content(text))
        .await
        .map(|_| ())
        .map_err(|e| classify_send_error(&e, is_group))
}

/// Deletes `message_id`, sent by this device in `chat`, for everyone.
pub(super) async fn revoke(
    client: &Client,
    chat: &str,
    message_id: &str,
) -> Result<(), ProviderFailure> {
    let to = parse_jid(chat)?;
    let is_group = to.is_group();
    client
        .revoke_message(to, message_id, RevokeType::Sender)
        .await
        .map_err(|e| classify_send_error(&e, is_group))
}

/// Read receipts for `messages`, received in `chat`: one call per sender in a group.
pub(super) async fn mark_read(
    client: &Client,
    chat: &str,
    messages: &[ReadMessage],
) -> Result<(), ProviderFailure> {
    let chat = parse_jid(chat)?;
    for (sender, ids) in receipts(&chat, messages)? {
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        client
            .mark_as_read(&chat, sender.as_ref(), &ids)
            .await
            .map_err(|e| classify_error(e.as_ref(), false))?;
    }
    Ok(())
}

/// The new content of an edited message: its text as a plain conversation message, which
/// WhatsApp shows as the new text of a text message and the new caption of a media one.
pub(crate) fn edited_content(text: &str) -> wa::Message {
    wa::Message {
        conversation: Some(text.to_owned()),
        ..Default::default()
    }
}

/// One read receipt: the sender it names (in a group) and the message ids.
pub(crate) type Receipt = (Option<Jid>, Vec<String>);

/// The receipts to send for `messages` in `chat`: in a group one per sender (the
/// participant each message came from), in order of first appearance; in a direct chat one
/// for all, without a sender.
pub(crate) fn receipts(
    chat: &Jid,
    messages: &[ReadMessage],
) -> Result<Vec<Receipt>, ProviderFailure> {
    if !chat.is_group() {
        let ids = messages.iter().map(|m| m.message_id.clone()).collect();
        return Ok(vec![(None, ids)]);
    }
    let mut out: Vec<Receipt> = Vec::new();
    for m in messages {
        let sender = parse_jid(&m.sender)?;
        match out.iter_mut().find(|(s, _)| s.as_ref() == Some(&sender)) {
            Some((_, ids)) => ids.push(m.message_id.clone()),
            None => out.push((Some(sender), vec![m.message_id.clone()])),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(id: &str, sender: &str) -> ReadMessage {
        ReadMessage {
            message_id: id.into(),
            sender: sender.into(),
        }
    }

    #[test]
    fn an_edit_is_the_new_text_as_a_conversation() {
        let m = edited_content("fixed");
        assert_eq!(m.conversation.as_deref(), Some("fixed"));
        assert!(m.extended_text_message.is_unset());
        assert!(m.protocol_message.is_unset(), "the library wraps it");
    }

    #[test]
    fn a_direct_chat_sends_one_receipt_without_a_sender() {
        let chat = parse_jid("15550001111@s.whatsapp.net").unwrap();
        let r = receipts(
            &chat,
            &[
                read("B", "15550001111@s.whatsapp.net"),
                read("A", "15550001111@s.whatsapp.net"),
            ],
        )
        .unwrap();
        assert_eq!(r, [(None, vec!["B".to_owned(), "A".to_owned()])]);
    }

    #[test]
    fn a_group_sends_one_receipt_per_sender_in_order() {
        let chat = parse_jid("120363000000000001@g.us").unwrap();
        let (x, y) = ("15550001111@s.whatsapp.net", "100000000000001@lid");
        let r = receipts(&chat, &[read("C", x), read("B", y), read("A", x)]).unwrap();
        let jid = |s: &str| Some(parse_jid(s).unwrap());
        assert_eq!(
            r,
            [
                (jid(x), vec!["C".to_owned(), "A".to_owned()]),
                (jid(y), vec!["B".to_owned()]),
            ]
        );
    }

    #[test]
    fn a_group_receipt_with_a_bad_sender_is_refused() {
        let chat = parse_jid("120363000000000001@g.us").unwrap();
        let e = receipts(&chat, &[read("A", "not a jid")]).unwrap_err();
        assert_eq!(e.code, wa_errors::ErrorCode::ValidationError);
    }
}
