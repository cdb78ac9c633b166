//! Where an inbound message is stored: the one decision both adapters take for
//! `MessageStore::inbound_message_id`.
//!
//! WhatsApp's message ids are unique per chat and sender only, so two different messages
//! may reach a device under one id. A message is therefore identified by (chat, sender,
//! id): a redelivery of a stored message is recognised as such, and a different message
//! whose id is taken is stored under an id of its own, derived from its chat and sender
//! (`<id>-<12 hex digits>`), so that a redelivery of it finds it again.

use uuid::Uuid;
use wa_core::messages::{Direction, Message};
use wa_core::store::StoreError;

use wa_core::messages::inbound_id::{SUFFIX_CHARS, derived_id};

/// `MessageStore::inbound_message_id` of an adapter: `read` answers the device's messages
/// under the two candidate ids (WhatsApp's id, then the derived one; `None` where there is
/// none), read so that every answered write is seen.
pub(crate) async fn message_id<F, Fut>(
    chat: &str,
    from: &str,
    message_id: &str,
    read: F,
) -> Result<Option<String>, StoreError>
where
    F: FnOnce([String; 2]) -> Fut,
    Fut: Future<Output = Result<[Option<Message>; 2], StoreError>>,
{
    let msg = Inbound {
        chat,
        from,
        message_id,
    };
    let [at_id, at_derived] = read(msg.candidates()).await?;
    Ok(match decide(&msg, at_id.as_ref(), at_derived.as_ref()) {
        Slot::Stored => None,
        Slot::Free(id) => Some(id),
    })
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Slot {
    /// The message is stored already (a redelivery).
    Stored,
    /// Store the message under this id.
    Free(String),
}

/// The message the ids of [`candidates`] identify.
pub(crate) struct Inbound<'a> {
    pub(crate) chat: &'a str,
    pub(crate) from: &'a str,
    pub(crate) message_id: &'a str,
}

impl Inbound<'_> {
    /// Whether `m` is this message (same chat, same sender, received).
    fn is(&self, m: &Message) -> bool {
        m.direction == Direction::Inbound
            && m.chat == self.chat
            && m.from.as_deref() == Some(self.from)
    }

    /// The id this message gets when WhatsApp's id is taken by another message.
    pub(crate) fn derived_id(&self) -> String {
        derived_id(self.chat, self.from, self.message_id)
    }

    /// The ids to read before deciding: WhatsApp's id, then the derived one.
    pub(crate) fn candidates(&self) -> [String; 2] {
        [self.message_id.to_owned(), self.derived_id()]
    }
}

/// Where the message goes, given what the device has under WhatsApp's id (`at_id`) and
/// under the derived id (`at_derived`).
pub(crate) fn decide(
    msg: &Inbound<'_>,
    at_id: Option<&Message>,
    at_derived: Option<&Message>,
) -> Slot {
    match (at_id, at_derived) {
        (None, _) => Slot::Free(msg.message_id.to_owned()),
        (Some(m), _) if msg.is(m) => Slot::Stored,
        (Some(_), None) => Slot::Free(msg.derived_id()),
        (Some(_), Some(m)) if msg.is(m) => Slot::Stored,
        // Both ids are held by other messages (a sender chose an id that is our derived
        // one): the message is kept under a fresh id rather than dropped.
        (Some(_), Some(_)) => Slot::Free(format!(
            "{}-{}",
            msg.derived_id(),
            &Uuid::new_v4().simple().to_string()[..SUFFIX_CHARS]
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wa_testkit::fixtures::{inbound_text, outbound_text};

    const ALICE: &str = "15550001111@s.whatsapp.net";
    const BOB: &str = "15550002222@s.whatsapp.net";
    const GROUP: &str = "120363000000000001@g.us";

    fn msg<'a>(chat: &'a str, from: &'a str, id: &'a str) -> Inbound<'a> {
        Inbound {
            chat,
            from,
            message_id: id,
        }
    }

    fn stored(chat: &str, from: &str, id: &str) -> Message {
        inbound_text(Uuid::now_v7(), Uuid::now_v7(), chat, from, id, "hi")
    }

    #[test]
    fn a_new_id_is_free() {
        assert_eq!(
            decide(&msg(ALICE, ALICE, "3EB0A"), None, None),
            Slot::Free("3EB0A".into())
        );
    }

    #[test]
    fn a_redelivery_is_stored_already() {
        let m = stored(ALICE, ALICE, "3EB0A");
        assert_eq!(
            decide(&msg(ALICE, ALICE, "3EB0A"), Some(&m), None),
            Slot::Stored
        );
    }

    #[test]
    fn another_sender_with_the_same_id_gets_the_derived_id() {
        let m = stored(ALICE, ALICE, "3EB0A");
        let bob = msg(BOB, BOB, "3EB0A");
        assert_eq!(decide(&bob, Some(&m), None), Slot::Free(bob.derived_id()));
    }

    #[test]
    fn another_chat_of_the_same_sender_gets_the_derived_id() {
        let m = stored(ALICE, ALICE, "3EB0A");
        let in_group = msg(GROUP, ALICE, "3EB0A");
        assert_eq!(
            decide(&in_group, Some(&m), None),
            Slot::Free(in_group.derived_id())
        );
    }

    #[test]
    fn an_outbound_message_with_the_id_is_another_message() {
        let mut ours = outbound_text(Uuid::now_v7(), Uuid::now_v7(), "hi", wa_core::time::now());
        ours.message_id = "3EB0A".into();
        let reply = msg(ALICE, ALICE, "3EB0A");
        assert_eq!(
            decide(&reply, Some(&ours), None),
            Slot::Free(reply.derived_id())
        );
    }

    #[test]
    fn a_redelivery_of_the_derived_one_is_stored_already() {
        let first = stored(ALICE, ALICE, "3EB0A");
        let bob = msg(BOB, BOB, "3EB0A");
        let second = stored(BOB, BOB, &bob.derived_id());
        assert_eq!(decide(&bob, Some(&first), Some(&second)), Slot::Stored);
    }

    #[test]
    fn both_ids_held_by_others_keeps_the_message_under_a_fresh_id() {
        let bob = msg(BOB, BOB, "3EB0A");
        let first = stored(ALICE, ALICE, "3EB0A");
        let squatter = stored(GROUP, ALICE, &bob.derived_id());
        let Slot::Free(id) = decide(&bob, Some(&first), Some(&squatter)) else {
            panic!("dropped");
        };
        assert!(
            id.starts_with(&bob.derived_id()) && id != bob.derived_id(),
            "{id}"
        );
    }
}
