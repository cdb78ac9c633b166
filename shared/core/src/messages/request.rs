//! The send request as received, its validation (the rules of each message type, the
//! recipient, the Idempotency-Key), and what a valid send is.

use serde::{Deserialize, Serialize};
use wa_errors::{ApiError, ApiResult};

use super::emoji::is_one_emoji;
use super::record::{Content, Message, MessageRef, MessageType, is_valid_message_id};

/// The body of a send, as received. Every field is optional here; `validate` applies the
/// rules of the message's type.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"to": "+15550001111", "text": "Your order shipped"}))]
pub struct SendRequest {
    /// Phone number (digits, optional +) or JID ending @s.whatsapp.net, @lid or @g.us.
    #[schema(value_type = String, required = true, pattern = r"^\+?[0-9]{6,20}$|^[0-9]{6,20}@(s\.whatsapp\.net|lid)$|^[0-9]{6,20}(-[0-9]{6,20})?@g\.us$")]
    pub to: Option<String>,
    /// text (default), image, video, audio, document, sticker, location, contact, reaction,
    /// poll.
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
    /// Quotes a message of this device's history (either direction); any type but
    /// reaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<ReplyTo>,
    /// text, image, video, document: up to 256 phone numbers or JIDs mentioned in the
    /// text or caption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 256)]
    pub mentions: Option<Vec<String>>,
    /// reaction: the message reacted to, in this device's history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// reaction: one emoji; `""` removes the reaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
    /// poll: 1-255 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 255)]
    pub question: Option<String>,
    /// poll: 2-12 distinct options of 1-100 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 2, max_items = 12)]
    pub options: Option<Vec<String>>,
    /// poll: how many options a voter may pick, 1 (default) up to the number of options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 12)]
    pub selectable_count: Option<u32>,
}

/// The message a send quotes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyTo {
    /// A message id of this device's history (inbound or outbound).
    pub message_id: String,
}

/// A validated send: the recipient, the content and the inline media bytes, the message
/// it quotes and the JIDs it mentions. The messages it names (`reply_to`, a reaction's
/// target) are checked against the device's history by [`ValidSend::resolve`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSend {
    pub to: String,
    pub content: Content,
    pub media: Option<Vec<u8>>,
    pub reply_to: Option<MessageRef>,
    pub mentions: Vec<String>,
}

impl ValidSend {
    /// The earlier messages the send names, each with the field that names it:
    /// `reply_to`, and a reaction's `message_id`.
    pub fn references(&self) -> Vec<(&'static str, String)> {
        let mut refs = Vec::new();
        if let Some(r) = &self.reply_to {
            refs.push(("reply_to", r.message_id.clone()));
        }
        if let Content::Reaction { target, .. } = &self.content {
            refs.push(("message_id", target.message_id.clone()));
        }
        refs
    }

    /// Fills in the reference named by `field` from the device's stored message `found`;
    /// a message the device does not have is validation_error on `field`.
    pub fn resolve(&mut self, field: &'static str, found: Option<&Message>) -> ApiResult<()> {
        let Some(m) = found else {
            return Err(ApiError::validation(
                field,
                format!("`{field}` names no message of this device"),
            ));
        };
        match (field, &mut self.content) {
            ("message_id", Content::Reaction { target, .. }) => *target = MessageRef::of(m),
            _ => self.reply_to = Some(MessageRef::of(m)),
        }
        Ok(())
    }
}

pub const MAX_TEXT_CHARS: usize = 65_536;
pub const MAX_MENTIONS: usize = 256;
pub const MAX_POLL_QUESTION_CHARS: usize = 255;
pub const MAX_POLL_OPTION_CHARS: usize = 100;
pub const POLL_OPTIONS: std::ops::RangeInclusive<usize> = 2..=12;

pub const MAX_CAPTION_CHARS: usize = 1024;
pub const MAX_VCARD_BYTES: usize = 64 * 1024;

pub(crate) fn chars_between(
    field: &'static str,
    value: &str,
    min: usize,
    max: usize,
) -> ApiResult<()> {
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

pub(super) fn required(field: &'static str, kind: MessageType) -> ApiError {
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
                    "`type` must be one of: text, image, video, audio, document, sticker, location, contact, reaction, poll",
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
                "reply_to" => self.reply_to.is_some(),
                "mentions" => self.mentions.is_some(),
                "message_id" => self.message_id.is_some(),
                "emoji" => self.emoji.is_some(),
                "question" => self.question.is_some(),
                "options" => self.options.is_some(),
                "selectable_count" => self.selectable_count.is_some(),
                _ => false,
            }
        };
        // `reply_to` goes with every type but a reaction, `mentions` with a text or caption.
        let allowed: &[&'static str] = match kind {
            MessageType::Text => &["text", "reply_to", "mentions"],
            MessageType::Image | MessageType::Video => &[
                "mime_type",
                "data_base64",
                "url",
                "caption",
                "reply_to",
                "mentions",
            ],
            MessageType::Audio => &["mime_type", "data_base64", "url", "ptt", "reply_to"],
            MessageType::Document => &[
                "mime_type",
                "data_base64",
                "url",
                "caption",
                "file_name",
                "reply_to",
                "mentions",
            ],
            MessageType::Sticker => &["mime_type", "data_base64", "url", "reply_to"],
            MessageType::Location => &["latitude", "longitude", "name", "address", "reply_to"],
            MessageType::Contact => &["contact_name", "vcard", "reply_to"],
            MessageType::Reaction => &["message_id", "emoji"],
            MessageType::Poll => &["question", "options", "selectable_count", "reply_to"],
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
            "reply_to",
            "mentions",
            "message_id",
            "emoji",
            "question",
            "options",
            "selectable_count",
        ] {
            if present(f) && !allowed.contains(&f) {
                return Err(not_for(f, kind));
            }
        }
        let reply_to = match &self.reply_to {
            Some(r) if is_valid_message_id(&r.message_id) => {
                Some(MessageRef::unresolved(&r.message_id, &to))
            }
            Some(_) => {
                return Err(ApiError::validation(
                    "reply_to",
                    "`reply_to.message_id` must be a message id",
                ));
            }
            None => None,
        };
        let mentions = self.valid_mentions()?;
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
            MessageType::Reaction => {
                let id = self
                    .message_id
                    .as_deref()
                    .ok_or_else(|| required("message_id", kind))?;
                if !is_valid_message_id(id) {
                    return Err(ApiError::validation(
                        "message_id",
                        "`message_id` must be a message id",
                    ));
                }
                let emoji = self
                    .emoji
                    .as_deref()
                    .ok_or_else(|| required("emoji", kind))?;
                if !emoji.is_empty() && !is_one_emoji(emoji) {
                    return Err(ApiError::validation(
                        "emoji",
                        "`emoji` must be one emoji, or \"\" to remove the reaction",
                    ));
                }
                (
                    Content::Reaction {
                        target: MessageRef::unresolved(id, &to),
                        emoji: emoji.to_owned(),
                    },
                    None,
                )
            }
            MessageType::Poll => (self.valid_poll()?, None),
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
        Ok(ValidSend {
            to,
            content,
            media,
            reply_to,
            mentions,
        })
    }

    /// `mentions`: at most [`MAX_MENTIONS`] recipients as `to` takes them, as JIDs, each
    /// once, in the order given.
    fn valid_mentions(&self) -> ApiResult<Vec<String>> {
        let Some(list) = &self.mentions else {
            return Ok(Vec::new());
        };
        if list.len() > MAX_MENTIONS {
            return Err(ApiError::validation(
                "mentions",
                format!("`mentions` takes at most {MAX_MENTIONS} entries"),
            ));
        }
        let mut out: Vec<String> = Vec::with_capacity(list.len());
        for m in list {
            let jid = crate::jid::normalize("mentions", m)?;
            if !out.contains(&jid) {
                out.push(jid);
            }
        }
        Ok(out)
    }

    /// A poll's question, options and selectable count, with a new secret.
    fn valid_poll(&self) -> ApiResult<Content> {
        let kind = MessageType::Poll;
        let question = self
            .question
            .as_deref()
            .ok_or_else(|| required("question", kind))?;
        chars_between("question", question, 1, MAX_POLL_QUESTION_CHARS)?;
        if question.trim().is_empty() {
            return Err(ApiError::validation(
                "question",
                "`question` must not be blank",
            ));
        }
        let options = self
            .options
            .as_ref()
            .ok_or_else(|| required("options", kind))?;
        if !POLL_OPTIONS.contains(&options.len()) {
            return Err(ApiError::validation(
                "options",
                format!(
                    "`options` must have {}-{} entries",
                    POLL_OPTIONS.start(),
                    POLL_OPTIONS.end()
                ),
            ));
        }
        for (i, o) in options.iter().enumerate() {
            if o.trim().is_empty() || o.chars().count() > MAX_POLL_OPTION_CHARS {
                return Err(ApiError::validation(
                    "options",
                    format!(
                        "each of `options` must be 1-{MAX_POLL_OPTION_CHARS} characters, not blank"
                    ),
                ));
            }
            if options[..i].contains(o) {
                return Err(ApiError::validation(
                    "options",
                    format!("`options` must be distinct: {o:?} is repeated"),
                ));
            }
        }
        let selectable_count = self.selectable_count.unwrap_or(1);
        if selectable_count < 1 || selectable_count as usize > options.len() {
            return Err(ApiError::validation(
                "selectable_count",
                format!(
                    "`selectable_count` must be between 1 and the number of options ({})",
                    options.len()
                ),
            ));
        }
        Ok(Content::Poll {
            question: question.to_owned(),
            options: options.clone(),
            selectable_count,
            secret: new_poll_secret(),
        })
    }
}

/// A new poll secret: 32 random bytes, hex.
pub fn new_poll_secret() -> String {
    crate::auth::hex(&rand::random::<[u8; 32]>())
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
mod tests;
