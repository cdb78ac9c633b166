//! The ids received messages are stored under. WhatsApp's ids are unique per chat and
//! sender only: a different message whose id the device already has is stored under an id
//! of its own, derived from its chat and sender (`<id>-<12 hex digits>`, the same at every
//! redelivery). What a read receipt names is WhatsApp's id again ([`whatsapp_id`]).

use uuid::Uuid;

use super::record::Message;

/// The longest message id the API takes (`[A-Za-z0-9._:-]{1,128}`).
pub const MAX_ID_CHARS: usize = 128;
/// Hex digits of the suffix of a derived id.
pub const SUFFIX_CHARS: usize = 12;

/// The id a message WhatsApp identifies by `message_id`, sent by `from` in `chat`, is
/// stored under when `message_id` is taken by another message.
pub fn derived_id(chat: &str, from: &str, message_id: &str) -> String {
    let key = format!("{chat}\n{from}\n{message_id}");
    let digest = Uuid::new_v5(&Uuid::NAMESPACE_OID, key.as_bytes()).simple();
    let keep = MAX_ID_CHARS - SUFFIX_CHARS - 1;
    let head: String = message_id.chars().take(keep).collect();
    format!("{head}-{}", &digest.to_string()[..SUFFIX_CHARS])
}

/// WhatsApp's id of the received message `m`: its stored id, unless that is an id derived
/// from WhatsApp's (as [`derived_id`], or with one more random suffix when that was taken
/// too). A derived id of a WhatsApp id over 115 characters keeps only its start: it is
/// answered as it is.
pub fn whatsapp_id(m: &Message) -> &str {
    let from = m.from.as_deref().unwrap_or_default();
    let id = m.message_id.as_str();
    // The length of the WhatsApp id `derived` was derived from, if it was.
    let head_of = |derived: &str| {
        let (head, _) = derived.rsplit_once('-')?;
        (derived_id(&m.chat, from, head) == derived).then_some(head.len())
    };
    let derived = match id.rsplit_once('-') {
        Some((d, _)) => head_of(d),
        None => None,
    };
    head_of(id).or(derived).map_or(id, |n| &id[..n])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::Direction;
    use crate::messages::sample::sample_message;

    fn received(chat: &str, from: &str, id: &str) -> Message {
        Message {
            direction: Direction::Inbound,
            chat: chat.into(),
            from: Some(from.into()),
            message_id: id.into(),
            ..sample_message()
        }
    }

    const ALICE: &str = "15550001111@s.whatsapp.net";
    const GROUP: &str = "120363000000000001@g.us";

    #[test]
    fn an_id_of_its_own_is_whatsapps() {
        for id in ["3EB0A", "ABC-DEF", "3EB0A-0123456789ab"] {
            assert_eq!(whatsapp_id(&received(ALICE, ALICE, id)), id);
        }
    }

    #[test]
    fn a_derived_id_gives_back_whatsapps() {
        let d = derived_id(GROUP, ALICE, "3EB0A");
        assert!(
            d.starts_with("3EB0A-") && d.len() == 5 + 1 + SUFFIX_CHARS,
            "{d}"
        );
        assert_eq!(whatsapp_id(&received(GROUP, ALICE, &d)), "3EB0A");
        let fresh = format!("{d}-a1b2c3d4e5f6");
        assert_eq!(whatsapp_id(&received(GROUP, ALICE, &fresh)), "3EB0A");
        assert_eq!(
            whatsapp_id(&received(ALICE, ALICE, &d)),
            d,
            "derived for another chat: not ours"
        );
    }

    #[test]
    fn derived_ids_are_stable_per_chat_and_sender_and_valid() {
        let a = derived_id(ALICE, ALICE, "3EB0A");
        assert_eq!(a, derived_id(ALICE, ALICE, "3EB0A"));
        assert_ne!(a, derived_id(GROUP, ALICE, "3EB0A"));
        let long = derived_id(ALICE, ALICE, &"A".repeat(200));
        assert_eq!(long.chars().count(), MAX_ID_CHARS);
        assert!(crate::messages::is_valid_message_id(&long), "{long}");
    }
}
