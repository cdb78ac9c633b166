//! Receiving: incoming messages, revokes and receipts, from whatsapp-rust's shapes to
//! the port's ([`InboundMessage`], [`SessionEvent::Revoked`], [`SessionEvent::Receipt`]).
//!
//! Durability: each session registers an [`InboundHook`] (whatsapp-rust's
//! `InboundDurabilityHook`). The library buffers every decrypted message in the
//! session store and calls the hook *before* acknowledging it to WhatsApp; the hook
//! hands each message to the worker as an [`InboundDelivery`] and waits (up to
//! [`STORE_TIMEOUT`]) until the worker says it is stored. Only then does it return
//! `Ok`, which lets the library ack. On a refusal, a timeout, a closed session or a
//! gone worker it returns `Err`: nothing is acked and WhatsApp redelivers the batch on
//! the next connect (the library replays it from its buffer). Delivery is therefore
//! at-least-once: the worker must deduplicate by `(chat, from, message_id)`.
//!
//! The hook commits whole batches (one message live; up to a few hundred during the
//! offline drain), all-or-nothing: one message the worker fails to store makes the
//! whole batch come again.
//!
//! Messages the library dispatches without the hook (`hook_committed == false`:
//! PDO-recovered placeholders) were already acked; the session pump delivers them
//! best-effort with [`deliver_unacked`]. Revokes are emitted by the pump from the
//! committed `Event::Messages`, so a redelivered batch does not report them twice.
//!
//! Media: downloaded inside the hook (so the stored message is complete), at most
//! [`MAX_INBOUND_MEDIA`] bytes each, [`DOWNLOAD_CONCURRENCY`] at a time, each within
//! [`DOWNLOAD_TIMEOUT`]. A file that is larger, expired or fails to download is
//! delivered without its bytes (logged): redelivery would not make it smaller or
//! un-expire it, and blocking the chat's other messages on it would be worse.

use std::io::{Cursor, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;
use tracing::{debug, info, warn};
use uuid::Uuid;
use wa_core::messages::{Content, MessageStatus, MessageType};
use wa_core::provider::{InboundDelivery, InboundMedia, InboundMessage, InboundSender};
use whatsapp_rust::download::{DownloadWriter, Downloadable};
use whatsapp_rust::futures::future::join_all;
use whatsapp_rust::prelude::{MessageExt, wa};
use whatsapp_rust::types::events::InboundMessage as LibInbound;
use whatsapp_rust::wacore::types::presence::ReceiptType;
use whatsapp_rust::wacore_binary::JidExt;
use whatsapp_rust::{Client, InboundDurabilityHook, Jid};

use super::session::Emitter;
use super::{mapping, received};

/// How long the worker may take to store one batch before WhatsApp is left
/// unacknowledged (and redelivers it later).
pub(crate) const STORE_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest inbound media file downloaded; larger ones arrive without bytes.
pub(crate) const MAX_INBOUND_MEDIA: u64 = 64 * 1024 * 1024;

/// Bound on one media download (all CDN hosts and retries included).
pub(crate) const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// Media downloads running at once for one batch (an offline drain can carry many).
pub(crate) const DOWNLOAD_CONCURRENCY: usize = 4;

/// What an incoming message is, for the port.
pub(crate) enum Classified<'a> {
    /// A message the worker stores.
    Message {
        kind: MessageType,
        /// The text, a caption, a place's name or a contact's name.
        text: Option<String>,
        media: Option<MediaRef<'a>>,
    },
    /// "Deleted for everyone": the id of the revoked message.
    Revoke { message_id: String },
    /// A reaction to the message `message_id` (`emoji` `""`: taken back).
    Reaction { message_id: String, emoji: String },
    /// An edit of the sender's message `message_id`: its new text or caption.
    Edit { message_id: String, text: String },
    /// A poll the worker stores: its question, options, selectable count and secret.
    Poll(Content),
    /// A vote on a poll (read by [`received::sealed_vote`], which needs the account's
    /// identities).
    Vote,
    /// Encrypted reactions, protocol traffic and other kinds the port has no type
    /// for.
    Ignored,
}

/// The media part of an incoming message.
pub(crate) struct MediaRef<'a> {
    pub(crate) downloadable: &'a dyn Downloadable,
    pub(crate) mime_type: String,
    pub(crate) file_name: Option<String>,
}

impl std::fmt::Debug for MediaRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaRef")
            .field("mime_type", &self.mime_type)
            .field("file_name", &self.file_name)
            .field("file_length", &self.downloadable.file_length())
            .finish()
    }
}

impl std::fmt::Debug for Classified<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No text: message contents stay out of logs and panics.
        match self {
            Classified::Message { kind, media, .. } => f
                .debug_struct("Message")
                .field("kind", kind)
                .field("media", media)
                .finish_non_exhaustive(),
            Classified::Revoke { message_id } => f
                .debug_struct("Revoke")
                .field("message_id", message_id)
                .finish(),
            Classified::Reaction { message_id, .. } => f
                .debug_struct("Reaction")
                .field("message_id", message_id)
                .finish_non_exhaustive(),
            Classified::Edit { message_id, .. } => f
                .debug_struct("Edit")
                .field("message_id", message_id)
                .finish_non_exhaustive(),
            Classified::Poll(_) => f.write_str("Poll"),
            Classified::Vote => f.write_str("Vote"),
            Classified::Ignored => f.write_str("Ignored"),
        }
    }
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty()).map(str::to_string)
}

fn media_ref<'a>(
    downloadable: &'a dyn Downloadable,
    mime_type: Option<&str>,
    default_mime: &str,
    file_name: Option<&str>,
) -> Option<MediaRef<'a>> {
    Some(MediaRef {
        downloadable,
        mime_type: non_empty(mime_type).unwrap_or_else(|| default_mime.to_string()),
        file_name: non_empty(file_name),
    })
}

/// Classifies a message (wrappers such as ephemeral, view-once or device-sent are
/// unwrapped first).
pub(crate) fn classify(message: &wa::Message) -> Classified<'_> {
    use wa::message::protocol_message::Type as ProtocolType;
    let base = message.get_base_message();
    let found = |kind, text: Option<String>, media| Classified::Message { kind, text, media };

    if let Some(protocol) = base.protocol_message.as_option() {
        return match (protocol.r#type, protocol.key.as_option()) {
            (Some(ProtocolType::REVOKE), Some(key)) => match non_empty(key.id.as_deref()) {
                Some(message_id) => Classified::Revoke { message_id },
                None => Classified::Ignored,
            },
            (Some(ProtocolType::MESSAGE_EDIT), Some(key)) => {
                let edited = protocol.edited_message.as_option();
                let text = edited.and_then(|m| m.text_content().or_else(|| m.get_caption()));
                match (non_empty(key.id.as_deref()), text) {
                    (Some(message_id), Some(text)) => Classified::Edit {
                        message_id,
                        text: text.to_owned(),
                    },
                    _ => Classified::Ignored,
                }
            }
            _ => Classified::Ignored,
        };
    }
    if let Some(m) = base.image_message.as_option() {
        let media = media_ref(m, m.mimetype.as_deref(), "image/jpeg", None);
        return found(MessageType::Image, non_empty(m.caption.as_deref()), media);
    }
    // Round video notes (`ptv`) are videos without a caption.
    if let Some(m) = base
        .video_message
        .as_option()
        .or_else(|| base.ptv_message.as_option())
    {
        let media = media_ref(m, m.mimetype.as_deref(), "video/mp4", None);
        return found(MessageType::Video, non_empty(m.caption.as_deref()), media);
    }
    if let Some(m) = base.audio_message.as_option() {
        let media = media_ref(m, m.mimetype.as_deref(), "audio/ogg", None);
        return found(MessageType::Audio, None, media);
    }
    if let Some(m) = base.document_message.as_option() {
        let media = media_ref(
            m,
            m.mimetype.as_deref(),
            "application/octet-stream",
            m.file_name.as_deref(),
        );
        return found(
            MessageType::Document,
            non_empty(m.caption.as_deref()),
            media,
        );
    }
    if let Some(m) = base.sticker_message.as_option() {
        let media = media_ref(m, m.mimetype.as_deref(), "image/webp", None);
        return found(MessageType::Sticker, None, media);
    }
    if let Some(m) = base.location_message.as_option() {
        return found(MessageType::Location, non_empty(m.name.as_deref()), None);
    }
    if let Some(m) = base.live_location_message.as_option() {
        return found(MessageType::Location, non_empty(m.caption.as_deref()), None);
    }
    if let Some(m) = base.contact_message.as_option() {
        return found(
            MessageType::Contact,
            non_empty(m.display_name.as_deref()),
            None,
        );
    }
    if let Some(m) = base.contacts_array_message.as_option() {
        let name = non_empty(m.display_name.as_deref()).or_else(|| {
            m.contacts
                .iter()
                .find_map(|c| non_empty(c.display_name.as_deref()))
        });
        return found(MessageType::Contact, name, None);
    }
    if let Some(r) = base.reaction_message.as_option() {
        let target = r.key.as_option().and_then(|k| non_empty(k.id.as_deref()));
        return match target {
            Some(message_id) => Classified::Reaction {
                message_id,
                emoji: r.text.clone().unwrap_or_default(),
            },
            None => Classified::Ignored,
        };
    }
    if let Some(poll) = received::poll(message) {
        return Classified::Poll(poll);
    }
    if base.poll_update_message.is_set() {
        return Classified::Vote;
    }
    // Encrypted reactions (communities) and the rest carry no text; `text_content` only
    // reads plain and extended text.
    if base.enc_reaction_message.is_set() {
        return Classified::Ignored;
    }
    match non_empty(base.text_content()) {
        Some(text) => found(MessageType::Text, Some(text), None),
        None => Classified::Ignored,
    }
}

/// The status of a receipt for a message this device sent; `None` for the receipt
/// types the port does not report (sent, retry, self-reads, ...).
pub(crate) fn receipt_status(kind: &ReceiptType) -> Option<MessageStatus> {
    match kind {
        ReceiptType::Delivered => Some(MessageStatus::Delivered),
        ReceiptType::Read => Some(MessageStatus::Read),
        ReceiptType::Played => Some(MessageStatus::Played),
        _ => None,
    }
}

/// Whether a message from this chat is for the port at all: status updates
/// (`status@broadcast`) and channel posts are not conversations.
pub(crate) fn is_conversation(chat: &Jid) -> bool {
    !chat.is_status_broadcast() && !chat.is_newsletter()
}

/// The sender's phone number (digits) without asking anyone: its own user part for a
/// phone-number JID, or the alternate identity the stanza carried for an `@lid`.
pub(crate) fn known_phone(sender: &Jid, alt: Option<&Jid>) -> Option<String> {
    let base = sender.to_non_ad();
    if base.is_pn() {
        return Some(mapping::digits(&base.user)).filter(|d| !d.is_empty());
    }
    if base.is_lid() {
        return alt
            .filter(|a| a.is_pn())
            .map(|a| mapping::digits(&a.user))
            .filter(|d| !d.is_empty());
    }
    None
}

/// The sender's phone number, also through the library's LID↔PN store (best effort).
async fn sender_phone(client: &Client, sender: &Jid, alt: Option<&Jid>) -> Option<String> {
    if let Some(phone) = known_phone(sender, alt) {
        return Some(phone);
    }
    let base = sender.to_non_ad();
    if !base.is_lid() {
        return None;
    }
    match client.get_lid_pn_entry(&base).await {
        Ok(entry) => entry
            .map(|e| mapping::digits(&e.phone_number))
            .filter(|d| !d.is_empty()),
        Err(e) => {
            debug!(error = %e, "LID to phone number lookup failed");
            None
        }
    }
}

/// A download sink that refuses to grow past a limit. Once refused it stays refused,
/// so the library's retry on the next CDN host fails at its first chunk instead of
/// downloading up to the limit again.
struct LimitedWriter {
    inner: Cursor<Vec<u8>>,
    limit: u64,
    exceeded: Arc<AtomicBool>,
}

impl LimitedWriter {
    fn new(limit: u64, capacity: u64) -> (Self, Arc<AtomicBool>) {
        let exceeded = Arc::new(AtomicBool::new(false));
        let capacity = usize::try_from(capacity.min(limit)).unwrap_or(0);
        (
            LimitedWriter {
                inner: Cursor::new(Vec::with_capacity(capacity)),
                limit,
                exceeded: exceeded.clone(),
            },
            exceeded,
        )
    }
}

impl Write for LimitedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let len = u64::try_from(buf.len()).unwrap_or(u64::MAX);
        let end = self.inner.position().saturating_add(len);
        if self.exceeded.load(Ordering::Relaxed) || end > self.limit {
            self.exceeded.store(true, Ordering::Relaxed);
            return Err(std::io::Error::other(format!(
                "media larger than {} bytes",
                self.limit
            )));
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl Seek for LimitedWriter {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

impl DownloadWriter for LimitedWriter {
    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.inner
            .get_mut()
            .truncate(usize::try_from(len).unwrap_or(usize::MAX));
        Ok(())
    }
}

/// Downloads (decrypts and verifies) a media file, within [`MAX_INBOUND_MEDIA`] and
/// [`DOWNLOAD_TIMEOUT`]. `None` (logged) when it is too large or cannot be fetched.
async fn download(client: &Client, media: &MediaRef<'_>, message_id: &str) -> Option<Vec<u8>> {
    let declared = media.downloadable.file_length().unwrap_or(0);
    if declared > MAX_INBOUND_MEDIA {
        warn!(
            message_id,
            size = declared,
            limit = MAX_INBOUND_MEDIA,
            "inbound media too large; delivered without its bytes"
        );
        return None;
    }
    let (writer, exceeded) = LimitedWriter::new(MAX_INBOUND_MEDIA, declared);
    let fetched = tokio::time::timeout(
        DOWNLOAD_TIMEOUT,
        client.download_to_writer(media.downloadable, writer),
    )
    .await;
    match fetched {
        Ok(Ok(writer)) => {
            let bytes = writer.inner.into_inner();
            debug!(message_id, size = bytes.len(), "inbound media downloaded");
            Some(bytes)
        }
        Ok(Err(_)) if exceeded.load(Ordering::Relaxed) => {
            warn!(
                message_id,
                declared,
                limit = MAX_INBOUND_MEDIA,
                "inbound media larger than declared and than the limit; delivered without its bytes"
            );
            None
        }
        Ok(Err(e)) => {
            warn!(message_id, declared, error = %e, "inbound media download failed; delivered without its bytes");
            None
        }
        Err(_) => {
            warn!(
                message_id,
                declared,
                timeout_s = DOWNLOAD_TIMEOUT.as_secs(),
                "inbound media download timed out; delivered without its bytes"
            );
            None
        }
    }
}

/// The port's message for one library message, or `None` when it is not for the port
/// (sent by this account, a status update or channel post, a revoke, an ignored kind).
/// Downloads its media.
pub(crate) async fn to_inbound(client: &Client, item: &LibInbound) -> Option<InboundMessage> {
    let info = &item.info;
    let source = &info.source;
    if source.is_from_me || !is_conversation(&source.chat) {
        return None;
    }
    let (kind, text, media, content) = match classify(&item.message) {
        Classified::Message { kind, text, media } => (kind, text, media, None),
        Classified::Poll(poll) => (MessageType::Poll, poll.display_text(), None, Some(poll)),
        _ => return None,
    };
    let chat = source.chat.to_non_ad().to_string();
    let context = received::context_info(item.message.get_base_message());
    let (reply_to, mentions) = received::quote_and_mentions(context, &chat);
    let media = match media {
        Some(m) => download(client, &m, &info.id)
            .await
            .map(|bytes| InboundMedia {
                mime_type: m.mime_type,
                bytes,
                file_name: m.file_name,
            }),
        None => None,
    };
    let from_phone = sender_phone(client, &source.sender, source.sender_alt.as_ref()).await;
    Some(InboundMessage {
        message_id: info.id.clone(),
        chat,
        from: source.sender.to_non_ad().to_string(),
        from_phone,
        kind,
        text,
        media,
        timestamp: mapping::from_chrono(info.timestamp).unwrap_or_else(wa_core::time::now),
        reply_to,
        mentions,
        content,
    })
}

/// The port's messages of a batch, in order (downloads run a few at a time).
async fn to_inbound_all(client: &Client, batch: &[LibInbound]) -> Vec<InboundMessage> {
    let mut out = Vec::with_capacity(batch.len());
    for chunk in batch.chunks(DOWNLOAD_CONCURRENCY) {
        // Collected first: a lazy `map` adapter inside the future trips the
        // compiler's `Send` check for the hook's boxed future.
        let conversions: Vec<_> = chunk.iter().map(|item| to_inbound(client, item)).collect();
        out.extend(join_all(conversions).await.into_iter().flatten());
    }
    out
}

/// Hands `messages` to the worker, in order, and waits until it stored all of them
/// (within `timeout`, counted from the last hand-over). `Err` says why not: the worker
/// is gone, refused one, dropped the answer, or took too long.
pub(crate) async fn deliver_and_wait(
    device_id: Uuid,
    inbound: &InboundSender,
    messages: Vec<InboundMessage>,
    timeout: Duration,
) -> Result<(), String> {
    let mut answers = Vec::with_capacity(messages.len());
    for message in messages {
        let id = message.message_id.clone();
        let (stored, answer) = oneshot::channel();
        inbound
            .send(InboundDelivery {
                device_id,
                message,
                stored,
            })
            .map_err(|_| "the worker's inbound channel is closed".to_string())?;
        answers.push((id, answer));
    }
    let deadline = tokio::time::Instant::now() + timeout;
    for (id, answer) in answers {
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(format!("message {id} was not stored: {e}")),
            Ok(Err(_)) => return Err(format!("message {id}: the worker dropped the delivery")),
            Err(_) => {
                return Err(format!(
                    "message {id} was not stored within {} s",
                    timeout.as_secs()
                ));
            }
        }
    }
    Ok(())
}

/// The session's durability hook: gates WhatsApp's ack on the worker storing the
/// batch (see the module docs).
pub(crate) struct InboundHook {
    pub(crate) device_id: Uuid,
    pub(crate) inbound: InboundSender,
    /// The session's emitter: once closed (disconnect, destroy, a newer session) the
    /// hook refuses batches, which stay unacked for the next session.
    pub(crate) emitter: Emitter,
}

#[async_trait::async_trait]
impl InboundDurabilityHook for InboundHook {
    async fn on_messages(
        &self,
        client: Arc<Client>,
        batch: &[LibInbound],
    ) -> whatsapp_rust::anyhow::Result<()> {
        let device_id = self.device_id;
        if !self.emitter.is_open() {
            return Err(whatsapp_rust::anyhow::anyhow!(
                "the session is closing; leaving {} message(s) for redelivery",
                batch.len()
            ));
        }
        let messages = to_inbound_all(&client, batch).await;
        if messages.is_empty() {
            // Nothing for the worker (own messages, protocol traffic, ...): ack.
            return Ok(());
        }
        let count = messages.len();
        match deliver_and_wait(device_id, &self.inbound, messages, STORE_TIMEOUT).await {
            Ok(()) => {
                debug!(device_id = %device_id, count, "inbound messages stored; acknowledging");
                Ok(())
            }
            Err(why) => {
                warn!(device_id = %device_id, count, reason = %why, "inbound messages not stored; WhatsApp will redeliver them");
                Err(whatsapp_rust::anyhow::anyhow!(why))
            }
        }
    }
}

/// Delivers messages WhatsApp was already acked for (dispatched outside the hook):
/// best effort, a failure to store is only logged.
pub(crate) async fn deliver_unacked(
    device_id: Uuid,
    client: Arc<Client>,
    inbound: InboundSender,
    emitter: Emitter,
    batch: Arc<[LibInbound]>,
) {
    let messages = to_inbound_all(&client, &batch).await;
    if messages.is_empty() || !emitter.is_open() {
        return;
    }
    let count = messages.len();
    match deliver_and_wait(device_id, &inbound, messages, STORE_TIMEOUT).await {
        Ok(()) => info!(device_id = %device_id, count, "recovered inbound messages stored"),
        Err(why) => {
            warn!(device_id = %device_id, count, reason = %why, "recovered inbound messages not stored (already acknowledged to WhatsApp)");
        }
    }
}

#[cfg(test)]
mod tests;
