//! Media files: fetching an outbound `url` through the outbound client (http(s), special-
//! purpose targets refused, size-capped, time-limited, no redirects) and storing inbound
//! media through the media port (the data directory, or S3 with `WA_MEDIA_BUCKET`).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use sha2::Digest;
use uuid::Uuid;
use wa_core::media::{MediaError, MediaPath, MediaStore};
use wa_core::messages::{MessageError, MessageType, check_bytes};
use wa_errors::ErrorCode;
use wa_net::{FetchError, Lookup, Method, OutboundClient};

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

/// A client for media downloads: `timeout` in all, names resolved by `lookup`, no idle
/// connections kept (each media URL is fetched once).
pub fn media_client(
    allow_private: bool,
    timeout: Duration,
    lookup: Arc<dyn Lookup>,
) -> Result<OutboundClient, MessageError> {
    OutboundClient::with_lookup(&wa_net::Config::new(timeout, allow_private), lookup)
        .map_err(|e| upstream(format!("http client: {e}")))
}

/// The process's media client for this setting of `WA_ALLOW_PRIVATE_URLS`, made once.
fn shared_client(allow_private: bool) -> Result<OutboundClient, MessageError> {
    static CLIENTS: [OnceLock<OutboundClient>; 2] = [OnceLock::new(), OnceLock::new()];
    let cell = &CLIENTS[usize::from(allow_private)];
    if let Some(c) = cell.get() {
        return Ok(c.clone());
    }
    let c = media_client(allow_private, FETCH_TIMEOUT, Arc::new(wa_net::SystemLookup))?;
    Ok(cell.get_or_init(|| c).clone())
}

/// Fetches the media of a send with the process's media client ([`fetch_with`]).
pub async fn fetch(
    url: &str,
    kind: MessageType,
    mime: &str,
    allow_private: bool,
) -> Result<Vec<u8>, MessageError> {
    fetch_with(&shared_client(allow_private)?, url, kind, mime).await
}

/// Fetches the media of a send. Refusals that a retry cannot fix (a special-purpose target,
/// literal or resolved; a redirect or another 3xx; a 4xx; too large; bytes that are not
/// `mime`) are `validation_error`; the others (5xx, timeout, unreachable) `provider_error`.
/// No error text holds the URL.
pub async fn fetch_with(
    client: &OutboundClient,
    url: &str,
    kind: MessageType,
    mime: &str,
) -> Result<Vec<u8>, MessageError> {
    let request = client
        .request(Method::GET, url)
        .map_err(|r| invalid(format!("url {}", r.0)))?;
    let res = client.send(request).await.map_err(|e| match e {
        FetchError::Refused(m) => invalid(format!("url refused: {m}")),
        FetchError::TimedOut(m) => upstream(format!("fetching the url {m}")),
        FetchError::Failed(m) => upstream(format!("fetching the url failed: {m}")),
    })?;
    let status = res.status();
    if status.is_client_error() || status.is_redirection() {
        return Err(invalid(format!("fetching the url answered {status}")));
    }
    if !status.is_success() {
        return Err(upstream(format!("fetching the url answered {status}")));
    }
    let cap = kind.max_media_bytes();
    let too_large = || invalid(format!("the file at url is larger than {cap} bytes"));
    if res.content_length().is_some_and(|n| n > cap as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    let mut stream = res.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| upstream(format!("reading the url failed: {}", FetchError::from(e))))?;
        if body.len() + chunk.len() > cap {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    check_bytes(kind, mime, &body, "url").map_err(|e| invalid(e.message().to_owned()))?;
    Ok(body)
}

/// A stored inbound media file.
pub struct StoredMedia {
    /// Its `media_path`: `media/<app_id>/<device_id>-<message_id>.<ext>`.
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// Stores the media of inbound message `message_id` in `media`, at the path of
/// [`MediaPath::inbound`] (a redelivery overwrites its own file). Fails as the store does.
pub async fn store(
    media: &dyn MediaStore,
    app_id: Uuid,
    device_id: Uuid,
    message_id: &str,
    mime: &str,
    bytes: &[u8],
) -> Result<StoredMedia, MediaError> {
    let path = MediaPath::inbound(app_id, device_id, message_id, mime);
    media.put(&path, bytes).await?;
    Ok(StoredMedia {
        path: path.as_str().to_owned(),
        size: bytes.len() as u64,
        sha256: sha2::Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;
    use wa_net::FixedLookup;
    use wa_net::test_server::{Answer, LoopbackServer};

    const JPEG: &[u8] = &[
        0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F', 0, 1,
    ];

    fn webp(len: usize) -> Vec<u8> {
        let mut b = b"RIFF\0\0\0\0WEBP".to_vec();
        b.resize(len, 0);
        b
    }

    /// Loopback allowed: these rules are not about the private check.
    fn loopback_client() -> OutboundClient {
        media_client(true, FETCH_TIMEOUT, Arc::new(FixedLookup::default())).unwrap()
    }

    async fn fetch_from(
        answer: Answer,
        kind: MessageType,
        mime: &str,
    ) -> (Result<Vec<u8>, MessageError>, LoopbackServer) {
        let server = LoopbackServer::start(move |_| answer.clone()).await;
        let got = fetch_with(&loopback_client(), &server.url("/f?sig=s3cret"), kind, mime).await;
        (got, server)
    }

    fn assert_error(got: &Result<Vec<u8>, MessageError>, code: ErrorCode, starts: &str) {
        let e = got.as_ref().expect_err("an error");
        assert_eq!(e.code, code, "{e:?}");
        assert!(e.message.starts_with(starts), "{e:?}");
        assert!(!e.message.contains("s3cret"), "{e:?}");
    }

    #[tokio::test]
    async fn a_file_within_its_cap_is_fetched() {
        let (got, server) =
            fetch_from(Answer::status(200, JPEG), MessageType::Image, "image/jpeg").await;
        assert_eq!(got.unwrap(), JPEG);
        assert_eq!(server.requests()[0].path, "/f?sig=s3cret");
    }

    #[tokio::test]
    async fn the_size_cap_holds_with_and_without_a_length() {
        let cap = MessageType::Sticker.max_media_bytes();
        let at_cap = fetch_from(
            Answer::status(200, &webp(cap)),
            MessageType::Sticker,
            "image/webp",
        )
        .await
        .0;
        assert_eq!(at_cap.unwrap().len(), cap);
        for answer in [
            Answer::status(200, &webp(cap + 1)),
            Answer::unsized_body(&webp(cap + 1)),
        ] {
            let (got, _) = fetch_from(answer, MessageType::Sticker, "image/webp").await;
            assert_error(
                &got,
                ErrorCode::ValidationError,
                "the file at url is larger than 512000 bytes",
            );
        }
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let server = LoopbackServer::start(|r| {
            if r.path == "/f" {
                Answer::with_headers(302, &[("location", "/g")], b"")
            } else {
                Answer::status(200, JPEG)
            }
        })
        .await;
        let got = fetch_with(
            &loopback_client(),
            &server.url("/f"),
            MessageType::Image,
            "image/jpeg",
        )
        .await;
        assert_error(
            &got,
            ErrorCode::ValidationError,
            "fetching the url answered 302 Found",
        );
        let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
        assert_eq!(paths, ["/f"]);
    }

    #[tokio::test]
    async fn client_errors_are_final_and_server_errors_retryable() {
        for (status, code, text) in [
            (
                404,
                ErrorCode::ValidationError,
                "fetching the url answered 404 Not Found",
            ),
            (
                403,
                ErrorCode::ValidationError,
                "fetching the url answered 403 Forbidden",
            ),
            (
                500,
                ErrorCode::ProviderError,
                "fetching the url answered 500 Internal Server Error",
            ),
            (
                503,
                ErrorCode::ProviderError,
                "fetching the url answered 503 Service Unavailable",
            ),
        ] {
            let (got, _) = fetch_from(
                Answer::status(status, b"no"),
                MessageType::Image,
                "image/jpeg",
            )
            .await;
            assert_error(&got, code, text);
        }
        let (got, _) = fetch_from(
            Answer::status(200, b"not a jpeg"),
            MessageType::Image,
            "image/jpeg",
        )
        .await;
        assert_eq!(got.unwrap_err().code, ErrorCode::ValidationError);
    }

    #[tokio::test]
    async fn a_silent_host_times_out_as_retryable() {
        let server = LoopbackServer::start(|_| Answer::Never).await;
        let client = media_client(
            true,
            Duration::from_millis(300),
            Arc::new(FixedLookup::default()),
        )
        .unwrap();
        let got = fetch_with(
            &client,
            &server.url("/f?sig=s3cret"),
            MessageType::Image,
            "image/jpeg",
        )
        .await;
        assert_error(&got, ErrorCode::ProviderError, "fetching the url timed out");
    }

    #[tokio::test]
    async fn private_targets_are_refused_without_a_connection() {
        let server = LoopbackServer::start(|_| Answer::status(200, JPEG)).await;
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let client = media_client(
            false,
            FETCH_TIMEOUT,
            Arc::new(FixedLookup::new("media.example", &[loopback])),
        )
        .unwrap();
        let port = server.addr.port();
        let named = format!("http://media.example:{port}/f?sig=s3cret");
        let got = fetch_with(&client, &named, MessageType::Image, "image/jpeg").await;
        assert_error(
            &got,
            ErrorCode::ValidationError,
            "url refused: media.example resolves to 127.0.0.1",
        );
        for literal in [
            server.url("/f"),
            format!("http://[64:ff9b::7f00:1]:{port}/f"),
        ] {
            let got = fetch_with(&client, &literal, MessageType::Image, "image/jpeg").await;
            assert_error(
                &got,
                ErrorCode::ValidationError,
                "url must not point to a private",
            );
        }
        assert_eq!(server.connections(), 0);
    }
}
