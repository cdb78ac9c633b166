//! The media port: where inbound media files live (the data directory, or S3 on AWS), and
//! the paths that name them. A path is what messages and webhooks carry as `media_path`:
//! `media/<app_id>/<device_id>-<id>.<ext>`, so it names the App and the device that own the
//! file; [`MediaPath::parse`] accepts exactly that shape and nothing else. Adapters live in
//! `wa-media` and pass the conformance suite of the test-support crate
//! (`wa_testkit::conformance::media_store`).

use std::time::Duration;

use async_trait::async_trait;
use sha2::Digest;
use uuid::Uuid;

/// The longest file name (`<device_id>-<id>.<ext>`) a path may have.
const MAX_FILE_NAME: usize = 200;
/// The longest stored id kept as it is; a longer one is replaced by its digest.
const MAX_ID_CHARS: usize = 128;

/// The path of one inbound media file: `media/<app_id>/<device_id>-<id>.<ext>`, the ids in
/// their hyphenated lowercase form, `<id>` and `<ext>` ASCII letters and digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MediaPath {
    path: String,
    app_id: Uuid,
    device_id: Uuid,
}

impl MediaPath {
    /// The path of the media of inbound message `message_id` of `device_id`, of MIME type
    /// `mime` (which picks the extension, [`extension`]). The same arguments always give
    /// the same path, so a redelivered message overwrites its own file. `<id>` is the
    /// message id's letters and digits, or, when none are left or there are more than 128,
    /// 32 hex digits of its SHA-256.
    pub fn inbound(app_id: Uuid, device_id: Uuid, message_id: &str, mime: &str) -> MediaPath {
        let mut id: String = message_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        if id.is_empty() || id.len() > MAX_ID_CHARS {
            id = sha2::Sha256::digest(message_id.as_bytes())[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
        }
        MediaPath {
            path: format!("media/{app_id}/{device_id}-{id}.{}", extension(mime)),
            app_id,
            device_id,
        }
    }

    /// The path `path` names, when it has exactly the shape of [`MediaPath`]: no traversal,
    /// no other characters, ids in their canonical form, a file name of at most 200
    /// characters. `None` for anything else. Never slices by position: any text,
    /// multibyte characters included, is answered without a panic.
    pub fn parse(path: &str) -> Option<MediaPath> {
        let rest = path.strip_prefix("media/")?;
        let (app, file) = rest.split_once('/')?;
        if file.is_empty() || file.len() > MAX_FILE_NAME {
            return None;
        }
        let (stem, ext) = file.rsplit_once('.')?;
        // The id has no `-`, so the last one ends the device id.
        let (device, id) = stem.rsplit_once('-')?;
        let alnum = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
        if !(alnum(id) && ext.len() <= 5 && alnum(ext)) {
            return None;
        }
        Some(MediaPath {
            path: path.to_owned(),
            app_id: canonical_uuid(app)?,
            device_id: canonical_uuid(device)?,
        })
    }

    /// The App whose media this is.
    pub fn app_id(&self) -> Uuid {
        self.app_id
    }

    /// The device that received it.
    pub fn device_id(&self) -> Uuid {
        self.device_id
    }

    /// The path as messages and webhooks carry it (`media_path`).
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// The last part of the path: `<device_id>-<id>.<ext>`.
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// `<id>.<ext>`: the file name without its device id.
    pub fn id_and_extension(&self) -> &str {
        self.file_name()
            .rsplit_once('-')
            .map_or("", |(_, rest)| rest)
    }

    /// The Content-Type the file is served with, from its extension ([`content_type`]).
    pub fn content_type(&self) -> &'static str {
        content_type(self.file_name().rsplit('.').next().unwrap_or(""))
    }
}

impl std::ops::Deref for MediaPath {
    type Target = str;
    fn deref(&self) -> &str {
        &self.path
    }
}

impl std::fmt::Display for MediaPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path)
    }
}

/// A UUID written in its hyphenated lowercase form, and only that (`Uuid::parse_str` also
/// takes the simple, braced and uppercase forms, which would name the same file twice).
fn canonical_uuid(s: &str) -> Option<Uuid> {
    let u = Uuid::parse_str(s).ok()?;
    (s.len() == 36 && u.to_string() == s).then_some(u)
}

/// The file extension used for a stored MIME type (parameters ignored); `bin` for a type
/// not listed.
pub fn extension(mime: &str) -> &'static str {
    match mime.split(';').next().unwrap_or("").trim() {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/webp" => "webp",
        "video/mp4" => "mp4",
        "video/3gpp" => "3gp",
        "audio/ogg" => "ogg",
        "audio/mpeg" => "mp3",
        "audio/mp4" => "m4a",
        "audio/aac" => "aac",
        "audio/amr" => "amr",
        "application/pdf" => "pdf",
        "text/plain" => "txt",
        "text/csv" => "csv",
        "application/zip" => "zip",
        _ => "bin",
    }
}

/// The Content-Type a file of extension `ext` is served with: the type [`extension`] maps
/// to `ext`, `application/octet-stream` for any other. Never a type the sender chose, so a
/// file cannot be served as HTML or script.
pub fn content_type(ext: &str) -> &'static str {
    match ext {
        "jpg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "mp4" => "video/mp4",
        "3gp" => "video/3gpp",
        "ogg" => "audio/ogg",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "aac" => "audio/aac",
        "amr" => "audio/amr",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

/// A stored media file, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub bytes: Vec<u8>,
    /// Its Content-Type ([`MediaPath::content_type`]).
    pub content_type: &'static str,
}

/// Media storage failures. These are not HTTP errors: callers map them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaError {
    /// The backend throttled the request or could not be reached in time; retrying later
    /// may succeed. The text is for logs only.
    Unavailable(String),
    /// Anything else (access denied, a missing bucket, a full disk): retrying alone does
    /// not help. The text is for logs only.
    Backend(String),
}

impl std::fmt::Display for MediaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaError::Unavailable(e) => write!(f, "media storage unavailable: {e}"),
            MediaError::Backend(e) => write!(f, "media storage error: {e}"),
        }
    }
}

impl std::error::Error for MediaError {}

impl From<MediaError> for wa_errors::ApiError {
    /// A 500 internal_error: the cause is logged, never shown.
    fn from(e: MediaError) -> Self {
        wa_errors::ApiError::internal(e)
    }
}

/// Where inbound media files live. Every method is scoped by the path (or the ids) it is
/// given: nothing reaches another App's or device's files. Writes are visible to every
/// read that starts after they return.
#[async_trait]
pub trait MediaStore: Send + Sync {
    /// Stores `bytes` at `path`, replacing a file already there; durable once it returns.
    async fn put(&self, path: &MediaPath, bytes: &[u8]) -> Result<(), MediaError>;

    /// The file at `path`, `None` when there is none.
    async fn get(&self, path: &MediaPath) -> Result<Option<Media>, MediaError>;

    /// The size in bytes of the file at `path`, `None` when there is none.
    async fn size(&self, path: &MediaPath) -> Result<Option<u64>, MediaError>;

    /// Whether this backend hands out URLs ([`MediaStore::url`]) to download files from.
    fn has_urls(&self) -> bool;

    /// A URL that downloads the file at `path` without other credentials for `ttl`, where
    /// the backend has them (S3: a presigned URL); `None` where it has not. It does not
    /// check that the file exists (the URL then answers an error).
    async fn url(&self, path: &MediaPath, ttl: Duration) -> Result<Option<String>, MediaError>;

    /// Deletes every file of the device (it was destroyed). Nothing to delete is no error.
    async fn delete_device(&self, app_id: Uuid, device_id: Uuid) -> Result<(), MediaError>;

    /// Deletes every file of the App (it was deleted). Nothing to delete is no error.
    async fn delete_app(&self, app_id: Uuid) -> Result<(), MediaError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_paths_parse_back_to_their_ids() {
        let (app, dev) = (Uuid::now_v7(), Uuid::now_v7());
        let p = MediaPath::inbound(app, dev, "3EB0-AB_cd", "image/jpeg; q=1");
        assert_eq!(p.as_str(), format!("media/{app}/{dev}-3EB0ABcd.jpg"));
        assert_eq!(p.file_name(), format!("{dev}-3EB0ABcd.jpg"));
        assert_eq!(p.id_and_extension(), "3EB0ABcd.jpg");
        assert_eq!(p.content_type(), "image/jpeg");
        assert_eq!(MediaPath::parse(&p), Some(p.clone()));
        assert_eq!((p.app_id(), p.device_id()), (app, dev));
    }

    #[test]
    fn ids_without_letters_or_too_long_become_a_digest() {
        let (app, dev) = (Uuid::now_v7(), Uuid::now_v7());
        for id in ["", "--", "é", &"A".repeat(129)] {
            let p = MediaPath::inbound(app, dev, id, "x/unknown");
            let (stem, ext) = p.id_and_extension().split_once('.').unwrap();
            assert_eq!((stem.len(), ext), (32, "bin"), "{id}");
            assert_eq!(MediaPath::parse(&p), Some(p.clone()), "{id}");
            assert_eq!(p, MediaPath::inbound(app, dev, id, "x/unknown"), "stable");
        }
        let kept = MediaPath::inbound(app, dev, &"A".repeat(128), "text/csv");
        assert_eq!(kept.id_and_extension(), format!("{}.csv", "A".repeat(128)));
    }

    #[test]
    fn only_canonical_ids_parse() {
        let (app, dev) = (Uuid::now_v7(), Uuid::now_v7());
        let upper = dev.to_string().to_uppercase();
        for bad in [
            format!("media/{}/{dev}-3EB0.jpg", app.to_string().to_uppercase()),
            format!("media/{app}/{upper}-3EB0.jpg"),
            format!("media/{}/{dev}-3EB0.jpg", app.simple()),
        ] {
            assert_eq!(MediaPath::parse(&bad), None, "{bad}");
        }
    }

    #[test]
    fn every_extension_has_its_content_type() {
        for mime in [
            "image/jpeg",
            "image/png",
            "image/webp",
            "video/mp4",
            "video/3gpp",
            "audio/ogg",
            "audio/mpeg",
            "audio/mp4",
            "audio/aac",
            "audio/amr",
            "application/pdf",
            "text/plain",
            "text/csv",
            "application/zip",
        ] {
            assert_eq!(content_type(extension(mime)), mime);
        }
        assert_eq!(
            content_type(extension("text/html")),
            "application/octet-stream"
        );
    }
}
