//! The send request as received, its validation (the rules of each message type, the
//! recipient, the Idempotency-Key), and what a valid send is.

use serde::{Deserialize, Serialize};
use wa_errors::{ApiError, ApiResult};

use super::record::{Content, MessageType};

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
    use crate::messages::*;
    use base64::Engine;
    use serde_json::json;
    use wa_errors::ErrorCode;

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
