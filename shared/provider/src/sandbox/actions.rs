//! What the simulated WhatsApp records of the actions a device takes on its messages: an
//! edit, a revoke for everyone, read receipts. Each needs a live session and appears in
//! the device's sent log (`GET /sandbox/devices/{id}/sent`) with its fields. And the
//! events of a peer's reaction, edit, vote or call, as WhatsApp reports them.

use uuid::Uuid;
use wa_core::provider::{
    Ballot, CallStatus, ProviderFailure, ReadMessage, SentRecord, SessionEvent,
};

use super::Sandbox;

/// The sent-log record of an edit of `message_id` in `chat`.
pub(super) fn edit_record(chat: &str, message_id: &str, text: &str) -> SentRecord {
    SentRecord {
        target_message_id: Some(message_id.to_owned()),
        text: Some(text.to_owned()),
        ..SentRecord::action("edit", chat)
    }
}

/// The sent-log record of a revoke of `message_id` in `chat`.
pub(super) fn revoke_record(chat: &str, message_id: &str) -> SentRecord {
    SentRecord {
        target_message_id: Some(message_id.to_owned()),
        ..SentRecord::action("revoke", chat)
    }
}

/// The sent-log record of read receipts in `chat`: the first message is the one asked
/// for, all of them are listed.
pub(super) fn read_record(chat: &str, messages: &[ReadMessage]) -> SentRecord {
    SentRecord {
        target_message_id: messages.first().map(|m| m.message_id.clone()),
        message_ids: messages.iter().map(|m| m.message_id.clone()).collect(),
        ..SentRecord::action("read", chat)
    }
}

/// The event of a peer's reaction to `message_id` in `chat`.
pub(super) fn peer_reaction(chat: &str, from: &str, message_id: &str, emoji: &str) -> SessionEvent {
    SessionEvent::Reaction {
        message_id: message_id.to_owned(),
        chat: chat.to_owned(),
        from: from.to_owned(),
        emoji: emoji.to_owned(),
    }
}

/// The event of a peer's edit of its message `message_id` in `chat`, now.
pub(super) fn peer_edit(chat: &str, from: &str, message_id: &str, text: &str) -> SessionEvent {
    SessionEvent::Edited {
        message_id: message_id.to_owned(),
        chat: chat.to_owned(),
        from: from.to_owned(),
        text: text.to_owned(),
        edited_at: wa_core::time::now(),
    }
}

/// The event of `voter`'s vote on the poll `poll_message_id` in `chat`, now: the options
/// by name (a real vote is sealed; the sandbox's is not).
pub(super) fn peer_vote(
    chat: &str,
    voter: &str,
    poll_message_id: &str,
    selected_options: &[String],
) -> SessionEvent {
    SessionEvent::PollVote {
        poll_message_id: poll_message_id.to_owned(),
        chat: chat.to_owned(),
        voter: voter.to_owned(),
        ballot: Ballot::Options(selected_options.to_vec()),
        voted_at: wa_core::time::now(),
    }
}

/// The event of a call from `from` ringing the device under a new call id: an offer, or
/// rejected at once when the sandbox rejects calls.
pub(super) fn peer_call(from: &str, is_video: bool, reject_calls: bool) -> SessionEvent {
    SessionEvent::Call {
        call_id: Uuid::new_v4().simple().to_string().to_uppercase(),
        from: from.to_owned(),
        is_video,
        status: if reject_calls {
            CallStatus::Rejected
        } else {
            CallStatus::Offer
        },
    }
}

impl Sandbox {
    /// Records `record` as an action of the live session of `device_id`.
    pub(super) async fn act(
        &self,
        device_id: Uuid,
        record: SentRecord,
    ) -> Result<(), ProviderFailure> {
        self.live_creds(device_id)?;
        self.log_sent(device_id, record).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_action_records_its_target_and_fields() {
        let e = edit_record("c@s.whatsapp.net", "M1", "fixed");
        assert_eq!(
            (e.kind.as_str(), e.to.as_str(), e.message_id.as_str()),
            ("edit", "c@s.whatsapp.net", "")
        );
        assert_eq!(
            (e.target_message_id.as_deref(), e.text.as_deref()),
            (Some("M1"), Some("fixed"))
        );

        let r = revoke_record("c@s.whatsapp.net", "M1");
        assert_eq!(
            (r.kind.as_str(), r.target_message_id.as_deref(), r.text),
            ("revoke", Some("M1"), None)
        );

        let read = |id: &str| ReadMessage {
            message_id: id.into(),
            sender: "s@s.whatsapp.net".into(),
        };
        let r = read_record("g@g.us", &[read("B"), read("A")]);
        assert_eq!(
            (
                r.kind.as_str(),
                r.to.as_str(),
                r.target_message_id.as_deref()
            ),
            ("read", "g@g.us", Some("B"))
        );
        assert_eq!(r.message_ids, ["B", "A"]);
    }
}
