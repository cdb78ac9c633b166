//! The S3 adapter of the media port: one object per file in one bucket (`WA_MEDIA_BUCKET`),
//! keyed `media/<app_id>/<device_id>/<id>.<ext>` so that a device's and an App's files are
//! each one key prefix. Objects carry the Content-Type and Content-Disposition `GET /media`
//! answers with, so a presigned URL downloads them the same way.
//!
//! The client is built like the other AWS SDK clients of wa-server (the SDK's defaults:
//! `AWS_REGION`, `AWS_ENDPOINT_URL`, credentials), with path-style addressing when an
//! endpoint is configured (emulators such as moto serve no per-bucket host names).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, Delete, ObjectIdentifier,
    PublicAccessBlockConfiguration,
};
use uuid::Uuid;
use wa_core::media::{Media, MediaError, MediaPath, MediaStore};

/// Media files in one S3 bucket. Cheap to clone (the client is shared).
#[derive(Clone, Debug)]
pub struct S3Media {
    client: Client,
    bucket: Arc<str>,
}

/// The object key of `path`: `media/<app_id>/<device_id>/<id>.<ext>`.
pub fn key(path: &MediaPath) -> String {
    format!(
        "{}{}",
        device_prefix(path.app_id(), path.device_id()),
        path.id_and_extension()
    )
}

fn app_prefix(app_id: Uuid) -> String {
    format!("media/{app_id}/")
}

fn device_prefix(app_id: Uuid, device_id: Uuid) -> String {
    format!("media/{app_id}/{device_id}/")
}

/// Whether the client addresses buckets by path (`<endpoint>/<bucket>/<key>`) rather than
/// by host name: with a configured endpoint (an emulator, which serves no per-bucket host
/// names), not on AWS's own endpoints.
pub fn path_style(endpoint_url: Option<&str>) -> bool {
    endpoint_url.is_some()
}

/// Whether an S3 failure may pass by itself: no answer (timeout, connection), throttling
/// (`SlowDown`, 429, 503) or a server error; not a refusal (access denied, a missing
/// bucket) nor a request that could not be built.
pub fn retryable(answered: bool, status: Option<u16>, code: Option<&str>) -> bool {
    let throttled = matches!(
        code,
        Some("SlowDown" | "Throttling" | "ThrottlingException" | "RequestTimeout")
    );
    match (answered, status) {
        (false, _) => true,
        (true, Some(s)) => s == 429 || s >= 500 || throttled,
        (true, None) => throttled,
    }
}

fn sdk_error<E>(what: &str, e: SdkError<E, HttpResponse>) -> MediaError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let text = format!("{what}: {}", DisplayErrorContext(&e));
    if matches!(e, SdkError::ConstructionFailure(_)) {
        return MediaError::Backend(text);
    }
    let answered = !matches!(e, SdkError::TimeoutError(_) | SdkError::DispatchFailure(_));
    let status = e.raw_response().map(|r| r.status().as_u16());
    if retryable(answered, status, e.code()) {
        MediaError::Unavailable(text)
    } else {
        MediaError::Backend(text)
    }
}

impl S3Media {
    /// Media in `bucket` through `client` (build the client once per process).
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        S3Media {
            client,
            bucket: Arc::from(bucket.into()),
        }
    }

    /// Media in `bucket` with the SDK's default configuration: credentials, region and
    /// endpoint from the environment (`AWS_REGION`, `AWS_ENDPOINT_URL`, ...).
    pub async fn from_env(bucket: &str) -> Self {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let s3 = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(path_style(config.endpoint_url()))
            .build();
        S3Media::new(Client::from_conf(s3), bucket)
    }

    /// A client of the S3 emulator at `endpoint` (moto) in `region`, with fixed test
    /// credentials and path-style addressing: for tests and local runs only.
    pub fn emulator_client(endpoint: &str, region: &str) -> Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_sdk_s3::config::Region::new(region.to_owned()))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "test", "test", None, None, "emulator",
            ))
            .force_path_style(true)
            .build();
        Client::from_conf(config)
    }

    /// The client, for what the port does not cover (listing in tests).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Creates the bucket when it is missing, with every public access blocked; `true` when
    /// it created it. For emulators and first runs: in AWS the SAM template creates it.
    pub async fn create_bucket(&self) -> Result<bool, MediaError> {
        match self.client.head_bucket().bucket(self.bucket()).send().await {
            Ok(_) => return Ok(false),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => {}
            Err(e) => return Err(sdk_error("looking for the bucket", e)),
        }
        let mut create = self.client.create_bucket().bucket(self.bucket());
        // us-east-1 takes no location constraint; every other region needs its own.
        if let Some(region) = self
            .client
            .config()
            .region()
            .map(|r| r.as_ref())
            .filter(|r| *r != "us-east-1")
        {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        match create.send().await {
            Ok(_) => {}
            Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => return Ok(false),
            Err(e) => return Err(sdk_error("creating the bucket", e)),
        }
        self.client
            .put_public_access_block()
            .bucket(self.bucket())
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_error("blocking public access to the bucket", e))?;
        Ok(true)
    }

    /// Deletes every object under `prefix`, a page of keys (up to 1000) at a time.
    async fn delete_prefix(&self, what: &str, prefix: String) -> Result<(), MediaError> {
        let mut after = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(self.bucket())
                .prefix(&prefix)
                .set_continuation_token(after.take())
                .send()
                .await
                .map_err(|e| sdk_error(what, e))?;
            let ids = page
                .contents()
                .iter()
                .filter_map(|o| o.key())
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| MediaError::Backend(format!("{what}: {e}")))?;
            if !ids.is_empty() {
                let delete = Delete::builder()
                    .set_objects(Some(ids))
                    .quiet(true)
                    .build()
                    .map_err(|e| MediaError::Backend(format!("{what}: {e}")))?;
                let out = self
                    .client
                    .delete_objects()
                    .bucket(self.bucket())
                    .delete(delete)
                    .send()
                    .await
                    .map_err(|e| sdk_error(what, e))?;
                if let Some(e) = out.errors().first() {
                    return Err(MediaError::Backend(format!(
                        "{what}: {} ({} keys not deleted)",
                        e.message().or(e.code()).unwrap_or("refused"),
                        out.errors().len()
                    )));
                }
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => after = Some(t.to_owned()),
                _ => return Ok(()),
            }
        }
    }
}

#[async_trait]
impl MediaStore for S3Media {
    async fn put(&self, path: &MediaPath, bytes: &[u8]) -> Result<(), MediaError> {
        self.client
            .put_object()
            .bucket(self.bucket())
            .key(key(path))
            .content_type(path.content_type())
            .content_disposition(format!("attachment; filename=\"{}\"", path.file_name()))
            .body(ByteStream::from(bytes.to_vec()))
            .send()
            .await
            .map_err(|e| sdk_error("writing a media object", e))?;
        Ok(())
    }

    async fn get(&self, path: &MediaPath) -> Result<Option<Media>, MediaError> {
        let out = match self
            .client
            .get_object()
            .bucket(self.bucket())
            .key(key(path))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(sdk_error("reading a media object", e)),
        };
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| MediaError::Unavailable(format!("reading a media object: {e}")))?;
        Ok(Some(Media {
            bytes: bytes.into_bytes().to_vec(),
            content_type: path.content_type(),
        }))
    }

    async fn size(&self, path: &MediaPath) -> Result<Option<u64>, MediaError> {
        match self
            .client
            .head_object()
            .bucket(self.bucket())
            .key(key(path))
            .send()
            .await
        {
            Ok(out) => Ok(Some(
                out.content_length()
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0),
            )),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(e) => Err(sdk_error("reading a media object's size", e)),
        }
    }

    fn has_urls(&self) -> bool {
        true
    }

    async fn url(&self, path: &MediaPath, ttl: Duration) -> Result<Option<String>, MediaError> {
        let config = PresigningConfig::expires_in(ttl)
            .map_err(|e| MediaError::Backend(format!("presigning a media object: {e}")))?;
        let req = self
            .client
            .get_object()
            .bucket(self.bucket())
            .key(key(path))
            .presigned(config)
            .await
            .map_err(|e| sdk_error("presigning a media object", e))?;
        Ok(Some(req.uri().to_owned()))
    }

    async fn delete_device(&self, app_id: Uuid, device_id: Uuid) -> Result<(), MediaError> {
        self.delete_prefix(
            "deleting a device's media objects",
            device_prefix(app_id, device_id),
        )
        .await
    }

    async fn delete_app(&self, app_id: Uuid) -> Result<(), MediaError> {
        self.delete_prefix("deleting an App's media objects", app_prefix(app_id))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        S3Media::emulator_client(wa_testkit::moto::endpoint(), wa_testkit::moto::REGION)
    }

    /// Media in a fresh bucket of the process's moto server.
    async fn media() -> S3Media {
        let m = S3Media::new(client(), format!("wa-test-{}", Uuid::new_v4().simple()));
        assert!(m.create_bucket().await.expect("create bucket"));
        m
    }

    async fn fetch(url: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        assert!(
            url.starts_with(wa_testkit::moto::endpoint()),
            "a URL of the moto server: {url}"
        );
        let res = reqwest::get(url).await.expect("moto answers");
        let (status, headers) = (res.status().as_u16(), res.headers().clone());
        (status, headers, res.bytes().await.unwrap().to_vec())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance() {
        wa_testkit::conformance::media_store(Arc::new(media().await), async |url: String| {
            let (status, _, body) = fetch(&url).await;
            (status, body)
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn objects_are_keyed_by_app_and_device_and_download_as_attachments() {
        let m = media().await;
        let (app, dev) = (Uuid::now_v7(), Uuid::now_v7());
        let p = MediaPath::inbound(app, dev, "3EB0AB", "application/pdf");
        m.put(&p, b"%PDF-1.4").await.unwrap();
        let listed = m
            .client
            .list_objects_v2()
            .bucket(m.bucket())
            .send()
            .await
            .unwrap();
        let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
        assert_eq!(keys, [format!("media/{app}/{dev}/3EB0AB.pdf")]);

        let url = m.url(&p, Duration::from_secs(300)).await.unwrap().unwrap();
        assert!(url.contains("X-Amz-Expires=300"), "{url}");
        let (status, headers, body) = fetch(&url).await;
        assert_eq!((status, body.as_slice()), (200, &b"%PDF-1.4"[..]));
        assert_eq!(headers["content-type"], "application/pdf");
        assert_eq!(
            headers["content-disposition"],
            format!("attachment; filename=\"{dev}-3EB0AB.pdf\"")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn creating_the_bucket_twice_is_fine_and_it_is_not_public() {
        let m = media().await;
        assert!(!m.create_bucket().await.unwrap(), "already there");
        let block = m
            .client
            .get_public_access_block()
            .bucket(m.bucket())
            .send()
            .await
            .unwrap();
        let c = block.public_access_block_configuration().unwrap();
        assert_eq!(
            (
                c.block_public_acls(),
                c.ignore_public_acls(),
                c.block_public_policy(),
                c.restrict_public_buckets()
            ),
            (Some(true), Some(true), Some(true), Some(true))
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_missing_bucket_is_an_error_not_a_missing_file() {
        let m = S3Media::new(client(), format!("wa-none-{}", Uuid::new_v4().simple()));
        let p = MediaPath::inbound(Uuid::now_v7(), Uuid::now_v7(), "X", "image/png");
        assert!(matches!(m.get(&p).await, Err(MediaError::Backend(_))));
        assert!(matches!(m.put(&p, b"x").await, Err(MediaError::Backend(_))));
    }

    #[test]
    fn failures_that_may_pass_are_retryable() {
        for (answered, status, code, expected) in [
            (false, None, None, true),
            (true, Some(500), Some("InternalError"), true),
            (true, Some(503), Some("SlowDown"), true),
            (true, Some(429), None, true),
            (true, Some(400), Some("RequestTimeout"), true),
            (true, None, Some("Throttling"), true),
            (true, Some(403), Some("AccessDenied"), false),
            (true, Some(404), Some("NoSuchBucket"), false),
            (true, Some(400), Some("InvalidArgument"), false),
            (true, None, None, false),
        ] {
            assert_eq!(
                retryable(answered, status, code),
                expected,
                "{answered} {status:?} {code:?}"
            );
        }
    }

    #[test]
    fn path_style_only_with_an_endpoint() {
        assert!(path_style(Some("http://127.0.0.1:5000")));
        assert!(!path_style(None));
    }
}
