//! Messages: their records, the validation of a send request, and the media rules
//! (MIME allow-lists per type, size limits, magic numbers).

use base64::Engine;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use wa_errors::{ApiError, ApiResult, ErrorCode};

use crate::time::OffsetDateTime;

/// What kind of message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageType {
    Text,
    Image,
    Video,
    Audio,
    Document,
    Sticker,
    Location,
    Contact,
}

impl MessageType {
    pub const ALL: [MessageType; 8] = [
        MessageType::Text,
        MessageType::Image,
        MessageType::Video,
        MessageType::Audio,
        MessageType::Document,
        MessageType::Sticker,
        MessageType::Location,
        MessageType::Contact,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            MessageType::Text => "text",
            MessageType::Image => "image",
            MessageType::Video => "video",
            MessageType::Audio => "audio",
            MessageType::Document => "document",
            MessageType::Sticker => "sticker",
            MessageType::Location => "location",
            MessageType::Contact => "contact",
        }
    }

    pub fn parse(s: &str) -> Option<MessageType> {
        MessageType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn is_media(self) -> bool {
        matches!(
            self,
            MessageType::Image
                | MessageType::Video
                | MessageType::Audio
                | MessageType::Document
                | MessageType::Sticker
        )
    }

    /// The MIME types a media message of this type may declare.
    pub fn allowed_mime_types(self) -> &'static [&'static str] {
        match self {
            MessageType::Image => &["image/jpeg", "image/png", "image/webp"],
            MessageType::Video => &["video/mp4", "video/3gpp"],
            MessageType::Audio => &[
                "audio/ogg",
                "audio/mpeg",
                "audio/mp4",
                "audio/aac",
                "audio/amr",
            ],
            MessageType::Sticker => &["image/webp"],
            MessageType::Document => &[
                "application/pdf",
                "application/msword",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "application/vnd.ms-excel",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "application/vnd.ms-powerpoint",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                "application/zip",
                "text/plain",
                "text/csv",
                "application/octet-stream",
            ],
            _ => &[],
        }
    }

    /// The largest media file of this type, in bytes (after base64 decoding).
    pub fn max_media_bytes(self) -> usize {
        const MIB: usize = 1024 * 1024;
        match self {
            MessageType::Image => 5 * MIB,
            MessageType::Video | MessageType::Audio => 16 * MIB,
            MessageType::Document => 100 * MIB,
            MessageType::Sticker => 500 * 1024,
            _ => 0,
        }
    }
}

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Accepted, waiting in the queue (also while a rate-limited send waits for its retry).
    Queued,
    /// Being handed to WhatsApp.
    Sending,
    /// WhatsApp accepted it.
    Sent,
    Delivered,
    Read,
    Played,
    /// It will not be sent; `error` says why.
    Failed,
    /// Canceled before it was sent.
    Canceled,
    /// An incoming message.
    Received,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 9] = [
        MessageStatus::Queued,
        MessageStatus::Sending,
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Read,
        MessageStatus::Played,
        MessageStatus::Failed,
        MessageStatus::Canceled,
        MessageStatus::Received,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Sending => "sending",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
            MessageStatus::Played => "played",
            MessageStatus::Failed => "failed",
            MessageStatus::Canceled => "canceled",
            MessageStatus::Received => "received",
        }
    }

    pub fn parse(s: &str) -> Option<MessageStatus> {
        MessageStatus::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether the send is over (one way or another).
    pub fn is_final(self) -> bool {
        !matches!(self, MessageStatus::Queued | MessageStatus::Sending)
    }
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Outbound,
    Inbound,
}

/// Why a send failed (or is waiting for a retry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageError {
    pub code: ErrorCode,
    pub message: String,
}

/// Where a media file comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum MediaSource {
    /// Sent in the request; the bytes are stored beside the message.
    Inline { size: u64, sha256: String },
    /// Fetched by the worker.
    Url { url: String },
}

/// A media file of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    pub mime_type: String,
    #[serde(flatten)]
    pub source: MediaSource,
}

/// The validated content of an outbound message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Content {
    Text {
        text: String,
    },
    Image {
        media: Media,
        caption: Option<String>,
    },
    Video {
        media: Media,
        caption: Option<String>,
    },
    Audio {
        media: Media,
        ptt: bool,
    },
    Document {
        media: Media,
        file_name: Option<String>,
        caption: Option<String>,
    },
    Sticker {
        media: Media,
    },
    Location {
        latitude: f64,
        longitude: f64,
        name: Option<String>,
        address: Option<String>,
    },
    Contact {
        contact_name: String,
        vcard: String,
    },
}

impl Content {
    pub fn kind(&self) -> MessageType {
        match self {
            Content::Text { .. } => MessageType::Text,
            Content::Image { .. } => MessageType::Image,
            Content::Video { .. } => MessageType::Video,
            Content::Audio { .. } => MessageType::Audio,
            Content::Document { .. } => MessageType::Document,
            Content::Sticker { .. } => MessageType::Sticker,
            Content::Location { .. } => MessageType::Location,
            Content::Contact { .. } => MessageType::Contact,
        }
    }

    pub fn media(&self) -> Option<&Media> {
        match self {
            Content::Image { media, .. }
            | Content::Video { media, .. }
            | Content::Audio { media, .. }
            | Content::Document { media, .. }
            | Content::Sticker { media } => Some(media),
            _ => None,
        }
    }

    /// The text shown for the message: the text, a caption, a place or a contact's name.
    pub fn display_text(&self) -> Option<String> {
        match self {
            Content::Text { text } => Some(text.clone()),
            Content::Image { caption, .. }
            | Content::Video { caption, .. }
            | Content::Document { caption, .. } => caption.clone(),
            Content::Location { name, .. } => name.clone(),
            Content::Contact { contact_name, .. } => Some(contact_name.clone()),
            _ => None,
        }
    }
}

/// A stored message, outbound or inbound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The WhatsApp message id (fixed when the send is accepted).
    pub message_id: String,
    pub device_id: Uuid,
    pub app_id: Uuid,
    pub direction: Direction,
    /// The recipient's JID (outbound) or this account (inbound).
    pub to: String,
    /// The sender's JID (inbound) or this account (outbound).
    pub from: Option<String>,
    /// The sender's phone number when WhatsApp lets us resolve an `@lid` sender.
    pub from_phone: Option<String>,
    /// The chat: the peer, or the group.
    pub chat: String,
    pub kind: MessageType,
    pub status: MessageStatus,
    pub error: Option<MessageError>,
    pub attempts: u32,
    pub idempotency_key: Option<String>,
    /// Outbound: what to send. Inbound: what arrived (media by reference).
    pub content: Option<Content>,
    pub text: Option<String>,
    /// Inbound media stored by the server.
    pub media_path: Option<String>,
    pub mime_type: Option<String>,
    /// Inbound media: size in bytes and SHA-256 (hex).
    pub media_size: Option<u64>,
    pub media_sha256: Option<String>,
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "crate::time::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "crate::time::rfc3339::option")]
    pub sent_at: Option<OffsetDateTime>,
    /// When a rate-limited send is retried.
    #[serde(with = "crate::time::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
}

/// A change to a message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageUpdate {
    pub status: Option<MessageStatus>,
    pub error: Option<Option<MessageError>>,
    pub attempts: Option<u32>,
    pub sent_at: Option<Option<OffsetDateTime>>,
    pub next_attempt_at: Option<Option<OffsetDateTime>>,
    pub updated_at: Option<OffsetDateTime>,
}

impl MessageUpdate {
    pub fn apply_to(&self, m: &mut Message) {
        if let Some(s) = self.status {
            m.status = s;
        }
        if let Some(e) = &self.error {
            m.error = e.clone();
        }
        if let Some(a) = self.attempts {
            m.attempts = a;
        }
        if let Some(s) = self.sent_at {
            m.sent_at = s;
        }
        if let Some(n) = self.next_attempt_at {
            m.next_attempt_at = n;
        }
        if let Some(t) = self.updated_at {
            m.updated_at = t;
        }
    }
}

/// A new WhatsApp-style message id: `3EB0` and 18 random upper-case hex digits.
pub fn new_message_id() -> String {
    let u = Uuid::new_v4();
    let hex: String = u.as_bytes()[..9]
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    format!("3EB0{hex}")
}

/// Whether a string may be a message id in a path: 1-128 chars of `[A-Za-z0-9._:-]`.
pub fn is_valid_message_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The body of a send, as received. Every field is optional here; `validate` applies the
/// rules of the message's type.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"to": "+15550001111", "text": "Your order shipped"}))]
pub struct SendRequest {
    /// Phone number (digits, optional +) or JID ending @s.whatsapp.net, @lid or @g.us.
    #[schema(value_type = String, required = true, pattern = r"^\+?[0-9]{6,20}$|^[0-9]{6,20}@(s\.whatsapp\.net|lid)$|^[0-9]{6,20}(-[0-9]{6,20})?@g\.us$")]
    pub to: Option<String>,
    /// text (default), image, video, audio, document, sticker, location, contact.
    #[serde(rename = "type")]
    #[schema(value_type = Option<MessageType>)]
    pub kind: Option<String>,
    /// text: 1-65536 characters.
    #[schema(min_length = 1, max_length = 65536)]
    pub text: Option<String>,
    /// Media: the declared MIME type (see the allow-list per type).
    pub mime_type: Option<String>,
    /// Media: the file, base64. Exactly one of `data_base64` and `url`.
    pub data_base64: Option<String>,
    /// Media: an http(s) URL the server fetches.
    pub url: Option<String>,
    /// image, video, document: up to 1024 characters.
    #[schema(max_length = 1024)]
    pub caption: Option<String>,
    /// audio: send as a voice note.
    pub ptt: Option<bool>,
    /// document: the file name shown to the recipient.
    pub file_name: Option<String>,
    /// location: -90..90.
    #[schema(minimum = -90.0, maximum = 90.0)]
    pub latitude: Option<f64>,
    /// location: -180..180.
    #[schema(minimum = -180.0, maximum = 180.0)]
    pub longitude: Option<f64>,
    /// location: the place's name.
    pub name: Option<String>,
    /// location: the place's address.
    pub address: Option<String>,
    /// contact: the name shown.
    pub contact_name: Option<String>,
    /// contact: a vCard (BEGIN:VCARD ... END:VCARD).
    pub vcard: Option<String>,
}

/// A validated send: the recipient, the content and the inline media bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSend {
    pub to: String,
    pub content: Content,
    pub media: Option<Vec<u8>>,
}

pub const MAX_TEXT_CHARS: usize = 65_536;
pub const MAX_CAPTION_CHARS: usize = 1024;
pub const MAX_VCARD_BYTES: usize = 64 * 1024;

fn chars_between(field: &'static str, value: &str, min: usize, max: usize) -> ApiResult<()> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(ApiError::validation(
            field,
            format!("`{field}` must be {min}-{max} characters"),
        ));
    }
    Ok(())
}

fn not_for(field: &'static str, kind: MessageType) -> ApiError {
    ApiError::validation(
        field,
        format!("`{field}` is not allowed for type {}", kind.as_str()),
    )
}

fn required(field: &'static str, kind: MessageType) -> ApiError {
    ApiError::validation(
        field,
        format!("`{field}` is required for type {}", kind.as_str()),
    )
}

impl SendRequest {
    /// Applies every rule; the error names the first offending field.
    pub fn validate(&self, allow_private_urls: bool) -> ApiResult<ValidSend> {
        let to = match &self.to {
            Some(t) => crate::jid::normalize("to", t)?,
            None => return Err(ApiError::validation("to", "`to` is required")),
        };
        let kind = match self.kind.as_deref() {
            None => MessageType::Text,
            Some(k) => MessageType::parse(k).ok_or_else(|| {
                ApiError::validation(
                    "type",
                    "`type` must be one of: text, image, video, audio, document, sticker, location, contact",
                )
            })?,
        };
        // Fields that belong to no rule of this type are refused, so a typo never passes.
        let present = |f: &'static str| -> bool {
            match f {
                "text" => self.text.is_some(),
                "mime_type" => self.mime_type.is_some(),
                "data_base64" => self.data_base64.is_some(),
                "url" => self.url.is_some(),
                "caption" => self.caption.is_some(),
                "ptt" => self.ptt.is_some(),
                "file_name" => self.file_name.is_some(),
                "latitude" => self.latitude.is_some(),
                "longitude" => self.longitude.is_some(),
                "name" => self.name.is_some(),
                "address" => self.address.is_some(),
                "contact_name" => self.contact_name.is_some(),
                "vcard" => self.vcard.is_some(),
                _ => false,
            }
        };
        let allowed: &[&'static str] = match kind {
            MessageType::Text => &["text"],
            MessageType::Image | MessageType::Video => {
                &["mime_type", "data_base64", "url", "caption"]
            }
            MessageType::Audio => &["mime_type", "data_base64", "url", "ptt"],
            MessageType::Document => &["mime_type", "data_base64", "url", "caption", "file_name"],
            MessageType::Sticker => &["mime_type", "data_base64", "url"],
            MessageType::Location => &["latitude", "longitude", "name", "address"],
            MessageType::Contact => &["contact_name", "vcard"],
        };
        for f in [
            "text",
            "mime_type",
            "data_base64",
            "url",
            "caption",
            "ptt",
            "file_name",
            "latitude",
            "longitude",
            "name",
            "address",
            "contact_name",
            "vcard",
        ] {
            if present(f) && !allowed.contains(&f) {
                return Err(not_for(f, kind));
            }
        }
        let caption = match &self.caption {
            Some(c) => {
                chars_between("caption", c, 0, MAX_CAPTION_CHARS)?;
                Some(c.clone()).filter(|c| !c.is_empty())
            }
            None => None,
        };
        let (content, media) = match kind {
            MessageType::Text => {
                let text = self.text.as_deref().ok_or_else(|| required("text", kind))?;
                chars_between("text", text, 1, MAX_TEXT_CHARS)?;
                if text.trim().is_empty() {
                    return Err(ApiError::validation("text", "`text` must not be blank"));
                }
                (
                    Content::Text {
                        text: text.to_owned(),
                    },
                    None,
                )
            }
            MessageType::Location => {
                let lat = self.latitude.ok_or_else(|| required("latitude", kind))?;
                let lon = self.longitude.ok_or_else(|| required("longitude", kind))?;
                if !(-90.0..=90.0).contains(&lat) || !lat.is_finite() {
                    return Err(ApiError::validation(
                        "latitude",
                        "`latitude` must be between -90 and 90",
                    ));
                }
                if !(-180.0..=180.0).contains(&lon) || !lon.is_finite() {
                    return Err(ApiError::validation(
                        "longitude",
                        "`longitude` must be between -180 and 180",
                    ));
                }
                if let Some(n) = &self.name {
                    chars_between("name", n, 1, 1000)?;
                }
                if let Some(a) = &self.address {
                    chars_between("address", a, 1, 1000)?;
                }
                (
                    Content::Location {
                        latitude: lat,
                        longitude: lon,
                        name: self.name.clone(),
                        address: self.address.clone(),
                    },
                    None,
                )
            }
            MessageType::Contact => {
                let name = self
                    .contact_name
                    .as_deref()
                    .ok_or_else(|| required("contact_name", kind))?;
                chars_between("contact_name", name.trim(), 1, 256)?;
                let vcard = self
                    .vcard
                    .as_deref()
                    .ok_or_else(|| required("vcard", kind))?;
                let v = vcard.trim();
                if v.len() > MAX_VCARD_BYTES
                    || !v.to_ascii_uppercase().starts_with("BEGIN:VCARD")
                    || !v.to_ascii_uppercase().ends_with("END:VCARD")
                {
                    return Err(ApiError::validation(
                        "vcard",
                        "`vcard` must be a vCard (BEGIN:VCARD ... END:VCARD), at most 64 KiB",
                    ));
                }
                (
                    Content::Contact {
                        contact_name: name.trim().to_owned(),
                        vcard: v.to_owned(),
                    },
                    None,
                )
            }
            _ => {
                let (media, bytes) = self.validate_media(kind, allow_private_urls)?;
                let content = match kind {
                    MessageType::Image => Content::Image { media, caption },
                    MessageType::Video => Content::Video { media, caption },
                    MessageType::Audio => Content::Audio {
                        media,
                        ptt: self.ptt.unwrap_or(false),
                    },
                    MessageType::Document => {
                        if let Some(f) = &self.file_name {
                            chars_between("file_name", f, 1, 255)?;
                            if f.contains(['/', '\\']) || f.chars().any(char::is_control) {
                                return Err(ApiError::validation(
                                    "file_name",
                                    "`file_name` must not contain slashes or control characters",
                                ));
                            }
                        }
                        Content::Document {
                            media,
                            file_name: self.file_name.clone(),
                            caption,
                        }
                    }
                    _ => Content::Sticker { media },
                };
                (content, bytes)
            }
        };
        Ok(ValidSend { to, content, media })
    }

    fn validate_media(
        &self,
        kind: MessageType,
        allow_private: bool,
    ) -> ApiResult<(Media, Option<Vec<u8>>)> {
        let mime = self
            .mime_type
            .as_deref()
            .ok_or_else(|| required("mime_type", kind))?
            .trim()
            .to_ascii_lowercase();
        // `audio/ogg; codecs=opus` declares audio/ogg.
        let essence = mime.split(';').next().unwrap_or("").trim().to_owned();
        if !kind.allowed_mime_types().contains(&essence.as_str()) {
            return Err(ApiError::validation(
                "mime_type",
                format!(
                    "`mime_type` {essence} is not allowed for {}; allowed: {}",
                    kind.as_str(),
                    kind.allowed_mime_types().join(", ")
                ),
            ));
        }
        match (&self.data_base64, &self.url) {
            (Some(_), Some(_)) | (None, None) => Err(ApiError::validation(
                "data_base64",
                "exactly one of `data_base64` and `url` is required",
            )),
            (Some(b64), None) => {
                let cleaned: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
                let cleaned = cleaned
                    .split_once("base64,")
                    .filter(|(prefix, _)| prefix.starts_with("data:"))
                    .map(|(_, rest)| rest.to_owned())
                    .unwrap_or(cleaned);
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(cleaned.as_bytes())
                    .map_err(|_| {
                        ApiError::validation("data_base64", "`data_base64` is not valid base64")
                    })?;
                check_bytes(kind, &essence, &bytes, "data_base64")?;
                use sha2::Digest;
                let sha256 = crate::auth::hex(&sha2::Sha256::digest(&bytes));
                Ok((
                    Media {
                        mime_type: essence,
                        source: MediaSource::Inline {
                            size: bytes.len() as u64,
                            sha256,
                        },
                    },
                    Some(bytes),
                ))
            }
            (None, Some(url)) => {
                let u = crate::net::check_outbound_url(url.trim(), allow_private)
                    .map_err(|r| ApiError::validation("url", format!("`url` {}", r.0)))?;
                Ok((
                    Media {
                        mime_type: essence,
                        source: MediaSource::Url { url: u.to_string() },
                    },
                    None,
                ))
            }
        }
    }
}

/// Checks media bytes: not empty, within the type's size limit, and starting with the
/// magic number of the declared MIME type.
pub fn check_bytes(
    kind: MessageType,
    mime: &str,
    bytes: &[u8],
    field: &'static str,
) -> ApiResult<()> {
    if bytes.is_empty() {
        return Err(ApiError::validation(field, "the media file is empty"));
    }
    if bytes.len() > kind.max_media_bytes() {
        return Err(ApiError::validation(
            field,
            format!(
                "the media file is {} bytes; {} allows at most {}",
                bytes.len(),
                kind.as_str(),
                kind.max_media_bytes()
            ),
        ));
    }
    if !magic_matches(mime, bytes) {
        return Err(ApiError::validation(
            field,
            format!("the file's content is not {mime}"),
        ));
    }
    Ok(())
}

/// Whether `bytes` look like `mime` (its magic number; UTF-8 text for text types).
pub fn magic_matches(mime: &str, b: &[u8]) -> bool {
    let ftyp = b.len() >= 12 && &b[4..8] == b"ftyp";
    match mime {
        "image/jpeg" => b.starts_with(&[0xFF, 0xD8, 0xFF]),
        "image/png" => b.starts_with(b"\x89PNG\r\n\x1a\n"),
        "image/webp" => b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP",
        "video/mp4" | "video/3gpp" | "audio/mp4" => ftyp,
        "audio/ogg" => b.starts_with(b"OggS"),
        "audio/mpeg" => {
            b.starts_with(b"ID3") || (b.len() >= 2 && b[0] == 0xFF && (b[1] & 0xE0) == 0xE0)
        }
        "audio/aac" => b.len() >= 2 && b[0] == 0xFF && (b[1] & 0xF6) == 0xF0,
        "audio/amr" => b.starts_with(b"#!AMR"),
        "application/pdf" => b.starts_with(b"%PDF-"),
        "application/zip"
        | "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        | "application/vnd.openxmlformats-officedocument.presentationml.presentation" => {
            b.starts_with(b"PK\x03\x04")
        }
        "application/msword" | "application/vnd.ms-excel" | "application/vnd.ms-powerpoint" => {
            b.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1])
        }
        "text/plain" | "text/csv" => std::str::from_utf8(b).is_ok() && !b.contains(&0),
        "application/octet-stream" => true,
        _ => false,
    }
}

/// Checks an `Idempotency-Key` header value: 1-255 visible ASCII characters.
pub fn validate_idempotency_key(raw: &str) -> ApiResult<String> {
    if (1..=255).contains(&raw.len()) && raw.bytes().all(|b| (0x21..=0x7E).contains(&b)) {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::validation(
            "Idempotency-Key",
            "`Idempotency-Key` must be 1-255 visible ASCII characters",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F'];
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const WEBP: &[u8] = b"RIFF\x10\0\0\0WEBPVP8 ";
    const MP4: &[u8] = b"\0\0\0\x18ftypmp42\0\0\0\0";
    const OGG: &[u8] = b"OggS\0\x02\0\0\0\0";
    const PDF: &[u8] = b"%PDF-1.7\n";

    fn req(v: serde_json::Value) -> SendRequest {
        serde_json::from_value(v).unwrap()
    }

    fn field(v: serde_json::Value) -> String {
        let e = req(v).validate(false).unwrap_err();
        assert_eq!(e.code(), ErrorCode::ValidationError);
        e.details()["field"].as_str().unwrap().to_owned()
    }

    #[test]
    fn every_type_validates() {
        let ok = [
            json!({"to": "+15551230001", "text": "hi"}),
            json!({"to": "15551230001@s.whatsapp.net", "type": "text", "text": "hi"}),
            json!({"to": "100000000000001@lid", "type": "image", "mime_type": "image/jpeg", "data_base64": b64(JPEG), "caption": "c"}),
            json!({"to": "120363000000000001@g.us", "type": "image", "mime_type": "image/png", "data_base64": b64(PNG)}),
            json!({"to": "15551230001", "type": "video", "mime_type": "video/mp4", "data_base64": b64(MP4)}),
            json!({"to": "15551230001", "type": "audio", "mime_type": "audio/ogg; codecs=opus", "data_base64": b64(OGG), "ptt": true}),
            json!({"to": "15551230001", "type": "document", "mime_type": "application/pdf", "data_base64": b64(PDF), "file_name": "a.pdf"}),
            json!({"to": "15551230001", "type": "sticker", "mime_type": "image/webp", "data_base64": b64(WEBP)}),
            json!({"to": "15551230001", "type": "image", "mime_type": "image/jpeg", "url": "https://example.com/a.jpg"}),
            json!({"to": "15551230001", "type": "location", "latitude": 48.85, "longitude": 2.35, "name": "Paris"}),
            json!({"to": "15551230001", "type": "contact", "contact_name": "Bob", "vcard": "BEGIN:VCARD\nVERSION:3.0\nFN:Bob\nEND:VCARD"}),
        ];
        for v in ok {
            let s = req(v.clone())
                .validate(false)
                .unwrap_or_else(|e| panic!("{v}: {e}"));
            assert!(s.to.contains('@'));
        }
        let s = req(json!({"to": "15551230001", "type": "audio", "mime_type": "audio/ogg", "data_base64": b64(OGG), "ptt": true}))
            .validate(false)
            .unwrap();
        assert_eq!(s.media.as_deref(), Some(OGG));
        assert!(matches!(s.content, Content::Audio { ptt: true, .. }));
    }

    #[test]
    fn refusals_name_the_field() {
        assert_eq!(field(json!({"text": "hi"})), "to");
        assert_eq!(field(json!({"to": "abc", "text": "hi"})), "to");
        assert_eq!(field(json!({"to": "15551230001", "type": "poll"})), "type");
        assert_eq!(field(json!({"to": "15551230001"})), "text");
        assert_eq!(field(json!({"to": "15551230001", "text": ""})), "text");
        assert_eq!(
            field(json!({"to": "15551230001", "text": "x".repeat(65537)})),
            "text"
        );
        assert_eq!(
            field(json!({"to": "15551230001", "text": "hi", "caption": "c"})),
            "caption"
        );
        assert_eq!(
            field(json!({"to": "15551230001", "type": "image", "data_base64": b64(JPEG)})),
            "mime_type"
        );
        assert_eq!(
            field(
                json!({"to": "15551230001", "type": "image", "mime_type": "image/gif", "data_base64": b64(JPEG)})
            ),
            "mime_type"
        );
        assert_eq!(
            field(
                json!({"to": "15551230001", "type": "sticker", "mime_type": "image/png", "data_base64": b64(PNG)})
            ),
            "mime_type"
        );
        assert_eq!(
            field(
                json!({"to": "15551230001", "type": "image", "mime_type": "image/png", "data_base64": b64(JPEG)})
            ),
            "data_base64"
        );
        assert_eq!(
            field(
                json!({"to": "15551230001", "type": "image", "mime_type": "image/jpeg", "data_base64": "%%%"})
            ),
            "data_base64"
        );
        assert_eq!(
            field(json!({"to": "15551230001", "type": "image", "mime_type": "image/jpeg"})),
            "data_base64"
        );
        assert_eq!(
            field(
                json!({"to": "15551230001", "type": "image", "mime_type": "image/jpeg", "data_base64": b64(JPEG), "url": "https://example.com/x"})
            ),
            "data_base64"
        );
        assert_eq!(
            field(
                json!({"to": "15551230001", "type": "image", "mime_type": "image/jpeg", "url": "ftp://example.com/x"})
            ),
            "url"
        );
        assert_eq!(
            field(
                json!({"to": "15551230001", "type": "image", "mime_type": "image/jpeg", "url": "http://127.0.0.1/x"})
            ),
            "url"
        );
        let big = [JPEG, &vec![0u8; 5 * 1024 * 1024]].concat();
        assert_eq!(
            field(
                json!({"to": "15551230001", "type": "image", "mime_type": "image/jpeg", "data_base64": b64(&big)})
            ),
            "data_base64"
        );
        assert_eq!(
            field(
                json!({"to": "15551230001", "type": "sticker", "mime_type": "image/webp", "data_base64": b64(WEBP), "caption": "no"})
            ),
            "caption"
        );
        assert_eq!(
            field(
                json!({"to": "15551230001", "type": "location", "latitude": 91.0, "longitude": 0.0})
            ),
            "latitude"
        );
        assert_eq!(
            field(
                json!({"to": "15551230001", "type": "location", "latitude": 0.0, "longitude": -180.5})
            ),
            "longitude"
        );
        assert_eq!(
            field(json!({"to": "15551230001", "type": "location", "longitude": 0.0})),
            "latitude"
        );
        assert_eq!(
            field(json!({"to": "15551230001", "type": "contact", "contact_name": "Bob"})),
            "vcard"
        );
        assert_eq!(
            field(
                json!({"to": "15551230001", "type": "contact", "contact_name": "Bob", "vcard": "hello"})
            ),
            "vcard"
        );
        assert_eq!(
            field(
                json!({"to": "15551230001", "type": "contact", "vcard": "BEGIN:VCARD\nEND:VCARD"})
            ),
            "contact_name"
        );
        assert_eq!(
            field(
                json!({"to": "15551230001", "type": "document", "mime_type": "application/pdf", "data_base64": b64(PDF), "file_name": "../x"})
            ),
            "file_name"
        );
        assert_eq!(
            field(
                json!({"to": "15551230001", "type": "audio", "mime_type": "audio/ogg", "data_base64": b64(PDF)})
            ),
            "data_base64"
        );
    }

    #[test]
    fn ids_and_keys() {
        let id = new_message_id();
        assert!(id.starts_with("3EB0") && id.len() == 22 && is_valid_message_id(&id));
        assert_ne!(new_message_id(), id);
        assert!(validate_idempotency_key("order-123").is_ok());
        for bad in ["", "has space", &"k".repeat(256), "é"] {
            assert_eq!(
                validate_idempotency_key(bad).unwrap_err().details()["field"],
                "Idempotency-Key"
            );
        }
    }
}

/// A message as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MessageView {
    pub message_id: String,
    pub device_id: Uuid,
    pub direction: Direction,
    /// The recipient (outbound) or this account (inbound).
    pub to: String,
    /// The sender (inbound) or this account (outbound).
    pub from: Option<String>,
    /// The sender's phone number when WhatsApp lets us resolve an `@lid` sender.
    pub from_phone: Option<String>,
    pub chat: String,
    #[serde(rename = "type")]
    pub kind: MessageType,
    pub status: MessageStatus,
    pub error: Option<MessageErrorView>,
    pub attempts: u32,
    pub idempotency_key: Option<String>,
    /// The text, caption, place name or contact name.
    pub text: Option<String>,
    /// Inbound media: pass to `GET /media?path=`.
    pub media_path: Option<String>,
    pub mime_type: Option<String>,
    #[serde(with = "crate::time::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "crate::time::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sent_at: Option<OffsetDateTime>,
    /// When a rate-limited send is tried again.
    #[serde(with = "crate::time::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MessageErrorView {
    pub code: String,
    pub message: String,
}

impl From<&Message> for MessageView {
    fn from(m: &Message) -> Self {
        MessageView {
            message_id: m.message_id.clone(),
            device_id: m.device_id,
            direction: m.direction,
            to: m.to.clone(),
            from: m.from.clone(),
            from_phone: m.from_phone.clone(),
            chat: m.chat.clone(),
            kind: m.kind,
            status: m.status,
            error: m.error.as_ref().map(|e| MessageErrorView {
                code: e.code.as_str().to_owned(),
                message: e.message.clone(),
            }),
            attempts: m.attempts,
            idempotency_key: m.idempotency_key.clone(),
            text: m.text.clone(),
            media_path: m.media_path.clone(),
            mime_type: m.mime_type.clone(),
            created_at: m.created_at,
            sent_at: m.sent_at,
            next_attempt_at: m.next_attempt_at,
        }
    }
}

/// `{"message": ...}`, the `data` of message answers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MessageData {
    pub message: MessageView,
}

/// The notifier key of a message.
pub fn wait_key(device_id: Uuid, message_id: &str) -> Uuid {
    Uuid::new_v5(&device_id, message_id.as_bytes())
}
