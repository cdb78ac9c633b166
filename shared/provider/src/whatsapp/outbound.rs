//! Sending: from the port's [`OutboundMessage`] to a WhatsApp message on the wire, and
//! from the server's ack to the send's result.
//!
//! A send goes: build the protobuf (uploading the media first, for media types) →
//! register the message id in the session's [`AckTable`] → write it under our own id
//! (`SendOptions::message_id`, so WhatsApp's id is the one the worker fixed, and a
//! resend after a crash is deduplicated by WhatsApp) → wait for the server's ack.
//! Every network step is bounded: [`UPLOAD_TIMEOUT`], [`SEND_TIMEOUT`], [`ACK_TIMEOUT`].
//!
//! The builders ([`plain_message`], [`media_spec`]) are pure and unit-tested; only
//! [`send`] talks to WhatsApp.

use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info, warn};
use uuid::Uuid;
use wa_core::messages::{Content, Media};
use wa_core::provider::{OutboundMessage, ProviderFailure};
use wa_errors::ErrorCode;
use whatsapp_rust::download::MediaType;
use whatsapp_rust::media::{AudioOptions, DocumentOptions, ImageOptions, VideoOptions};
use whatsapp_rust::prelude::{MessageField, wa};
use whatsapp_rust::upload::UploadResponse;
use whatsapp_rust::wacore_binary::JidExt;
use whatsapp_rust::{Client, Jid, SendOptions, UploadOptions};

use super::acks::{AckOutcome, AckTable};
use super::classify::{classify_error, classify_nack, classify_send_error};
use super::compose;

/// How long the server may take to ack a message once it is on the wire. Past this
/// the send is `upstream_timeout` (`group_prekey_timeout` for groups); resending under
/// the same id is safe.
pub(crate) const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// Bound on the media upload (encrypt + HTTP upload with the library's own retries).
/// Generous: documents may be 100 MiB.
pub(crate) const UPLOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// Bound on the send itself until the stanza is written. Above the library's 75 s IQ
/// timeout, so the library's own (better classified) timeout normally fires first; a
/// group send may chain several IQs (metadata, devices, prekeys).
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(120);

/// The voice-note MIME type WhatsApp clients expect for Opus-in-Ogg audio.
const OGG_OPUS: &str = "audio/ogg; codecs=opus";

/// The message for content without media (text, location, contact); `None` for the
/// media types, which need an upload first ([`media_spec`]), and for reactions and polls
/// ([`compose::conversation_message`]).
pub(crate) fn plain_message(content: &Content) -> Option<wa::Message> {
    match content {
        Content::Text { text } => Some(wa::Message {
            conversation: Some(text.clone()),
            ..Default::default()
        }),
        Content::Location {
            latitude,
            longitude,
            name,
            address,
        } => Some(wa::Message {
            location_message: MessageField::some(wa::message::LocationMessage {
                degrees_latitude: Some(*latitude),
                degrees_longitude: Some(*longitude),
                name: name.clone(),
                address: address.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        Content::Contact {
            contact_name,
            vcard,
        } => Some(wa::Message {
            contact_message: MessageField::some(wa::message::ContactMessage {
                display_name: Some(contact_name.clone()),
                vcard: Some(vcard.clone()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        Content::Image { .. }
        | Content::Video { .. }
        | Content::Audio { .. }
        | Content::Document { .. }
        | Content::Sticker { .. }
        | Content::Reaction { .. }
        | Content::Poll { .. } => None,
    }
}

/// How a media content is uploaded and described, before the upload.
#[derive(Debug, Clone)]
pub(crate) enum MediaSpec {
    Image(ImageOptions),
    Video(VideoOptions),
    Audio(AudioOptions),
    Document(DocumentOptions),
    /// whatsapp-rust has no sticker builder: filled by hand in [`MediaSpec::message`].
    Sticker {
        mimetype: String,
        animated: bool,
    },
}

impl MediaSpec {
    /// The upload's media type (it selects the encryption keys and the upload path).
    pub(crate) fn media_type(&self) -> MediaType {
        match self {
            MediaSpec::Image(_) => MediaType::Image,
            MediaSpec::Video(_) => MediaType::Video,
            MediaSpec::Audio(_) => MediaType::Audio,
            MediaSpec::Document(_) => MediaType::Document,
            MediaSpec::Sticker { .. } => MediaType::Sticker,
        }
    }

    /// The message carrying the uploaded media.
    pub(crate) fn message(self, upload: UploadResponse) -> wa::Message {
        use whatsapp_rust::media;
        match self {
            MediaSpec::Image(opts) => media::image_message(upload, opts),
            MediaSpec::Video(opts) => media::video_message(upload, opts),
            MediaSpec::Audio(opts) => media::audio_message(upload, opts),
            MediaSpec::Document(opts) => media::document_message(upload, opts),
            MediaSpec::Sticker { mimetype, animated } => wa::Message {
                sticker_message: MessageField::some(wa::message::StickerMessage {
                    url: Some(upload.url),
                    direct_path: Some(upload.direct_path),
                    media_key: Some(upload.media_key.to_vec()),
                    file_sha256: Some(upload.file_sha256.to_vec()),
                    file_enc_sha256: Some(upload.file_enc_sha256.to_vec()),
                    file_length: Some(upload.file_length),
                    media_key_timestamp: Some(upload.media_key_timestamp),
                    mimetype: Some(mimetype),
                    is_animated: Some(animated),
                    ..Default::default()
                }),
                ..Default::default()
            },
        }
    }
}

/// The upload and message description of a media content (`bytes` is the file, used
/// to tell animated stickers); `None` for content without media.
pub(crate) fn media_spec(content: &Content, bytes: &[u8]) -> Option<MediaSpec> {
    let mimetype = |media: &Media| Some(media.mime_type.clone());
    match content {
        Content::Image { media, caption } => Some(MediaSpec::Image(ImageOptions {
            caption: caption.clone(),
            mimetype: mimetype(media),
            ..Default::default()
        })),
        Content::Video { media, caption } => Some(MediaSpec::Video(VideoOptions {
            caption: caption.clone(),
            mimetype: mimetype(media),
            ..Default::default()
        })),
        Content::Audio { media, ptt } => {
            // A bare `audio/ogg` is Opus in practice (the only Ogg codec WhatsApp
            // plays); without the codec parameter phones show voice notes as files.
            let mime = if media.mime_type.trim().eq_ignore_ascii_case("audio/ogg") {
                OGG_OPUS.to_string()
            } else {
                media.mime_type.clone()
            };
            Some(MediaSpec::Audio(AudioOptions {
                mimetype: Some(mime),
                ptt: Some(*ptt),
                ..Default::default()
            }))
        }
        Content::Document {
            media,
            file_name,
            caption,
        } => Some(MediaSpec::Document(DocumentOptions {
            mimetype: mimetype(media),
            file_name: file_name.clone(),
            // WhatsApp clients show the title as the document's name.
            title: file_name.clone(),
            caption: caption.clone(),
            ..Default::default()
        })),
        Content::Sticker { media } => Some(MediaSpec::Sticker {
            mimetype: media.mime_type.clone(),
            animated: whatsapp_rust::webp::is_animated(bytes),
        }),
        Content::Text { .. }
        | Content::Location { .. }
        | Content::Contact { .. }
        | Content::Reaction { .. }
        | Content::Poll { .. } => None,
    }
}

/// The result of a send from its ack outcome.
pub(crate) fn ack_result(outcome: AckOutcome, is_group: bool) -> Result<(), ProviderFailure> {
    match outcome {
        AckOutcome::Acked => Ok(()),
        AckOutcome::Nacked(code) => Err(classify_nack(&code, is_group)),
        AckOutcome::ConnectionLost => Err(ProviderFailure::new(
            ErrorCode::WhatsappConnectionLost,
            "the connection to WhatsApp was lost before the server acknowledged the message; \
             it may or may not have been sent (resending under the same id is safe)",
        )),
        AckOutcome::TimedOut => Err(timeout_failure(
            is_group,
            format!(
                "WhatsApp did not acknowledge the message within {} s",
                ACK_TIMEOUT.as_secs()
            ),
        )),
    }
}

/// A timeout of the send path: `group_prekey_timeout` for groups (their sends wait on
/// sender keys and prekeys), `upstream_timeout` otherwise.
fn timeout_failure(is_group: bool, message: String) -> ProviderFailure {
    if is_group {
        ProviderFailure::new(ErrorCode::GroupPrekeyTimeout, message)
    } else {
        ProviderFailure::new(ErrorCode::UpstreamTimeout, message)
    }
}

/// Builds the message with its quote and mentions ([`compose::context_info`]).
async fn prepare(
    device_id: Uuid,
    client: &Client,
    message: &OutboundMessage,
) -> Result<wa::Message, ProviderFailure> {
    let mut wa_message = content_message(device_id, client, message).await?;
    if let Some(ctx) =
        compose::context_info(message.reply_to.as_ref(), &message.mentions, &message.to)
    {
        compose::attach_context(&mut wa_message, ctx);
    }
    Ok(wa_message)
}

/// Builds the message's content, uploading its media first when it has some. A media type
/// without bytes is a `provider_error` (the worker always supplies them); upload
/// failures are classified by [`classify_error`], an upload past [`UPLOAD_TIMEOUT`]
/// is `upstream_timeout`.
async fn content_message(
    device_id: Uuid,
    client: &Client,
    message: &OutboundMessage,
) -> Result<wa::Message, ProviderFailure> {
    if let Some(plain) = plain_message(&message.content) {
        return Ok(plain);
    }
    let now_ms = (wa_core::time::now().unix_timestamp_nanos() / 1_000_000) as i64;
    if let Some(m) = compose::conversation_message(&message.content, now_ms) {
        return Ok(m);
    }
    if let Content::Poll { .. } = message.content {
        return Err(ProviderFailure::new(
            ErrorCode::InternalError,
            "the poll's stored secret is not hex",
        ));
    }
    let kind = message.content.kind();
    let Some(bytes) = message.media.as_ref() else {
        return Err(ProviderFailure::new(
            ErrorCode::ProviderError,
            format!("the {} message has no media bytes to send", kind.as_str()),
        ));
    };
    let Some(spec) = media_spec(&message.content, bytes) else {
        // Unreachable: every content without a plain message is a media type.
        return Err(ProviderFailure::new(
            ErrorCode::InternalError,
            format!("no media description for a {} message", kind.as_str()),
        ));
    };
    let size = bytes.len();
    let upload = client.upload(bytes.clone(), spec.media_type(), UploadOptions::new());
    let upload = match tokio::time::timeout(UPLOAD_TIMEOUT, upload).await {
        Ok(Ok(upload)) => upload,
        Ok(Err(e)) => {
            let e: &(dyn std::error::Error + 'static) = e.as_ref();
            let failure = classify_error(e, false);
            warn!(device_id = %device_id, message_id = %message.message_id, size, code = %failure.code, error = %e, "media upload failed");
            return Err(ProviderFailure::new(
                failure.code,
                format!("media upload failed: {}", failure.message),
            ));
        }
        Err(_) => {
            warn!(device_id = %device_id, message_id = %message.message_id, size, "media upload timed out");
            return Err(ProviderFailure::new(
                ErrorCode::UpstreamTimeout,
                format!(
                    "the media upload did not finish within {} s",
                    UPLOAD_TIMEOUT.as_secs()
                ),
            ));
        }
    };
    debug!(device_id = %device_id, message_id = %message.message_id, size, "media uploaded");
    Ok(spec.message(upload))
}

/// Sends `message` to `to` on a live client and waits for WhatsApp's ack.
///
/// `Ok` only once the server acked the message. Failures: `provider_error` for a
/// media type without bytes; upload errors per [`classify_error`]; send errors per
/// [`classify_send_error`] (`device_not_connected` when the library found no socket
/// before writing, `whatsapp_connection_lost` mid-send, ...); a nack per
/// [`classify_nack`]; the connection dropping before the ack →
/// `whatsapp_connection_lost`; no ack within [`ACK_TIMEOUT`] (or the write not done
/// within [`SEND_TIMEOUT`]) → `upstream_timeout`, or `group_prekey_timeout` for groups.
pub(crate) async fn send(
    device_id: Uuid,
    client: &Client,
    acks: &Arc<AckTable>,
    to: Jid,
    message: &OutboundMessage,
) -> Result<(), ProviderFailure> {
    let is_group = to.is_group();
    let kind = message.content.kind();
    let id = message.message_id.as_str();
    let wa_message = prepare(device_id, client, message).await?;

    // Registered before the write: the ack may be dispatched before the send
    // future completes. Dropping `pending` (any return below) unregisters it.
    let pending = acks.register(id);
    let options = SendOptions::default().with_message_id(id);
    let sent = tokio::time::timeout(
        SEND_TIMEOUT,
        client.send_message_with_options(to, wa_message, options),
    )
    .await;
    match sent {
        Ok(Ok(result)) => {
            if result.message_id != id {
                // Never seen: the library uses the id it is given. The ack would
                // carry the other id, so this send would end in a timeout.
                warn!(device_id = %device_id, message_id = %id, wa_id = %result.message_id, "WhatsApp used another message id");
            }
        }
        Ok(Err(e)) => {
            let failure = classify_send_error(&e, is_group);
            warn!(device_id = %device_id, message_id = %id, kind = kind.as_str(), code = %failure.code, error = %e, "send failed");
            return Err(failure);
        }
        Err(_) => {
            warn!(device_id = %device_id, message_id = %id, kind = kind.as_str(), "send timed out before the message was written");
            return Err(timeout_failure(
                is_group,
                format!(
                    "the message could not be handed to WhatsApp within {} s",
                    SEND_TIMEOUT.as_secs()
                ),
            ));
        }
    }

    let outcome = pending.wait(ACK_TIMEOUT).await;
    let result = ack_result(outcome, is_group);
    match &result {
        Ok(()) => {
            info!(device_id = %device_id, message_id = %id, kind = kind.as_str(), "message sent")
        }
        Err(failure) => {
            warn!(device_id = %device_id, message_id = %id, kind = kind.as_str(), code = %failure.code, "message not acknowledged");
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use wa_core::messages::MediaSource;

    fn media(mime: &str) -> Media {
        Media {
            mime_type: mime.to_string(),
            source: MediaSource::Url {
                url: "https://example.com/f".to_string(),
            },
        }
    }

    #[test]
    fn text_is_a_conversation() {
        let m = plain_message(&Content::Text {
            text: "hello".to_string(),
        })
        .expect("plain");
        assert_eq!(m.conversation.as_deref(), Some("hello"));
    }

    #[test]
    fn location_carries_coordinates_name_and_address() {
        let m = plain_message(&Content::Location {
            latitude: 48.85,
            longitude: 2.35,
            name: Some("Paris".to_string()),
            address: None,
        })
        .expect("plain");
        let loc = m.location_message.as_option().expect("location");
        assert_eq!(loc.degrees_latitude, Some(48.85));
        assert_eq!(loc.degrees_longitude, Some(2.35));
        assert_eq!(loc.name.as_deref(), Some("Paris"));
        assert_eq!(loc.address, None);
    }

    #[test]
    fn contact_carries_name_and_vcard() {
        let vcard = "BEGIN:VCARD\nVERSION:3.0\nFN:Bob\nEND:VCARD";
        let m = plain_message(&Content::Contact {
            contact_name: "Bob".to_string(),
            vcard: vcard.to_string(),
        })
        .expect("plain");
        let c = m.contact_message.as_option().expect("contact");
        assert_eq!(c.display_name.as_deref(), Some("Bob"));
        assert_eq!(c.vcard.as_deref(), Some(vcard));
    }

    #[test]
    fn media_types_have_no_plain_message() {
        let content = Content::Image {
            media: media("image/png"),
            caption: None,
        };
        assert!(plain_message(&content).is_none());
        assert!(media_spec(&content, b"x").is_some());
    }

    #[test]
    fn image_and_video_keep_mime_and_caption() {
        let spec = media_spec(
            &Content::Image {
                media: media("image/png"),
                caption: Some("look".to_string()),
            },
            b"",
        );
        let Some(spec @ MediaSpec::Image(_)) = spec else {
            panic!("image spec: {spec:?}");
        };
        assert_eq!(spec.media_type(), MediaType::Image);
        let MediaSpec::Image(opts) = spec else {
            unreachable!()
        };
        assert_eq!(opts.mimetype.as_deref(), Some("image/png"));
        assert_eq!(opts.caption.as_deref(), Some("look"));

        let spec = media_spec(
            &Content::Video {
                media: media("video/mp4"),
                caption: None,
            },
            b"",
        );
        let Some(MediaSpec::Video(opts)) = spec else {
            panic!("video spec: {spec:?}");
        };
        assert_eq!(opts.mimetype.as_deref(), Some("video/mp4"));
        assert_eq!(opts.caption, None);
    }

    #[test]
    fn voice_notes_get_the_opus_codec() {
        let spec = media_spec(
            &Content::Audio {
                media: media("audio/ogg"),
                ptt: true,
            },
            b"",
        );
        let Some(MediaSpec::Audio(opts)) = spec else {
            panic!("audio spec: {spec:?}");
        };
        assert_eq!(opts.mimetype.as_deref(), Some(OGG_OPUS));
        assert_eq!(opts.ptt, Some(true));

        let spec = media_spec(
            &Content::Audio {
                media: media("audio/mpeg"),
                ptt: false,
            },
            b"",
        );
        let Some(MediaSpec::Audio(opts)) = spec else {
            panic!("audio spec: {spec:?}");
        };
        assert_eq!(opts.mimetype.as_deref(), Some("audio/mpeg"));
        assert_eq!(opts.ptt, Some(false));
    }

    #[test]
    fn documents_keep_file_name_and_caption() {
        let spec = media_spec(
            &Content::Document {
                media: media("application/pdf"),
                file_name: Some("report.pdf".to_string()),
                caption: Some("Q3".to_string()),
            },
            b"",
        );
        let Some(spec @ MediaSpec::Document(_)) = spec else {
            panic!("document spec: {spec:?}");
        };
        assert_eq!(spec.media_type(), MediaType::Document);
        let MediaSpec::Document(opts) = spec else {
            unreachable!()
        };
        assert_eq!(opts.mimetype.as_deref(), Some("application/pdf"));
        assert_eq!(opts.file_name.as_deref(), Some("report.pdf"));
        assert_eq!(opts.caption.as_deref(), Some("Q3"));
    }

    #[test]
    fn stickers_upload_as_stickers_and_detect_animation() {
        let content = Content::Sticker {
            media: media("image/webp"),
        };
        let still = media_spec(&content, b"RIFF\0\0\0\0WEBPVP8 \0\0\0\0");
        let Some(
            spec @ MediaSpec::Sticker {
                animated: false, ..
            },
        ) = still
        else {
            panic!("still sticker: {still:?}");
        };
        assert_eq!(spec.media_type(), MediaType::Sticker);
        let mut animated = b"RIFF\0\0\0\0WEBP".to_vec();
        animated.extend_from_slice(b"ANIM\x06\0\0\0\0\0\0\0\0\0");
        assert!(matches!(
            media_spec(&content, &animated),
            Some(MediaSpec::Sticker { animated: true, .. })
        ));
    }

    #[test]
    fn ack_outcomes_map_to_results() {
        assert_eq!(ack_result(AckOutcome::Acked, false), Ok(()));
        let code = |o, g| ack_result(o, g).map_err(|f| f.code);
        assert_eq!(
            code(AckOutcome::Nacked("403".into()), true),
            Err(ErrorCode::GroupPostingRestricted)
        );
        assert_eq!(
            code(AckOutcome::Nacked("429".into()), false),
            Err(ErrorCode::ProviderRateLimit)
        );
        assert_eq!(
            code(AckOutcome::Nacked("479".into()), false),
            Err(ErrorCode::ProviderError)
        );
        assert_eq!(
            code(AckOutcome::ConnectionLost, false),
            Err(ErrorCode::WhatsappConnectionLost)
        );
        assert_eq!(
            code(AckOutcome::TimedOut, false),
            Err(ErrorCode::UpstreamTimeout)
        );
        assert_eq!(
            code(AckOutcome::TimedOut, true),
            Err(ErrorCode::GroupPrekeyTimeout)
        );
    }
}
