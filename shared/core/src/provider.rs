//! The provider port: what the worker needs from a WhatsApp connection. Two adapters
//! implement it: whatsapp-rust (real) and the sandbox (simulated).
//!
//! A provider owns the sessions it starts and reports what happens to them as
//! [`SessionEvent`]s on the channel it was built with. After `disconnect` or `destroy`
//! returns, it emits nothing more for that session.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use wa_errors::ErrorCode;

use crate::contacts::ContactCheck;
use crate::groups::{GroupAnswer, GroupChanges, GroupRequest, GroupUpdate, ParticipantAction};
use crate::messages::{Content, MessageRef, MessageStatus, MessageType};
use crate::time::OffsetDateTime;

/// A failure reported by a provider, already classified into the API's codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderFailure {
    pub code: ErrorCode,
    pub message: String,
}

impl ProviderFailure {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ProviderFailure {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ProviderFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl From<ProviderFailure> for wa_errors::ApiError {
    fn from(f: ProviderFailure) -> Self {
        wa_errors::ApiError::new(f.code, f.message)
    }
}

/// What happened to a session. The worker turns these into device status changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// A QR to scan (codes rotate: each new one replaces the last).
    Qr {
        code: String,
        expires_at: OffsetDateTime,
    },
    /// WhatsApp replaced the pair code handed out by `link` (the old one is dead): this
    /// one is to be entered instead, for the same phone number.
    PairCode {
        code: String,
        expires_at: OffsetDateTime,
    },
    /// Every QR expired unscanned; the linking session has ended.
    QrExhausted,
    /// Linked and online. `wa_number` is the account's phone number, `wa_device_jid` this
    /// companion's JID.
    Connected {
        wa_number: String,
        wa_device_jid: String,
    },
    /// The connection dropped; the provider is reconnecting by itself.
    Reconnecting { error: Option<ProviderFailure> },
    /// The session stopped and will not come back by itself (credentials kept, if any).
    Stopped { error: ProviderFailure },
    /// WhatsApp ended the session; the provider has wiped its keys.
    LoggedOut { error: ProviderFailure },
    /// A peer's presence or typing state changed.
    Presence(Presence),
    /// Receipts for messages this device sent.
    Receipt {
        message_ids: Vec<String>,
        /// `delivered`, `read` or `played`.
        status: MessageStatus,
        /// Who sent the receipt (the recipient, or a group participant).
        from: String,
        chat: String,
    },
    /// A peer revoked ("deleted for everyone") a message.
    Revoked {
        message_id: String,
        chat: String,
        from: String,
    },
    /// A peer reacted to the message `message_id` in `chat` (`emoji` `""`: the reaction
    /// was taken back).
    Reaction {
        message_id: String,
        chat: String,
        from: String,
        emoji: String,
    },
    /// A peer edited the text (or caption) of its message `message_id` in `chat`.
    Edited {
        message_id: String,
        chat: String,
        from: String,
        text: String,
        edited_at: OffsetDateTime,
    },
    /// A group the device is in changed (by this device or elsewhere).
    GroupUpdate(GroupUpdate),
    /// `voter` voted on the poll `poll_message_id` of `chat` (choosing nothing withdraws
    /// the voter's vote).
    PollVote {
        poll_message_id: String,
        chat: String,
        voter: String,
        ballot: Ballot,
        voted_at: OffsetDateTime,
    },
    /// A call rang the device (`Offer`), rang while it was offline or was given up by the
    /// caller (`Missed`), or was rejected at once (`Rejected`, with `WA_REJECT_CALLS=1`).
    Call {
        call_id: String,
        from: String,
        is_video: bool,
        status: CallStatus,
    },
}

/// What a vote chose: the options by name (the sandbox's), or sealed as WhatsApp carries
/// it, to be opened with the poll's secret ([`Provider::open_vote`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ballot {
    Options(Vec<String>),
    Sealed(SealedVote),
}

/// A vote as WhatsApp carries it: encrypted with a key derived from the poll's secret,
/// its id, its creator and the voter.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedVote {
    /// Who created the poll (a JID), as the voter's client addressed the vote.
    pub poll_creator: String,
    pub enc_payload: Vec<u8>,
    pub enc_iv: Vec<u8>,
}

impl std::fmt::Debug for SealedVote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedVote")
            .field("poll_creator", &self.poll_creator)
            .finish_non_exhaustive()
    }
}

/// How an incoming call ended up, as reported in the `call` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    Offer,
    Missed,
    Rejected,
}

impl CallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Offer => "offer",
            CallStatus::Missed => "missed",
            CallStatus::Rejected => "rejected",
        }
    }
}

/// A message that arrived for a device.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    pub message_id: String,
    /// The chat: the sender, or the group.
    pub chat: String,
    /// The sender's JID (may be an `@lid`).
    pub from: String,
    /// The sender's phone number, when WhatsApp lets us resolve it.
    pub from_phone: Option<String>,
    pub kind: MessageType,
    /// The text, or a media caption.
    pub text: Option<String>,
    /// Downloaded media.
    pub media: Option<InboundMedia>,
    pub timestamp: OffsetDateTime,
    /// The message it quotes: its id and sender as WhatsApp names them (the worker fills
    /// in the rest from the device's history when it has that message).
    pub reply_to: Option<MessageRef>,
    /// The JIDs its text or caption mentions.
    pub mentions: Vec<String>,
    /// What arrived beyond text and media: a poll's question, options, selectable count
    /// and secret.
    pub content: Option<Content>,
}

/// The bytes of an inbound media file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMedia {
    pub mime_type: String,
    pub bytes: Vec<u8>,
    pub file_name: Option<String>,
}

/// An inbound message handed to the worker; `stored` answers once it is durably stored
/// (the provider acknowledges WhatsApp only then).
#[derive(Debug)]
pub struct InboundDelivery {
    pub device_id: Uuid,
    pub message: InboundMessage,
    pub stored: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// The sender side of the provider's inbound channel.
pub type InboundSender = tokio::sync::mpsc::UnboundedSender<InboundDelivery>;

/// An outbound message, ready to hand to WhatsApp.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundMessage {
    /// The WhatsApp message id to use (fixed when the send was accepted).
    pub message_id: String,
    /// The recipient's JID.
    pub to: String,
    pub content: Content,
    /// The media file's bytes, for media types.
    pub media: Option<Vec<u8>>,
    /// The message it quotes.
    pub reply_to: Option<MessageRef>,
    /// The JIDs mentioned in its text or caption.
    pub mentions: Vec<String>,
}

/// The sender side of the provider's event channel: `(device_id, event)`.
pub type EventSender = tokio::sync::mpsc::UnboundedSender<(Uuid, SessionEvent)>;

/// A contact's or group's profile (best effort: privacy can hide fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Profile {
    pub jid: String,
    /// `contact` or `group`.
    #[serde(rename = "type")]
    pub kind: String,
    pub name: Option<String>,
    /// Contacts: the phone number when it can be resolved.
    pub phone_number: Option<String>,
    /// Contacts: the `@lid` identity when it can be resolved.
    pub lid: Option<String>,
    pub status: Option<String>,
    pub picture_url: Option<String>,
    /// Groups: subject, description and size.
    pub subject: Option<String>,
    pub description: Option<String>,
    pub participant_count: Option<u32>,
}

impl Profile {
    /// The profile of the contact `jid` with nothing else known (what privacy can leave);
    /// callers fill in what they found with struct update syntax.
    pub fn contact(jid: &str) -> Profile {
        Profile {
            jid: jid.to_owned(),
            kind: "contact".to_owned(),
            name: None,
            phone_number: None,
            lid: None,
            status: None,
            picture_url: None,
            subject: None,
            description: None,
            participant_count: None,
        }
    }
}

/// A group the device is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Group {
    pub jid: String,
    pub name: String,
    pub subject: String,
    pub description: Option<String>,
    pub participant_count: u32,
    pub is_announce: bool,
    pub is_locked: bool,
    pub is_ephemeral: bool,
    pub is_join_approval_required: bool,
}

/// A peer's last known presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Presence {
    pub jid: String,
    /// `available` or `unavailable`.
    pub presence: String,
    /// `composing`, `recording` or `paused` when the peer is typing in our chat.
    pub chat_state: Option<String>,
    #[serde(with = "crate::time::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_seen: Option<OffsetDateTime>,
    /// When this was last reported by WhatsApp.
    #[serde(with = "crate::time::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

/// A WhatsApp connection provider.
#[async_trait]
pub trait Provider: Send + Sync {
    /// `whatsapp` or `sandbox`.
    fn name(&self) -> &'static str;

    /// Starts a new linking session for `device_id` on an empty store (old keys are wiped).
    /// QR codes then arrive as events. With `pair_phone`, a pair code is requested too and
    /// returned.
    async fn link(
        &self,
        device_id: Uuid,
        pair_phone: Option<&str>,
    ) -> Result<Option<(String, OffsetDateTime)>, ProviderFailure>;

    /// Resumes a linked session from its stored credentials; `Connected` follows, or
    /// `Reconnecting`/`Stopped`/`LoggedOut` with the reason.
    async fn resume(&self, device_id: Uuid) -> Result<(), ProviderFailure>;

    /// Whether stored credentials exist for `device_id`.
    async fn has_credentials(&self, device_id: Uuid) -> bool;

    /// Stops the session and keeps the credentials.
    async fn disconnect(&self, device_id: Uuid);

    /// Unlinks from WhatsApp (best effort), stops the session and wipes its keys.
    async fn destroy(&self, device_id: Uuid);

    /// A contact's or group's profile; needs a live session.
    async fn profile(&self, device_id: Uuid, jid: &str) -> Result<Profile, ProviderFailure>;

    /// The groups the account is in; needs a live session.
    async fn groups(&self, device_id: Uuid) -> Result<Vec<Group>, ProviderFailure>;

    /// Subscribes to a peer's presence; updates then arrive as `SessionEvent::Presence`.
    async fn subscribe_presence(&self, device_id: Uuid, jid: &str) -> Result<(), ProviderFailure>;

    /// Shows `state` (typing, recording, or neither) in the chat with `jid` (normalized);
    /// needs a live session.
    async fn chat_presence(
        &self,
        device_id: Uuid,
        jid: &str,
        state: ChatState,
    ) -> Result<(), ProviderFailure>;

    /// Sets the account's own presence (online or offline to its contacts); needs a live
    /// session.
    async fn set_presence(
        &self,
        device_id: Uuid,
        presence: OwnPresence,
    ) -> Result<(), ProviderFailure>;

    /// Replaces the text (or caption) of the message `message_id` the device sent to
    /// `chat` with `text` ("edit"); needs a live session.
    async fn edit_message(
        &self,
        device_id: Uuid,
        chat: &str,
        message_id: &str,
        text: &str,
    ) -> Result<(), ProviderFailure>;

    /// Deletes the message `message_id` the device sent to `chat` for everyone; needs a
    /// live session.
    async fn revoke_message(
        &self,
        device_id: Uuid,
        chat: &str,
        message_id: &str,
    ) -> Result<(), ProviderFailure>;

    /// Sends read receipts for `messages`, received in `chat`; needs a live session.
    async fn mark_read(
        &self,
        device_id: Uuid,
        chat: &str,
        messages: &[ReadMessage],
    ) -> Result<(), ProviderFailure>;

    /// Whether each of `phone_numbers` (digits, checked by the caller) has a WhatsApp
    /// account, with its JID and LID, in the order given; needs a live session.
    async fn check_contacts(
        &self,
        device_id: Uuid,
        phone_numbers: &[String],
    ) -> Result<Vec<ContactCheck>, ProviderFailure>;

    /// Carries out a group request (create, info, change, participants, invite, join,
    /// leave) and answers as [`GroupAnswer`] says; a change WhatsApp refuses because the
    /// device is not an admin is forbidden (`groups::not_admin`), a group the device is not
    /// in not_found (`groups::not_a_member`). Each change made is also reported as a
    /// [`SessionEvent::GroupUpdate`] with `by` the device's own JID. Needs a live session.
    async fn group(
        &self,
        device_id: Uuid,
        request: &GroupRequest,
    ) -> Result<GroupAnswer, ProviderFailure>;

    /// Sends a message under its fixed `message_id` and resolves once WhatsApp accepted it
    /// (the server's ack), or with the classified failure: `provider_rate_limit`,
    /// `group_posting_restricted`, `whatsapp_connection_lost`, `upstream_timeout`, ...
    async fn send(&self, device_id: Uuid, message: &OutboundMessage)
    -> Result<(), ProviderFailure>;

    /// Whether WhatsApp already has `message_id` from this device, for a send that was
    /// interrupted by a crash. `None` when the provider cannot tell: resending under the same
    /// id is then safe, WhatsApp drops the duplicate.
    async fn was_sent(&self, _device_id: Uuid, _message_id: &str) -> Option<bool> {
        None
    }

    /// Opens a sealed vote of `voter` on the poll `poll_message_id` with the poll's
    /// `secret`: the SHA-256 hashes of the options it chose (none: the vote was
    /// withdrawn). Needs a live session; a provider that seals no votes refuses
    /// (`provider_error`), as does a vote that does not open with the secret.
    async fn open_vote(
        &self,
        _device_id: Uuid,
        _poll_message_id: &str,
        _voter: &str,
        _vote: &SealedVote,
        _secret: &[u8],
    ) -> Result<Vec<Vec<u8>>, ProviderFailure> {
        Err(ProviderFailure::new(
            ErrorCode::ProviderError,
            "this provider reports no sealed votes",
        ))
    }
}

/// A received message a read receipt is for: WhatsApp's id and its sender (in a group, the
/// participant who sent it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadMessage {
    pub message_id: String,
    pub sender: String,
}

/// What a device shows in a chat: typing, recording a voice note, or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChatState {
    Composing,
    Recording,
    Paused,
}

impl ChatState {
    pub fn as_str(self) -> &'static str {
        match self {
            ChatState::Composing => "composing",
            ChatState::Recording => "recording",
            ChatState::Paused => "paused",
        }
    }
}

/// The account's own presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OwnPresence {
    Available,
    Unavailable,
}

impl OwnPresence {
    pub fn as_str(self) -> &'static str {
        match self {
            OwnPresence::Available => "available",
            OwnPresence::Unavailable => "unavailable",
        }
    }
}

/// How a simulated scan ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScanOutcome {
    Ok,
    TooManyDevices,
    ClientOutdated,
}

/// How a simulated session drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// Unlinked from the phone: the session ends, keys are wiped.
    LoggedOut,
    /// The connection drops; the session reconnects by itself.
    ConnectionLost,
}

/// What the simulated WhatsApp received from a device: the message's id, recipient and
/// type, and the fields of a conversation action (each only when it has one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SentRecord {
    pub message_id: String,
    pub to: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(with = "crate::time::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub received_at: OffsetDateTime,
    /// The message this one quotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<SentReplyTo>,
    /// The JIDs mentioned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
    /// reaction, edit, revoke, read: the message acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_message_id: Option<String>,
    /// reaction: the emoji (`""`: the reaction was removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
    /// poll: its question, options and selectable count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selectable_count: Option<u32>,
    /// chat_presence: what the device showed in the chat `to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ChatState>,
    /// presence: the account's own presence set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<OwnPresence>,
    /// edit: the new text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// read: every message the receipt was sent for (`target_message_id` is the one asked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub message_ids: Vec<String>,
    /// group_create, group_participants: the participants named.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<String>,
    /// group_participants: what was done to them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<ParticipantAction>,
    /// group_create (`subject`), group_update: the group's fields set.
    #[serde(default, flatten)]
    pub changes: GroupChanges,
    /// group_join: the code joined with; group_invite_revoke: the new code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_code: Option<String>,
}

/// The message a sent message quoted, as the sandbox recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SentReplyTo {
    pub message_id: String,
    pub from: Option<String>,
}

impl SentRecord {
    /// The record of `message` received at `received_at`.
    pub fn of(message: &OutboundMessage, received_at: OffsetDateTime) -> SentRecord {
        let mut r = SentRecord::plain(
            &message.message_id,
            &message.to,
            message.content.kind().as_str(),
            received_at,
        );
        r.reply_to = message.reply_to.as_ref().map(|q| SentReplyTo {
            message_id: q.message_id.clone(),
            from: q.from.clone(),
        });
        r.mentions = message.mentions.clone();
        match &message.content {
            Content::Reaction { target, emoji } => {
                r.target_message_id = Some(target.message_id.clone());
                r.emoji = Some(emoji.clone());
            }
            Content::Poll {
                question,
                options,
                selectable_count,
                ..
            } => {
                r.question = Some(question.clone());
                r.options = options.clone();
                r.selectable_count = Some(*selectable_count);
            }
            _ => {}
        }
        r
    }

    /// A record of `kind` with no action fields.
    pub fn plain(message_id: &str, to: &str, kind: &str, received_at: OffsetDateTime) -> Self {
        SentRecord {
            message_id: message_id.to_owned(),
            to: to.to_owned(),
            kind: kind.to_owned(),
            received_at,
            reply_to: None,
            mentions: Vec::new(),
            target_message_id: None,
            emoji: None,
            question: None,
            options: Vec::new(),
            selectable_count: None,
            state: None,
            presence: None,
            text: None,
            message_ids: Vec::new(),
            participants: Vec::new(),
            action: None,
            changes: GroupChanges::default(),
            invite_code: None,
        }
    }

    /// The record of an action that is not a message (typing, presence): no message id, `to`
    /// the chat it was shown in (empty for the account's own presence), received now.
    pub fn action(kind: &str, to: &str) -> SentRecord {
        SentRecord::plain("", to, kind, crate::time::now())
    }
}

/// One simulated session of a device, as the sandbox recorded it: opened by a worker (a
/// link or a resume) under its lease's epoch, closed when the session ended there (`None`
/// while it is open, or when its process died without closing it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionRecord {
    /// The worker that opened it (`WA_WORKER_ID`).
    pub worker_id: String,
    /// The epoch of the device's lease the worker held when it opened the session (0: it
    /// held none).
    pub epoch: u64,
    #[serde(with = "crate::time::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub opened_at: OffsetDateTime,
    #[serde(with = "crate::time::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub closed_at: Option<OffsetDateTime>,
}

/// Who opens the sandbox's sessions: the worker running it, and the lease it holds of
/// each device (for [`SessionRecord`]s).
pub trait SessionHolder: Send + Sync {
    /// The worker's id (`WA_WORKER_ID`).
    fn worker_id(&self) -> String;
    /// The epoch of the device's lease this worker holds; `None` when it holds none.
    fn epoch(&self, device_id: Uuid) -> Option<u64>;
}

/// The sandbox's control surface (the `/sandbox` routes). Errors are API errors: a scan
/// without a valid QR is 409 conflict, an action on a device without a live session is
/// 409 device_not_connected.
#[async_trait]
pub trait SandboxControl: Send + Sync {
    /// Scans the device's current QR (or completes its pair-code link).
    async fn scan(
        &self,
        device_id: Uuid,
        wa_number: &str,
        outcome: ScanOutcome,
    ) -> wa_errors::ApiResult<()>;

    /// Drops the device's live session.
    async fn drop_session(&self, device_id: Uuid, reason: DropReason) -> wa_errors::ApiResult<()>;

    /// A peer's presence / typing changes, as seen by the device.
    async fn presence(
        &self,
        device_id: Uuid,
        jid: &str,
        presence: &str,
        chat_state: Option<&str>,
    ) -> wa_errors::ApiResult<()>;

    /// What the simulated WhatsApp received from the device, in order.
    async fn sent(&self, device_id: Uuid) -> wa_errors::ApiResult<Vec<SentRecord>>;

    /// Every simulated session of the device, oldest first, as recorded by every sandbox
    /// sharing the data directory.
    async fn sessions(&self, device_id: Uuid) -> wa_errors::ApiResult<Vec<SessionRecord>>;

    /// Names who opens this sandbox's sessions from now on (the worker running it).
    fn held_by(&self, holder: std::sync::Arc<dyn SessionHolder>);

    /// An incoming message from `from`, with the fields of a send; answers its message id
    /// once the worker stored it.
    async fn inbound(
        &self,
        device_id: Uuid,
        from: &str,
        request: crate::messages::SendRequest,
    ) -> wa_errors::ApiResult<String>;

    /// The sender of a message the device received revokes it ("delete for everyone").
    async fn revoke(
        &self,
        device_id: Uuid,
        message_id: &str,
        chat: &str,
        from: &str,
    ) -> wa_errors::ApiResult<()>;

    /// `from` reacts to the message `message_id` of `chat` (`emoji` `""`: takes it back).
    async fn react(
        &self,
        device_id: Uuid,
        chat: &str,
        from: &str,
        message_id: &str,
        emoji: &str,
    ) -> wa_errors::ApiResult<()>;

    /// `from` edits its message `message_id` of `chat` to `text`.
    async fn edit(
        &self,
        device_id: Uuid,
        chat: &str,
        from: &str,
        message_id: &str,
        text: &str,
    ) -> wa_errors::ApiResult<()>;

    /// A change to a group made elsewhere (by `update.by`): kept in the device's groups
    /// and reported; 404 not_found for a group the device is not in (but `created`).
    async fn group_event(&self, device_id: Uuid, update: GroupUpdate) -> wa_errors::ApiResult<()>;

    /// A receipt from the recipient of a message the device sent.
    async fn receipt(
        &self,
        device_id: Uuid,
        message_id: &str,
        status: MessageStatus,
    ) -> wa_errors::ApiResult<()>;

    /// `voter` votes `selected_options` (names, checked by the caller against the poll;
    /// none withdraws the vote) on the poll `poll_message_id` of `chat`.
    async fn poll_vote(
        &self,
        device_id: Uuid,
        chat: &str,
        voter: &str,
        poll_message_id: &str,
        selected_options: &[String],
    ) -> wa_errors::ApiResult<()>;

    /// `from` calls the device; the `call` event follows (rejected at once when the
    /// sandbox rejects calls).
    async fn call(&self, device_id: Uuid, from: &str, is_video: bool) -> wa_errors::ApiResult<()>;
}
