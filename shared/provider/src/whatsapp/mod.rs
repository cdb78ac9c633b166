//! The real WhatsApp provider, on whatsapp-rust 0.7.
//!
//! One whatsapp-rust `Bot` per device, each with its own SQLite store file and one
//! *session pump* task that turns library events into `SessionEvent`s on the
//! provider's channel. The rooms:
//! - `options`: [`WhatsAppOptions`], and the parsing of the endpoint settings
//!   (`WA_WHATSAPP_WS_URL`, `WA_WHATSAPP_VERSION`).
//! - `session`: session lifecycle (link, resume, disconnect, destroy, the store
//!   files, the per-device locks that keep two Bots off one store).
//! - `store`: opening a device's SQLite store for one process at a time, with a
//!   rollback journal, so the files can live on a file system shared by hosts (EFS).
//! - `pump`: the event pump and its timers (connect watchdog, pair-code wait, server
//!   recycles), carrying out what `events` decides.
//! - `events`: the pure mapping of every library event the pump handles to what the
//!   session does, with a unit test per event.
//! - `queries`: profiles and groups on a live session.
//! - `contacts`: checking phone numbers (`is_on_whatsapp`), with the LIDs the store knows.
//! - `outbound` / `acks`: sending, resolved on the server's ack (correlated by id
//!   through the session's ack table, which the pump fills from `Event::ServerAck`).
//! - `inbound`: receiving through the library's durability hook; revokes and
//!   receipts. `received`: a received message's quote, mentions, poll and vote.
//! - `calls`: incoming and missed calls, and rejecting them (`WA_REJECT_CALLS`).
//! - `groups`: group requests (`client.groups()`); `group_events`: the group changes
//!   WhatsApp reports, and reporting the device's own changes once.
//! - `classify` / `mapping`: error classification and the translation of payloads.
//!
//! Nothing here waits on the network without a bound: a session that cannot reach
//! WhatsApp is reported after `connect_timeout` (the library itself retries forever
//! and only logs connect failures).

mod acks;
mod actions;
mod calls;
mod classify;
mod compose;
mod contacts;
mod events;
mod group_events;
mod groups;
mod inbound;
mod mapping;
mod options;
mod outbound;
mod pump;
mod queries;
mod received;
mod session;
mod store;

pub use classify::{
    classify_error, classify_nack, classify_pair_error, classify_pair_failure, classify_send_error,
};
pub use options::{DEFAULT_WS_URL, WaVersion, WhatsAppOptions, parse_version, parse_ws_url};

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;
use wa_core::contacts::ContactCheck;
use wa_core::groups::{GroupAnswer, GroupRequest};
use wa_core::provider::{
    ChatState, EventSender, Group, InboundSender, OutboundMessage, OwnPresence, Profile, Provider,
    ProviderFailure, ReadMessage, SealedVote, SessionEvent,
};
use wa_core::time::OffsetDateTime;

use group_events::Source;
use session::Inner;
use tokio::time::Instant;

/// The whatsapp-rust provider: real WhatsApp sessions, one per device.
///
/// Cheap to share behind an `Arc<dyn Provider>`. Dropping it aborts every running
/// session without flushing (call `disconnect` first for a clean stop).
pub struct WhatsAppProvider {
    inner: Arc<Inner>,
}

impl WhatsAppProvider {
    /// A provider keeping its session stores in `sessions_dir` (created on first use),
    /// reporting session events on `events` and handing incoming messages to the worker
    /// on `inbound` (WhatsApp is acknowledged only once the worker answered `stored`
    /// with `Ok`). Starts nothing by itself; every session dials `options.ws_url`.
    pub fn new(
        sessions_dir: PathBuf,
        events: EventSender,
        inbound: InboundSender,
        options: WhatsAppOptions,
    ) -> Self {
        WhatsAppProvider {
            inner: Arc::new(Inner::new(sessions_dir, events, inbound, options)),
        }
    }
}

#[async_trait]
impl Provider for WhatsAppProvider {
    fn name(&self) -> &'static str {
        "whatsapp"
    }

    /// Stops any session of the device, wipes its store and starts a fresh linking
    /// session; QR codes follow as events. Returns at once unless `pair_phone` is
    /// given: then it waits up to `connect_timeout` for the socket, and again up to
    /// `connect_timeout` for WhatsApp's answer, and returns the pair code, or `Err`
    /// (`whatsapp_connection_lost` when WhatsApp is unreachable, `provider_rate_limit`
    /// when throttled, `upstream_timeout` when unanswered, `validation_error` for a
    /// phone number the library rejects) after stopping the session silently and
    /// wiping its store. When WhatsApp later declares the code dead, the session asks
    /// for a new one and reports it as `SessionEvent::PairCode`.
    async fn link(
        &self,
        device_id: Uuid,
        pair_phone: Option<&str>,
    ) -> Result<Option<(String, OffsetDateTime)>, ProviderFailure> {
        self.inner.link(device_id, pair_phone).await
    }

    /// Starts a session on the stored credentials and returns at once; `Connected`
    /// follows, or `Reconnecting` (WhatsApp unreachable within `connect_timeout`, the
    /// library keeps retrying), `Stopped` or `LoggedOut`. `Err(logged_out)` when there
    /// are no stored credentials.
    async fn resume(&self, device_id: Uuid) -> Result<(), ProviderFailure> {
        self.inner.resume(device_id).await
    }

    /// Whether the device's store holds a paired identity (a phone-number JID). A
    /// store file that exists but was never paired is not credentials. With a running
    /// session the answer comes from its client; otherwise the store is opened and its
    /// device row read (a few milliseconds). Unreadable stores count as no credentials.
    async fn has_credentials(&self, device_id: Uuid) -> bool {
        self.inner.has_credentials(device_id).await
    }

    /// Stops the session (bounded graceful shutdown, then abort) and keeps the store.
    /// Emits nothing for the session once it returns.
    async fn disconnect(&self, device_id: Uuid) {
        self.inner.disconnect(device_id).await
    }

    /// Unlinks the device from WhatsApp when connected (bounded by a timeout; best
    /// effort), stops the session and deletes its store files. Emits nothing for the
    /// session once it returns.
    async fn destroy(&self, device_id: Uuid) {
        self.inner.destroy(device_id).await
    }

    /// A contact's or group's profile (`@g.us` = group), best effort: fields WhatsApp
    /// hides (privacy) are `None`. Needs a live session (`device_not_connected`);
    /// library failures are classified by [`classify_error`]; a malformed JID is a
    /// `validation_error`.
    async fn profile(&self, device_id: Uuid, jid: &str) -> Result<Profile, ProviderFailure> {
        let client = self.inner.live_client(device_id).await?;
        queries::profile(&client, jid).await
    }

    /// The groups the account participates in, sorted by JID. Needs a live session.
    async fn groups(&self, device_id: Uuid) -> Result<Vec<Group>, ProviderFailure> {
        let client = self.inner.live_client(device_id).await?;
        queries::groups(&client).await
    }

    /// Sends a message under its fixed `message_id` and returns once WhatsApp acked it.
    ///
    /// Needs a live session (`device_not_connected` at once otherwise). Media types
    /// are uploaded first (their bytes must be in `message.media`, else
    /// `provider_error`). Failures: a malformed `to` is a `validation_error`; upload
    /// and send errors are classified by [`classify_error`] / [`classify_send_error`];
    /// a server nack by [`classify_nack`] (`provider_rate_limit`,
    /// `group_posting_restricted`, ...); the connection breaking or the session ending
    /// before the ack is `whatsapp_connection_lost` (a routine recycle by the server is
    /// not: the send keeps waiting across the reconnect); no ack within 30 s is
    /// `upstream_timeout` (`group_prekey_timeout` for groups). After any failure,
    /// resending under the same id is safe: WhatsApp drops duplicates.
    async fn send(
        &self,
        device_id: Uuid,
        message: &OutboundMessage,
    ) -> Result<(), ProviderFailure> {
        let (client, shared) = self.inner.live_session(device_id).await?;
        let to = queries::parse_jid(&message.to)?;
        outbound::send(device_id, &client, &shared.acks, to, message).await
    }

    /// Subscribes to a peer's presence; updates arrive as `SessionEvent::Presence` (the
    /// library re-subscribes after reconnects). Needs a live session.
    async fn subscribe_presence(&self, device_id: Uuid, jid: &str) -> Result<(), ProviderFailure> {
        let client = self.inner.live_client(device_id).await?;
        queries::subscribe_presence(&client, jid).await
    }

    /// A `<chatstate>` stanza to the chat (`chatstate().send`). Needs a live session.
    async fn chat_presence(
        &self,
        device_id: Uuid,
        jid: &str,
        state: ChatState,
    ) -> Result<(), ProviderFailure> {
        let client = self.inner.live_client(device_id).await?;
        queries::chat_presence(&client, jid, state).await
    }

    /// Whether each number has an account (`contacts().is_on_whatsapp`), in the order
    /// asked; the library keeps the LID pairs learned in the store. Needs a live session.
    async fn check_contacts(
        &self,
        device_id: Uuid,
        phone_numbers: &[String],
    ) -> Result<Vec<ContactCheck>, ProviderFailure> {
        let client = self.inner.live_client(device_id).await?;
        contacts::check_contacts(&client, phone_numbers).await
    }

    /// Carries out a group request (`client.groups()`, see [`groups`]) and reports what
    /// it changed as `GroupUpdate` events with `by` the account's own JID, once each
    /// (see [`group_events`]). Needs a live session.
    async fn group(
        &self,
        device_id: Uuid,
        request: &GroupRequest,
    ) -> Result<GroupAnswer, ProviderFailure> {
        let (client, shared) = self.inner.live_session(device_id).await?;
        let answer = groups::run(&client, request).await?;
        let me = client.pn().or_else(|| client.lid());
        if let (Some(me), Some(emitter)) = (me, self.inner.emitter(device_id).await) {
            let own = &shared.own_group_changes;
            for update in request.reports(&answer, &me.to_non_ad().to_string()) {
                if let Some(update) = own.first_report(Source::Request, &update, Instant::now()) {
                    emitter.emit(SessionEvent::GroupUpdate(update));
                }
            }
        }
        Ok(answer)
    }

    /// A `<presence>` stanza for the account (`presence().set`). Needs a live session;
    /// WhatsApp needs a push name for it (`provider_error` without one).
    async fn set_presence(
        &self,
        device_id: Uuid,
        presence: OwnPresence,
    ) -> Result<(), ProviderFailure> {
        let client = self.inner.live_client(device_id).await?;
        queries::set_presence(&client, presence).await
    }

    /// A `MessageEdit` protocol message (`edit_message`). Needs a live session.
    async fn edit_message(
        &self,
        device_id: Uuid,
        chat: &str,
        message_id: &str,
        text: &str,
    ) -> Result<(), ProviderFailure> {
        let client = self.inner.live_client(device_id).await?;
        actions::edit(&client, chat, message_id, text).await
    }

    /// A sender's revoke (`revoke_message`). Needs a live session.
    async fn revoke_message(
        &self,
        device_id: Uuid,
        chat: &str,
        message_id: &str,
    ) -> Result<(), ProviderFailure> {
        let client = self.inner.live_client(device_id).await?;
        actions::revoke(&client, chat, message_id).await
    }

    /// `<receipt type="read">` stanzas (`mark_as_read`). Needs a live session.
    async fn mark_read(
        &self,
        device_id: Uuid,
        chat: &str,
        messages: &[ReadMessage],
    ) -> Result<(), ProviderFailure> {
        let client = self.inner.live_client(device_id).await?;
        actions::mark_read(&client, chat, messages).await
    }

    /// `polls().decrypt_vote` with the poll's secret. Needs a live session.
    async fn open_vote(
        &self,
        device_id: Uuid,
        poll_message_id: &str,
        voter: &str,
        vote: &SealedVote,
        secret: &[u8],
    ) -> Result<Vec<Vec<u8>>, ProviderFailure> {
        let client = self.inner.live_client(device_id).await?;
        received::open_vote(&client, poll_message_id, voter, vote, secret).await
    }
}

#[cfg(test)]
mod tests;
