//! What travels between an HTTP function and the device's worker: the request
//! ([`SessionRequest`], inside a `Command::Ask` on the commands queue), the answer
//! ([`SessionAnswer`]) and the reply record the worker stores ([`Reply`]: the answer or the
//! API error, exactly as the embedded server would answer it). All of it is tagged and
//! versioned, so producers and consumers of different versions can share a queue.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use wa_errors::{ApiError, ApiResult, ErrorCode};

use crate::contacts::ContactCheck;
use crate::groups::{GroupAnswer, GroupRequest, GroupUpdate};
use crate::messages::MessageStatus;
use crate::provider::{
    ChatState, DropReason, Group, OwnPresence, Profile, ReadMessage, ScanOutcome, SentRecord,
    SessionRecord,
};

/// One thing only a device's live session (or the sandbox, which lives in the worker's
/// process) can answer. One variant per thing asked; each is decided by the caller (the
/// device's status, the input's validity) before it is asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum SessionRequest {
    /// A contact's or group's profile; `jid` is normalized.
    #[serde(rename = "profile.v1")]
    Profile { jid: String },
    /// The groups the account is in.
    #[serde(rename = "groups.v1")]
    Groups,
    /// Show typing, recording or neither in the chat with `jid` (normalized).
    #[serde(rename = "chat_presence.v1")]
    ChatPresence { jid: String, state: ChatState },
    /// Set the account's own presence.
    #[serde(rename = "presence.v1")]
    SetPresence { presence: OwnPresence },
    /// Edit the text of the message `message_id` the device sent to `chat`.
    #[serde(rename = "edit.v1")]
    EditMessage {
        chat: String,
        message_id: String,
        text: String,
    },
    /// Delete the message `message_id` the device sent to `chat` for everyone.
    #[serde(rename = "revoke.v1")]
    RevokeMessage { chat: String, message_id: String },
    /// Read receipts for messages received in `chat`.
    #[serde(rename = "read.v1")]
    MarkRead {
        chat: String,
        messages: Vec<ReadMessage>,
    },
    /// Whether each of `phone_numbers` (digits, checked) has a WhatsApp account.
    #[serde(rename = "contacts_check.v1")]
    CheckContacts { phone_numbers: Vec<String> },
    /// A group request (create, info, change, participants, invite, join, leave).
    #[serde(rename = "group.v1")]
    Group { request: GroupRequest },
    /// Sandbox: scan the device's current QR.
    #[serde(rename = "sandbox_scan.v1")]
    SandboxScan {
        wa_number: String,
        outcome: ScanOutcome,
    },
    /// Sandbox: drop the device's live session.
    #[serde(rename = "sandbox_drop.v1")]
    SandboxDrop { reason: DropReason },
    /// Sandbox: a peer's presence or typing changes.
    #[serde(rename = "sandbox_presence.v1")]
    SandboxPresence {
        jid: String,
        presence: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chat_state: Option<String>,
    },
    /// Sandbox: what the simulated WhatsApp received from the device.
    #[serde(rename = "sandbox_sent.v1")]
    SandboxSent,
    /// Sandbox: every simulated session of the device.
    #[serde(rename = "sandbox_sessions.v1")]
    SandboxSessions,
    /// Sandbox: a message from `from` arrives; `message` holds the fields of a send, as the
    /// caller gave them and already checked (`messages::SendRequest`).
    #[serde(rename = "sandbox_inbound.v1")]
    SandboxInbound { from: String, message: Value },
    /// Sandbox: the recipient of a message the device sent acknowledges it.
    #[serde(rename = "sandbox_receipt.v1")]
    SandboxReceipt {
        message_id: String,
        status: MessageStatus,
    },
    /// Sandbox: the sender of an inbound message revokes it.
    #[serde(rename = "sandbox_revoke.v1")]
    SandboxRevoke {
        message_id: String,
        chat: String,
        from: String,
    },
    /// Sandbox: `from` reacts to the message `message_id` of the chat `chat`.
    #[serde(rename = "sandbox_reaction.v1")]
    SandboxReaction {
        chat: String,
        from: String,
        message_id: String,
        emoji: String,
    },
    /// Sandbox: a change to a group made elsewhere.
    #[serde(rename = "sandbox_group_event.v1")]
    SandboxGroupEvent { update: GroupUpdate },
    /// Sandbox: `from` edits its message `message_id` of the chat `chat`.
    #[serde(rename = "sandbox_edit.v1")]
    SandboxEdit {
        chat: String,
        from: String,
        message_id: String,
        text: String,
    },
    /// Sandbox: `voter` votes `selected_options` (checked names; none withdraws the vote)
    /// on the poll `poll_message_id` of the chat `chat`.
    #[serde(rename = "sandbox_poll_vote.v1")]
    SandboxPollVote {
        chat: String,
        voter: String,
        poll_message_id: String,
        selected_options: Vec<String>,
    },
    /// Sandbox: `from` calls the device.
    #[serde(rename = "sandbox_call.v1")]
    SandboxCall { from: String, is_video: bool },
    /// A request of a newer version than this build knows: answered with an error rather
    /// than left to time out.
    #[serde(rename = "unknown", other)]
    Unknown,
}

/// What a session request answers: exactly what the embedded server renders in `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value")]
pub enum SessionAnswer {
    #[serde(rename = "profile.v1")]
    Profile(Profile),
    #[serde(rename = "groups.v1")]
    Groups(Vec<Group>),
    /// The checks of a contacts check, in the order asked.
    #[serde(rename = "contacts.v1")]
    Contacts(Vec<ContactCheck>),
    /// What a group request answered.
    #[serde(rename = "group.v1")]
    Group(GroupAnswer),
    #[serde(rename = "sent.v1")]
    Sent(Vec<SentRecord>),
    #[serde(rename = "sessions.v1")]
    Sessions(Vec<SessionRecord>),
    /// The id a stored message got (the sandbox's inbound).
    #[serde(rename = "message_id.v1")]
    MessageId(String),
    /// Done, nothing to answer.
    #[serde(rename = "done.v1")]
    Done,
}

impl SessionAnswer {
    fn kind(&self) -> &'static str {
        match self {
            SessionAnswer::Profile(_) => "a profile",
            SessionAnswer::Groups(_) => "groups",
            SessionAnswer::Contacts(_) => "contact checks",
            SessionAnswer::Group(_) => "a group answer",
            SessionAnswer::Sent(_) => "a sent list",
            SessionAnswer::Sessions(_) => "a session list",
            SessionAnswer::MessageId(_) => "a message id",
            SessionAnswer::Done => "nothing",
        }
    }

    /// 500 internal_error: the answer is not of the kind the request asks for (a worker of
    /// another version, or a bug).
    fn unexpected(self, wanted: &str) -> ApiError {
        ApiError::internal(format!(
            "the device's worker answered {} to a request for {wanted}",
            self.kind()
        ))
    }

    /// The profile of a `profile.v1` answer.
    pub fn into_profile(self) -> ApiResult<Profile> {
        match self {
            SessionAnswer::Profile(p) => Ok(p),
            a => Err(a.unexpected("a profile")),
        }
    }

    /// The groups of a `groups.v1` answer.
    pub fn into_groups(self) -> ApiResult<Vec<Group>> {
        match self {
            SessionAnswer::Groups(g) => Ok(g),
            a => Err(a.unexpected("groups")),
        }
    }

    /// The checks of a `contacts.v1` answer.
    pub fn into_contacts(self) -> ApiResult<Vec<ContactCheck>> {
        match self {
            SessionAnswer::Contacts(c) => Ok(c),
            a => Err(a.unexpected("contact checks")),
        }
    }

    /// The group answer of a `group.v1` answer.
    pub fn into_group(self) -> ApiResult<GroupAnswer> {
        match self {
            SessionAnswer::Group(g) => Ok(g),
            a => Err(a.unexpected("a group answer")),
        }
    }

    /// The records of a `sent.v1` answer.
    pub fn into_sent(self) -> ApiResult<Vec<SentRecord>> {
        match self {
            SessionAnswer::Sent(s) => Ok(s),
            a => Err(a.unexpected("a sent list")),
        }
    }

    /// The records of a `sessions.v1` answer.
    pub fn into_sessions(self) -> ApiResult<Vec<SessionRecord>> {
        match self {
            SessionAnswer::Sessions(s) => Ok(s),
            a => Err(a.unexpected("a session list")),
        }
    }

    /// The id of a `message_id.v1` answer.
    pub fn into_message_id(self) -> ApiResult<String> {
        match self {
            SessionAnswer::MessageId(id) => Ok(id),
            a => Err(a.unexpected("a message id")),
        }
    }

    /// `Ok` for a `done.v1` answer.
    pub fn into_done(self) -> ApiResult<()> {
        match self {
            SessionAnswer::Done => Ok(()),
            a => Err(a.unexpected("nothing")),
        }
    }
}

/// An API error as the worker stores it: what the caller renders (code, message, details,
/// `Retry-After`). The internal cause of a 5xx is logged by the worker, never stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyError {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub details: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

impl From<&ApiError> for ReplyError {
    fn from(e: &ApiError) -> Self {
        ReplyError {
            code: e.code(),
            message: e.message().to_owned(),
            details: e.details().clone(),
            retry_after_secs: e.retry_after_secs(),
        }
    }
}

impl From<ReplyError> for ApiError {
    fn from(r: ReplyError) -> Self {
        let mut e = ApiError::new(r.code, r.message);
        for (k, v) in r.details {
            e = e.with_detail(&k, v);
        }
        match r.retry_after_secs {
            Some(secs) => e.with_retry_after(secs),
            None => e,
        }
    }
}

/// The reply record of one ask: the answer, or the error the caller answers with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Answer(SessionAnswer),
    Error(ReplyError),
}

impl Reply {
    /// The reply of an outcome of `execute`.
    pub fn of(outcome: ApiResult<SessionAnswer>) -> Reply {
        match outcome {
            Ok(a) => Reply::Answer(a),
            Err(e) => Reply::Error(ReplyError::from(&e)),
        }
    }

    /// The outcome the caller answers with.
    pub fn into_result(self) -> ApiResult<SessionAnswer> {
        match self {
            Reply::Answer(a) => Ok(a),
            Reply::Error(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(r: &SessionRequest) -> SessionRequest {
        serde_json::from_value(serde_json::to_value(r).unwrap()).unwrap()
    }

    #[test]
    fn every_request_is_tagged_versioned_and_round_trips() {
        let rows = [
            (
                SessionRequest::Profile {
                    jid: "15550001111@s.whatsapp.net".into(),
                },
                json!({"type": "profile.v1", "jid": "15550001111@s.whatsapp.net"}),
            ),
            (SessionRequest::Groups, json!({"type": "groups.v1"})),
            (
                SessionRequest::ChatPresence {
                    jid: "15550001111@s.whatsapp.net".into(),
                    state: ChatState::Composing,
                },
                json!({"type": "chat_presence.v1", "jid": "15550001111@s.whatsapp.net", "state": "composing"}),
            ),
            (
                SessionRequest::SetPresence {
                    presence: OwnPresence::Available,
                },
                json!({"type": "presence.v1", "presence": "available"}),
            ),
            (
                SessionRequest::EditMessage {
                    chat: "15550001111@s.whatsapp.net".into(),
                    message_id: "3EB0A".into(),
                    text: "fixed".into(),
                },
                json!({"type": "edit.v1", "chat": "15550001111@s.whatsapp.net", "message_id": "3EB0A", "text": "fixed"}),
            ),
            (
                SessionRequest::RevokeMessage {
                    chat: "15550001111@s.whatsapp.net".into(),
                    message_id: "3EB0A".into(),
                },
                json!({"type": "revoke.v1", "chat": "15550001111@s.whatsapp.net", "message_id": "3EB0A"}),
            ),
            (
                SessionRequest::MarkRead {
                    chat: "120363000000000001@g.us".into(),
                    messages: vec![ReadMessage {
                        message_id: "ABC".into(),
                        sender: "15550001111@s.whatsapp.net".into(),
                    }],
                },
                json!({"type": "read.v1", "chat": "120363000000000001@g.us", "messages": [{"message_id": "ABC", "sender": "15550001111@s.whatsapp.net"}]}),
            ),
            (
                SessionRequest::SandboxReaction {
                    chat: "15550001111@s.whatsapp.net".into(),
                    from: "15550001111@s.whatsapp.net".into(),
                    message_id: "3EB0A".into(),
                    emoji: "👍".into(),
                },
                json!({"type": "sandbox_reaction.v1", "chat": "15550001111@s.whatsapp.net", "from": "15550001111@s.whatsapp.net", "message_id": "3EB0A", "emoji": "👍"}),
            ),
            (
                SessionRequest::Group {
                    request: crate::groups::GroupRequest::Join {
                        invite_code: "AbC".into(),
                    },
                },
                json!({"type": "group.v1", "request": {"op": "join", "invite_code": "AbC"}}),
            ),
            (
                SessionRequest::SandboxEdit {
                    chat: "15550001111@s.whatsapp.net".into(),
                    from: "15550001111@s.whatsapp.net".into(),
                    message_id: "ABC".into(),
                    text: "fixed".into(),
                },
                json!({"type": "sandbox_edit.v1", "chat": "15550001111@s.whatsapp.net", "from": "15550001111@s.whatsapp.net", "message_id": "ABC", "text": "fixed"}),
            ),
            (
                SessionRequest::SandboxPollVote {
                    chat: "15550001111@s.whatsapp.net".into(),
                    voter: "15550001111@s.whatsapp.net".into(),
                    poll_message_id: "3EB0POLL".into(),
                    selected_options: vec!["Pizza".into()],
                },
                json!({"type": "sandbox_poll_vote.v1", "chat": "15550001111@s.whatsapp.net", "voter": "15550001111@s.whatsapp.net", "poll_message_id": "3EB0POLL", "selected_options": ["Pizza"]}),
            ),
            (
                SessionRequest::SandboxCall {
                    from: "15550001111@s.whatsapp.net".into(),
                    is_video: true,
                },
                json!({"type": "sandbox_call.v1", "from": "15550001111@s.whatsapp.net", "is_video": true}),
            ),
            (
                SessionRequest::CheckContacts {
                    phone_numbers: vec!["15550001111".into(), "15550002222".into()],
                },
                json!({"type": "contacts_check.v1", "phone_numbers": ["15550001111", "15550002222"]}),
            ),
            (
                SessionRequest::SandboxScan {
                    wa_number: "15551230001".into(),
                    outcome: ScanOutcome::TooManyDevices,
                },
                json!({"type": "sandbox_scan.v1", "wa_number": "15551230001", "outcome": "too_many_devices"}),
            ),
            (
                SessionRequest::SandboxDrop {
                    reason: DropReason::ConnectionLost,
                },
                json!({"type": "sandbox_drop.v1", "reason": "connection_lost"}),
            ),
            (
                SessionRequest::SandboxPresence {
                    jid: "15550001111".into(),
                    presence: "available".into(),
                    chat_state: None,
                },
                json!({"type": "sandbox_presence.v1", "jid": "15550001111", "presence": "available"}),
            ),
            (
                SessionRequest::SandboxPresence {
                    jid: "15550001111".into(),
                    presence: "available".into(),
                    chat_state: Some("composing".into()),
                },
                json!({"type": "sandbox_presence.v1", "jid": "15550001111", "presence": "available", "chat_state": "composing"}),
            ),
            (
                SessionRequest::SandboxSent,
                json!({"type": "sandbox_sent.v1"}),
            ),
            (
                SessionRequest::SandboxSessions,
                json!({"type": "sandbox_sessions.v1"}),
            ),
            (
                SessionRequest::SandboxInbound {
                    from: "15550001111".into(),
                    message: json!({"text": "hi", "latitude": 1.5}),
                },
                json!({"type": "sandbox_inbound.v1", "from": "15550001111", "message": {"text": "hi", "latitude": 1.5}}),
            ),
            (
                SessionRequest::SandboxReceipt {
                    message_id: "3EB0A".into(),
                    status: MessageStatus::Read,
                },
                json!({"type": "sandbox_receipt.v1", "message_id": "3EB0A", "status": "read"}),
            ),
            (
                SessionRequest::SandboxRevoke {
                    message_id: "3EB0B".into(),
                    chat: "c".into(),
                    from: "f".into(),
                },
                json!({"type": "sandbox_revoke.v1", "message_id": "3EB0B", "chat": "c", "from": "f"}),
            ),
        ];
        for (request, wire) in rows {
            assert_eq!(serde_json::to_value(&request).unwrap(), wire);
            assert_eq!(round_trip(&request), request);
        }
    }

    #[test]
    fn a_request_of_a_newer_version_decodes_as_unknown() {
        for wire in [
            json!({"type": "profile.v2", "jid": "x"}),
            json!({"type": "contacts_check.v2", "phone_numbers": []}),
        ] {
            let r: SessionRequest = serde_json::from_value(wire).unwrap();
            assert_eq!(r, SessionRequest::Unknown);
        }
    }

    #[test]
    fn answers_round_trip_and_refuse_another_kind() {
        let profile = Profile {
            name: Some("n".into()),
            ..super::super::tests::profile("1@s.whatsapp.net")
        };
        let checked = ContactCheck {
            on_whatsapp: true,
            jid: Some("15550001111@s.whatsapp.net".into()),
            ..ContactCheck::absent("15550001111")
        };
        for a in [
            SessionAnswer::Profile(profile.clone()),
            SessionAnswer::Groups(vec![]),
            SessionAnswer::Contacts(vec![checked.clone()]),
            SessionAnswer::Group(crate::groups::GroupAnswer::Done),
            SessionAnswer::Sent(vec![]),
            SessionAnswer::Sessions(vec![]),
            SessionAnswer::MessageId("m".into()),
            SessionAnswer::Done,
        ] {
            let back: SessionAnswer =
                serde_json::from_value(serde_json::to_value(&a).unwrap()).unwrap();
            assert_eq!(back, a);
        }
        assert_eq!(
            serde_json::to_value(SessionAnswer::Done).unwrap(),
            json!({"type": "done.v1"})
        );
        assert_eq!(
            SessionAnswer::Profile(profile.clone())
                .into_profile()
                .unwrap(),
            profile
        );
        assert_eq!(SessionAnswer::Groups(vec![]).into_groups().unwrap(), vec![]);
        assert_eq!(
            SessionAnswer::Contacts(vec![checked.clone()])
                .into_contacts()
                .unwrap(),
            vec![checked.clone()]
        );
        assert_eq!(
            serde_json::to_value(SessionAnswer::Contacts(vec![checked])).unwrap(),
            json!({"type": "contacts.v1", "value": [{"phone_number": "15550001111",
                "on_whatsapp": true, "jid": "15550001111@s.whatsapp.net", "lid": null}]})
        );
        assert_eq!(
            SessionAnswer::Done.into_contacts().unwrap_err().code(),
            ErrorCode::InternalError
        );
        assert_eq!(
            SessionAnswer::Group(crate::groups::GroupAnswer::Done)
                .into_group()
                .unwrap(),
            crate::groups::GroupAnswer::Done
        );
        assert_eq!(
            SessionAnswer::Done.into_group().unwrap_err().code(),
            ErrorCode::InternalError
        );
        assert_eq!(SessionAnswer::Sent(vec![]).into_sent().unwrap(), vec![]);
        assert_eq!(
            SessionAnswer::Sessions(vec![]).into_sessions().unwrap(),
            vec![]
        );
        assert_eq!(
            SessionAnswer::MessageId("m".into())
                .into_message_id()
                .unwrap(),
            "m"
        );
        assert!(SessionAnswer::Done.into_done().is_ok());
        let wrong = SessionAnswer::Done.into_profile().unwrap_err();
        assert_eq!(wrong.code(), ErrorCode::InternalError);
        assert_eq!(
            SessionAnswer::Profile(profile)
                .into_done()
                .unwrap_err()
                .code(),
            ErrorCode::InternalError
        );
    }

    #[test]
    fn an_error_reply_keeps_what_the_caller_renders() {
        let e = ApiError::validation("jid", "`jid` is required")
            .with_detail("hint", "a phone number")
            .with_retry_after(7);
        let reply = Reply::of(Err(e.clone()));
        let wire = serde_json::to_value(&reply).unwrap();
        assert_eq!(
            wire,
            json!({"error": {"code": "validation_error", "message": "`jid` is required",
                   "details": {"field": "jid", "hint": "a phone number"}, "retry_after_secs": 7}})
        );
        let back: Reply = serde_json::from_value(wire).unwrap();
        let again = back.into_result().unwrap_err();
        assert_eq!(again.code(), e.code());
        assert_eq!(again.message(), e.message());
        assert_eq!(again.details(), e.details());
        assert_eq!(again.retry_after_secs(), Some(7));
        assert_eq!(again.to_json("r"), e.to_json("r"), "the same envelope");
    }

    #[test]
    fn an_error_without_details_stores_none_and_an_answer_stores_its_value() {
        let reply = Reply::of(Err(ApiError::new(
            ErrorCode::DeviceNotConnected,
            "no session",
        )));
        assert_eq!(
            serde_json::to_value(&reply).unwrap(),
            json!({"error": {"code": "device_not_connected", "message": "no session"}})
        );
        let e = reply.into_result().unwrap_err();
        assert!(e.details().is_empty());
        assert_eq!(e.retry_after_secs(), None);
        let reply = Reply::of(Ok(SessionAnswer::MessageId("m1".into())));
        assert_eq!(
            serde_json::to_value(&reply).unwrap(),
            json!({"answer": {"type": "message_id.v1", "value": "m1"}})
        );
        assert_eq!(
            reply.into_result().unwrap(),
            SessionAnswer::MessageId("m1".into())
        );
    }

    #[test]
    fn an_internal_error_keeps_its_public_message_only() {
        let reply = Reply::of(Err(ApiError::internal("disk on fire")));
        let text = serde_json::to_string(&reply).unwrap();
        assert!(!text.contains("disk on fire"), "{text}");
        assert_eq!(
            reply.into_result().unwrap_err().code(),
            ErrorCode::InternalError
        );
    }
}
