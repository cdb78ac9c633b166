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
use wa_core::messages::{MessageStatus, MessageType};
use wa_core::provider::{InboundDelivery, InboundMedia, InboundMessage, InboundSender};
use whatsapp_rust::download::{DownloadWriter, Downloadable};
use whatsapp_rust::futures::future::join_all;
use whatsapp_rust::prelude::{MessageExt, wa};
use whatsapp_rust::types::events::InboundMessage as LibInbound;
use whatsapp_rust::wacore::types::presence::ReceiptType;
use whatsapp_rust::wacore_binary::JidExt;
use whatsapp_rust::{Client, InboundDurabilityHook, Jid};

use super::{Emitter, mapping};

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
    /// Reactions, edits, polls, protocol traffic and other kinds the port has no
    /// type for.
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
    // Reactions and the rest carry no text; `text_content` only reads plain and
    // extended text.
    if base.reaction_message.is_set() || base.enc_reaction_message.is_set() {
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
    let Classified::Message { kind, text, media } = classify(&item.message) else {
        return None;
    };
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
        chat: source.chat.to_non_ad().to_string(),
        from: source.sender.to_non_ad().to_string(),
        from_phone,
        kind,
        text,
        media,
        timestamp: mapping::from_chrono(info.timestamp).unwrap_or_else(wa_core::time::now),
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
mod tests {
    use super::*;
    use tokio::sync::mpsc;
    use whatsapp_rust::prelude::MessageField;

    fn text(t: &str) -> wa::Message {
        wa::Message {
            conversation: Some(t.to_string()),
            ..Default::default()
        }
    }

    fn kind_of(m: &wa::Message) -> Option<MessageType> {
        match classify(m) {
            Classified::Message { kind, .. } => Some(kind),
            _ => None,
        }
    }

    fn text_of(m: &wa::Message) -> Option<String> {
        match classify(m) {
            Classified::Message { text, .. } => text,
            _ => None,
        }
    }

    #[test]
    fn plain_and_extended_text_are_text() {
        assert_eq!(kind_of(&text("hi")), Some(MessageType::Text));
        assert_eq!(text_of(&text("hi")).as_deref(), Some("hi"));
        let ext = wa::Message {
            extended_text_message: MessageField::some(wa::message::ExtendedTextMessage {
                text: Some("see https://example.com".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(kind_of(&ext), Some(MessageType::Text));
        assert!(matches!(classify(&text("")), Classified::Ignored));
    }

    #[test]
    fn wrappers_are_unwrapped() {
        let wrapped = wa::Message {
            ephemeral_message: MessageField::some(wa::message::FutureProofMessage {
                message: MessageField::some(text("secret")),
            }),
            ..Default::default()
        };
        assert_eq!(kind_of(&wrapped), Some(MessageType::Text));
    }

    #[test]
    fn media_kinds_carry_mime_caption_and_file_name() {
        let image = wa::Message {
            image_message: MessageField::some(wa::message::ImageMessage {
                caption: Some("cap".to_string()),
                mimetype: Some("image/png".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let Classified::Message {
            kind,
            text,
            media: Some(media),
        } = classify(&image)
        else {
            panic!("image");
        };
        assert_eq!(kind, MessageType::Image);
        assert_eq!(text.as_deref(), Some("cap"));
        assert_eq!(media.mime_type, "image/png");

        let doc = wa::Message {
            document_message: MessageField::some(wa::message::DocumentMessage {
                file_name: Some("a.pdf".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let Classified::Message {
            kind,
            media: Some(media),
            ..
        } = classify(&doc)
        else {
            panic!("document");
        };
        assert_eq!(kind, MessageType::Document);
        assert_eq!(media.mime_type, "application/octet-stream");
        assert_eq!(media.file_name.as_deref(), Some("a.pdf"));

        let cases = [
            (
                wa::Message {
                    video_message: MessageField::some(Default::default()),
                    ..Default::default()
                },
                MessageType::Video,
                "video/mp4",
            ),
            (
                wa::Message {
                    ptv_message: MessageField::some(Default::default()),
                    ..Default::default()
                },
                MessageType::Video,
                "video/mp4",
            ),
            (
                wa::Message {
                    audio_message: MessageField::some(Default::default()),
                    ..Default::default()
                },
                MessageType::Audio,
                "audio/ogg",
            ),
            (
                wa::Message {
                    sticker_message: MessageField::some(Default::default()),
                    ..Default::default()
                },
                MessageType::Sticker,
                "image/webp",
            ),
        ];
        for (message, expected, mime) in cases {
            let Classified::Message {
                kind,
                media: Some(media),
                ..
            } = classify(&message)
            else {
                panic!("{expected:?}");
            };
            assert_eq!(kind, expected);
            assert_eq!(media.mime_type, mime);
        }
    }

    #[test]
    fn location_and_contact_texts_are_their_names() {
        let loc = wa::Message {
            location_message: MessageField::some(wa::message::LocationMessage {
                degrees_latitude: Some(1.0),
                degrees_longitude: Some(2.0),
                name: Some("Cafe".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(kind_of(&loc), Some(MessageType::Location));
        assert_eq!(text_of(&loc).as_deref(), Some("Cafe"));

        let contact = wa::Message {
            contact_message: MessageField::some(wa::message::ContactMessage {
                display_name: Some("Bob".to_string()),
                vcard: Some("BEGIN:VCARD\nEND:VCARD".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(kind_of(&contact), Some(MessageType::Contact));
        assert_eq!(text_of(&contact).as_deref(), Some("Bob"));

        let several = wa::Message {
            contacts_array_message: MessageField::some(wa::message::ContactsArrayMessage {
                contacts: vec![wa::message::ContactMessage {
                    display_name: Some("Ann".to_string()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(kind_of(&several), Some(MessageType::Contact));
        assert_eq!(text_of(&several).as_deref(), Some("Ann"));
    }

    #[test]
    fn revoke_names_the_revoked_message() {
        let revoke = wa::Message {
            protocol_message: MessageField::some(wa::message::ProtocolMessage {
                r#type: Some(wa::message::protocol_message::Type::REVOKE),
                key: MessageField::some(wa::MessageKey {
                    id: Some("3EB0REVOKED".to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(matches!(
            classify(&revoke),
            Classified::Revoke { message_id } if message_id == "3EB0REVOKED"
        ));
    }

    #[test]
    fn reactions_and_other_protocol_messages_are_ignored() {
        let reaction = wa::Message {
            reaction_message: MessageField::some(wa::message::ReactionMessage {
                text: Some("+1".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(matches!(classify(&reaction), Classified::Ignored));
        let edit = wa::Message {
            protocol_message: MessageField::some(wa::message::ProtocolMessage {
                r#type: Some(wa::message::protocol_message::Type::MESSAGE_EDIT),
                edited_message: MessageField::some(text("changed")),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(matches!(classify(&edit), Classified::Ignored));
        assert!(matches!(
            classify(&wa::Message::default()),
            Classified::Ignored
        ));
    }

    #[test]
    fn receipt_types_map_to_statuses() {
        assert_eq!(
            receipt_status(&ReceiptType::Delivered),
            Some(MessageStatus::Delivered)
        );
        assert_eq!(
            receipt_status(&ReceiptType::Read),
            Some(MessageStatus::Read)
        );
        assert_eq!(
            receipt_status(&ReceiptType::Played),
            Some(MessageStatus::Played)
        );
        for other in [
            ReceiptType::Sent,
            ReceiptType::Sender,
            ReceiptType::Retry,
            ReceiptType::ReadSelf,
            ReceiptType::PlayedSelf,
            ReceiptType::ServerError,
            ReceiptType::Other("x".to_string()),
        ] {
            assert_eq!(receipt_status(&other), None, "{other:?}");
        }
    }

    #[test]
    fn phone_numbers_come_from_pn_jids_or_the_alternate() {
        let pn = Jid::pn("15551234567");
        let lid = Jid::lid("100000012345678");
        assert_eq!(known_phone(&pn, None).as_deref(), Some("15551234567"));
        assert_eq!(known_phone(&lid, Some(&pn)).as_deref(), Some("15551234567"));
        assert_eq!(known_phone(&lid, None), None);
        assert_eq!(known_phone(&lid, Some(&lid)), None);
        let group: Jid = "120363025246125486@g.us".parse().expect("group jid");
        assert_eq!(known_phone(&group, None), None);
    }

    #[test]
    fn status_updates_and_channels_are_not_conversations() {
        assert!(is_conversation(&Jid::pn("15551234567")));
        assert!(!is_conversation(&Jid::status_broadcast()));
        let channel: Jid = "120363000000000000@newsletter".parse().expect("jid");
        assert!(!is_conversation(&channel));
    }

    #[test]
    fn limited_writer_refuses_past_the_limit_and_stays_refused() {
        let (mut w, exceeded) = LimitedWriter::new(8, 1 << 40);
        assert!(w.write_all(b"12345678").is_ok());
        assert!(w.write_all(b"9").is_err());
        assert!(exceeded.load(Ordering::Relaxed));
        // A retry rewinds and truncates; it must still be refused.
        w.truncate(0).expect("truncate");
        w.seek(SeekFrom::Start(0)).expect("seek");
        assert!(w.write_all(b"1").is_err());
    }

    #[test]
    fn limited_writer_keeps_what_fits() {
        let (mut w, exceeded) = LimitedWriter::new(8, 4);
        w.write_all(b"abcd").expect("write");
        w.truncate(2).expect("truncate");
        w.seek(SeekFrom::Start(2)).expect("seek");
        w.write_all(b"xy").expect("write");
        assert_eq!(w.inner.into_inner(), b"abxy");
        assert!(!exceeded.load(Ordering::Relaxed));
    }

    fn message(id: &str) -> InboundMessage {
        InboundMessage {
            message_id: id.to_string(),
            chat: "15551234567@s.whatsapp.net".to_string(),
            from: "15551234567@s.whatsapp.net".to_string(),
            from_phone: Some("15551234567".to_string()),
            kind: MessageType::Text,
            text: Some("hi".to_string()),
            media: None,
            timestamp: wa_core::time::now(),
        }
    }

    #[tokio::test]
    async fn delivery_waits_for_the_worker_to_store_everything() {
        let (tx, mut rx) = mpsc::unbounded_channel::<InboundDelivery>();
        let device_id = Uuid::new_v4();
        let worker = tokio::spawn(async move {
            let mut ids = Vec::new();
            while let Some(d) = rx.recv().await {
                assert_eq!(d.device_id, device_id);
                ids.push(d.message.message_id.clone());
                let _ = d.stored.send(Ok(()));
            }
            ids
        });
        let result = deliver_and_wait(
            device_id,
            &tx,
            vec![message("A"), message("B")],
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(result, Ok(()));
        drop(tx);
        assert_eq!(worker.await.expect("worker"), vec!["A", "B"]);
    }

    #[tokio::test]
    async fn one_refusal_fails_the_batch() {
        let (tx, mut rx) = mpsc::unbounded_channel::<InboundDelivery>();
        tokio::spawn(async move {
            while let Some(d) = rx.recv().await {
                let answer = if d.message.message_id == "B" {
                    Err("disk full".to_string())
                } else {
                    Ok(())
                };
                let _ = d.stored.send(answer);
            }
        });
        let result = deliver_and_wait(
            Uuid::new_v4(),
            &tx,
            vec![message("A"), message("B")],
            Duration::from_secs(5),
        )
        .await;
        let why = result.expect_err("refused");
        assert!(why.contains("disk full"), "{why}");
    }

    #[tokio::test]
    async fn an_unanswered_delivery_times_out() {
        let (tx, mut rx) = mpsc::unbounded_channel::<InboundDelivery>();
        // Keeps the deliveries (and their answer channels) without answering.
        let keeper = tokio::spawn(async move {
            let mut kept = Vec::new();
            while let Some(d) = rx.recv().await {
                kept.push(d);
            }
            kept.len()
        });
        let started = std::time::Instant::now();
        let result = deliver_and_wait(
            Uuid::new_v4(),
            &tx,
            vec![message("A")],
            Duration::from_millis(100),
        )
        .await;
        assert!(result.expect_err("timeout").contains("within"));
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(tx);
        assert_eq!(keeper.await.expect("keeper"), 1);
    }

    #[tokio::test]
    async fn dropped_answers_and_a_gone_worker_fail() {
        let (tx, mut rx) = mpsc::unbounded_channel::<InboundDelivery>();
        tokio::spawn(async move {
            while let Some(d) = rx.recv().await {
                drop(d.stored);
            }
        });
        let result = deliver_and_wait(
            Uuid::new_v4(),
            &tx,
            vec![message("A")],
            Duration::from_secs(5),
        )
        .await;
        assert!(result.expect_err("dropped").contains("dropped"));

        let (tx, rx) = mpsc::unbounded_channel::<InboundDelivery>();
        drop(rx);
        let result = deliver_and_wait(
            Uuid::new_v4(),
            &tx,
            vec![message("A")],
            Duration::from_secs(5),
        )
        .await;
        assert!(result.expect_err("closed").contains("closed"));
    }
}
