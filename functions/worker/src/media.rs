//! Media files: fetching an outbound `url` (http(s), private targets refused, size-capped,
//! time-limited) and storing inbound media under `<data dir>/media/<app_id>/`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use sha2::Digest;
use uuid::Uuid;
use wa_core::messages::{MessageError, MessageType, check_bytes};
use wa_errors::ErrorCode;

/// How long fetching a media URL may take in all.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

fn invalid(message: String) -> MessageError {
    MessageError {
        code: ErrorCode::ValidationError,
        message,
    }
}

fn upstream(message: String) -> MessageError {
    MessageError {
        code: ErrorCode::ProviderError,
        message,
    }
}

/// Fetches the media of a send. Refusals that a retry cannot fix (a private target, a 4xx,
/// too large, bytes that are not `mime`) are `validation_error`; the others `provider_error`.
pub async fn fetch(
    url: &str,
    kind: MessageType,
    mime: &str,
    allow_private: bool,
) -> Result<Vec<u8>, MessageError> {
    let parsed = wa_core::net::check_outbound_url(url, allow_private)
        .map_err(|r| invalid(format!("url {}", r.0)))?;
    let host = parsed.host_str().unwrap_or_default().to_owned();
    let port = parsed.port_or_known_default().unwrap_or(443);
    // Resolve once, check every address, and connect to the checked one only, so DNS cannot
    // point the request somewhere private after the check.
    let addrs: Vec<SocketAddr> = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::lookup_host((host.trim_matches(['[', ']']), port)),
    )
    .await
    .map_err(|_| upstream(format!("resolving {host} timed out")))?
    .map_err(|e| upstream(format!("cannot resolve {host}: {e}")))?
    .collect();
    if addrs.is_empty() {
        return Err(upstream(format!("{host} has no address")));
    }
    if !allow_private && addrs.iter().any(|a| !wa_core::net::is_public_ip(a.ip())) {
        return Err(invalid(
            "url points to a private, loopback or link-local address".into(),
        ));
    }
    let client = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .resolve(&host, addrs[0])
        .build()
        .map_err(|e| upstream(format!("http client: {e}")))?;
    let res = client
        .get(parsed)
        .send()
        .await
        .map_err(|e| upstream(format!("fetching the url failed: {e}")))?;
    let status = res.status();
    if status.is_client_error() || status.is_redirection() {
        return Err(invalid(format!("fetching the url answered {status}")));
    }
    if !status.is_success() {
        return Err(upstream(format!("fetching the url answered {status}")));
    }
    let cap = kind.max_media_bytes();
    if res.content_length().is_some_and(|n| n as usize > cap) {
        return Err(invalid(format!(
            "the file at url is larger than {cap} bytes"
        )));
    }
    let mut body = Vec::new();
    let mut stream = res.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| upstream(format!("reading the url failed: {e}")))?;
        if body.len() + chunk.len() > cap {
            return Err(invalid(format!(
                "the file at url is larger than {cap} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    check_bytes(kind, mime, &body, "url").map_err(|e| invalid(e.message().to_owned()))?;
    Ok(body)
}

/// The file extension used for a stored MIME type.
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

/// A stored inbound media file.
pub struct StoredMedia {
    /// Relative to the data directory: `media/<app_id>/<device_id>-<message_id>.<ext>`.
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// Writes inbound media durably (temp file, fsync, rename).
pub fn store(
    data_dir: &Path,
    app_id: Uuid,
    device_id: Uuid,
    message_id: &str,
    mime: &str,
    bytes: &[u8],
) -> std::io::Result<StoredMedia> {
    let safe_id: String = message_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let rel = format!("media/{app_id}/{device_id}-{safe_id}.{}", extension(mime));
    let path = data_dir.join(&rel);
    if let Some(dir) = path.parent() {
        wa_core::private_fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("part");
    let mut f = wa_core::private_fs::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(StoredMedia {
        path: rel,
        size: bytes.len() as u64,
        sha256: sha2::Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    })
}

/// Deletes every media file of a device (it was destroyed).
pub fn delete_device_media(data_dir: &Path, app_id: Uuid, device_id: Uuid) {
    let dir = data_dir.join("media").join(app_id.to_string());
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let prefix = format!("{device_id}-");
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix)
            && let Err(err) = std::fs::remove_file(e.path())
        {
            tracing::warn!(%device_id, error = %err, "could not delete a media file");
        }
    }
}
