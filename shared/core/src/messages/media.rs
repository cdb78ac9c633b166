//! The media rules: the MIME types each media type may declare, its size limit, the magic
//! numbers its bytes must start with, and the checks of a send's media fields.

use base64::Engine;
use wa_errors::{ApiError, ApiResult};

use super::record::{Media, MediaSource, MessageType};
use super::request::{SendRequest, required};

impl MessageType {
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

impl SendRequest {
    /// The media of a send of `kind`: its declared MIME type, and its inline bytes or its URL.
    pub(super) fn validate_media(
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
