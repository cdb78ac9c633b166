//! `GET /media?path=`: inbound media files, to their own App only: the bytes, or, where
//! the media store hands out URLs (S3) and the file is over [`MAX_INLINE_BYTES`], a redirect
//! to a presigned URL valid for [`URL_TTL`].

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
use wa_api::ApiQuery;
use wa_api::{AppState, AuthedApp};
use wa_core::media::MediaPath;
use wa_errors::schema::ErrorResponse;
use wa_errors::{ApiError, ApiResult};

/// The largest file answered with its bytes where the media store hands out URLs: a Lambda
/// response is at most 6 MB, its body base64-encoded.
pub const MAX_INLINE_BYTES: u64 = 4 * 1024 * 1024;

/// How long the presigned URL of a redirect stays valid.
pub const URL_TTL: Duration = Duration::from_secs(300);

/// Query of the media route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MediaQuery {
    /// `media_path` exactly as a message or webhook gave it.
    #[param(value_type = String, required = true, min_length = 1)]
    pub path: Option<String>,
}

/// Checks a media path against the caller's App: `media/<app_id>/<device_id>-<id>.<ext>`
/// of that App, nothing else (no traversal, no other App, no other characters;
/// [`MediaPath::parse`]). `None` for anything else (the route answers 404). Any text,
/// multibyte characters included, is answered without a panic.
pub fn authorize(path: &str, app_id: uuid::Uuid) -> Option<MediaPath> {
    MediaPath::parse(path).filter(|p| p.app_id() == app_id)
}

/// How `GET /media` answers with a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// 200 with the bytes.
    Bytes,
    /// 302 Found to a URL of the media store.
    Redirect,
}

/// How a file of `size` bytes is answered: by a redirect where the store hands out URLs
/// (`has_urls`) and the file is over [`MAX_INLINE_BYTES`]; with its bytes otherwise (always
/// from the data directory).
pub fn delivery(size: u64, has_urls: bool) -> Delivery {
    if has_urls && size > MAX_INLINE_BYTES {
        Delivery::Redirect
    } else {
        Delivery::Bytes
    }
}

fn redirect(url: &str) -> ApiResult<Response> {
    let location = HeaderValue::from_str(url).map_err(ApiError::internal)?;
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            // The URL expires: no cache may replay the redirect.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
    )
        .into_response())
}

/// Download an inbound media file
///
/// Files over 4 MiB in S3 (the AWS deployment) are answered with 302 Found to a presigned URL
/// valid for 5 minutes; clients follow it. The embedded server always answers 200.
#[utoipa::path(get, path = "/media", tag = "media", security(("app_token" = [])),
    params(MediaQuery),
    responses(
        (status = 200, description = "The file, with Content-Type, Content-Length and Content-Disposition", content_type = "application/octet-stream"),
        (status = 302, description = "Found: a file over 4 MiB in S3; `Location` is a presigned URL valid for 5 minutes", headers(("Location" = String, description = "The presigned URL"))),
        (status = 400, description = "validation_error: `path` is missing", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
        (status = 404, description = "not_found: no such file for this App (another App's path, traversal, tampering)", body = ErrorResponse),
    ))]
async fn media(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    ApiQuery(q): ApiQuery<MediaQuery>,
) -> ApiResult<Response> {
    let raw = q
        .path
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::validation("path", "`path` is required"))?;
    let not_found = || ApiError::not_found("no such media file");
    let path = authorize(&raw, app.app_id).ok_or_else(not_found)?;
    let store = ctx.media.as_ref().ok_or_else(not_found)?;
    let size = store.size(&path).await?.ok_or_else(not_found)?;
    if delivery(size, store.has_urls()) == Delivery::Redirect
        && let Some(url) = store.url(&path, URL_TTL).await?
    {
        return redirect(&url);
    }
    let file = store.get(&path).await?.ok_or_else(not_found)?;
    let mut res = file.bytes.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(file.content_type),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", path.file_name()))
    {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

/// The /media route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(media))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_scoped_to_the_app() {
        let app = uuid::Uuid::now_v7();
        let dev = uuid::Uuid::now_v7();
        let good = format!("media/{app}/{dev}-3EB0ABCDEF.jpg");
        assert_eq!(authorize(&good, app).as_deref(), Some(good.as_str()));
        for bad in [
            format!("media/{}/{dev}-3EB0ABCDEF.jpg", uuid::Uuid::now_v7()),
            format!("media/{app}/../{dev}-x.jpg"),
            format!("media/{app}/{dev}-3EB0/../x.jpg"),
            "/etc/passwd".to_string(),
            format!("media/{app}/{dev}-3EB0ABCDEF"),
            format!("media/{app}/nope-3EB0.jpg"),
            format!("media/{app}/{dev}-3EB0%2F.jpg"),
            format!("media/{app}/sub/{dev}-3EB0.jpg"),
            String::new(),
            // A multibyte character across byte 36 of the stem.
            format!("media/{app}/{}é-3EB0.png", "a".repeat(35)),
            format!("media/{app}/{}é-3EB0.png", "a".repeat(36)),
            format!("media/{app}/{dev}é-3EB0.png"),
            format!("media/{app}/{dev}-3EBé.png"),
            format!("media/{app}/{dev}-3EB0.pné"),
            format!("media/{app}/{dev}-.jpg"),
            format!("media/{app}/{dev}-3EB0."),
            format!("media/{app}/{}-3EB0.jpg", dev.simple()),
            format!("media/{app}/{{{dev}}}-3EB0.jpg"),
            format!("media/{app}/{dev}-3EB0.jpegxx"),
            format!("media/{app}/{dev}-3E-B0.jpg"),
            format!("media/{app}/-{dev}-3EB0.jpg"),
            format!("media/{app}/{dev}-{}.jpg", "A".repeat(200)),
            format!("media/{app}"),
            format!("media/{app}/"),
            "media/".to_string(),
            "é".repeat(100),
        ] {
            assert!(authorize(&bad, app).is_none(), "{bad}");
        }
    }

    #[test]
    fn large_files_are_redirected_only_where_the_store_has_urls() {
        use Delivery::{Bytes, Redirect};
        for (size, has_urls, expected) in [
            (0, false, Bytes),
            (MAX_INLINE_BYTES, false, Bytes),
            (MAX_INLINE_BYTES + 1, false, Bytes),
            (u64::MAX, false, Bytes),
            (0, true, Bytes),
            (MAX_INLINE_BYTES, true, Bytes),
            (MAX_INLINE_BYTES + 1, true, Redirect),
            (u64::MAX, true, Redirect),
        ] {
            assert_eq!(delivery(size, has_urls), expected, "{size} {has_urls}");
        }
    }

    /// The route over a data dir holding one file of the App.
    mod route {
        use std::sync::Arc;

        use axum::body::Body;
        use http::{Request, StatusCode};
        use http_body_util::BodyExt;
        use serde_json::Value;
        use tower::ServiceExt;
        use utoipa_axum::router::OpenApiRouter;
        use wa_core::apps::CreateApp;
        use wa_core::auth::JwtConfig;
        use wa_core::media::{MediaError, MediaPath, MediaStore};

        async fn get(router: &axum::Router, token: &str, query: &str) -> (StatusCode, Vec<u8>) {
            let req = Request::get(format!("/media?{query}"))
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            let res = router.clone().oneshot(req).await.unwrap();
            let status = res.status();
            let bytes = res.into_body().collect().await.unwrap().to_bytes().to_vec();
            (status, bytes)
        }

        fn enc(path: &str) -> String {
            form_urlencoded::byte_serialize(path.as_bytes()).collect()
        }

        /// The route over `media`, and an App with its token.
        async fn api(media: Arc<dyn MediaStore>) -> (axum::Router, uuid::Uuid, String) {
            let store = Arc::new(wa_store::SqliteStore::in_memory().unwrap());
            let queue = Arc::new(wa_queue::LocalQueue::in_memory(5).unwrap());
            let jwt = JwtConfig::new("0123456789abcdef0123456789abcdef", None, None).unwrap();
            let mut ctx = wa_api::Context::new(store, queue, jwt, false);
            ctx.set_media(media);
            let ctx = ctx.into_state();
            let created = ctx
                .apps
                .create("acme", CreateApp::named("a"))
                .await
                .unwrap();
            let (r, _) = OpenApiRouter::new()
                .merge(super::super::router())
                .split_for_parts();
            let router = wa_api::finish_router(r.with_state(ctx), 1 << 20, Default::default());
            (router, created.app.app_id, created.app_token)
        }

        #[tokio::test]
        async fn odd_paths_answer_404_never_500() {
            let dir = tempfile::tempdir().unwrap();
            let (router, app, token) = api(Arc::new(wa_media::DirMedia::new(dir.path()))).await;

            let dev = uuid::Uuid::now_v7();
            let good = format!("media/{app}/{dev}-3EB0ABC.png");
            std::fs::create_dir_all(dir.path().join(format!("media/{app}"))).unwrap();
            std::fs::write(dir.path().join(&good), b"png bytes").unwrap();
            assert_eq!(
                get(&router, &token, &format!("path={}", enc(&good))).await,
                (StatusCode::OK, b"png bytes".to_vec())
            );

            let not_found = [
                format!("media/{app}/{}é-3EB0.png", "a".repeat(35)),
                format!("media/{app}/{dev}é-3EB0.png"),
                "media/".to_string(),
                format!("media/{app}/"),
                format!("media/{app}/../{app}/{dev}-3EB0ABC.png"),
                format!("media/{app}/{dev}-3EB0ABC.png/.."),
                format!("media/{app}%2F{dev}-3EB0ABC.png"),
                format!("media/{app}/{dev}-3EB0ABC%2Epng"),
                format!("media/{app}/{dev}-{}.png", "A".repeat(10_000)),
                "é".repeat(5_000),
                format!("media/{}/{dev}-3EB0ABC.png", uuid::Uuid::now_v7()),
            ];
            for path in not_found {
                // Encoded, so `%2F` reaches the route as it is; and as written when that is a
                // valid query with the same meaning.
                let mut queries = vec![format!("path={}", enc(&path))];
                if path.is_ascii() && !path.contains('%') {
                    queries.push(format!("path={path}"));
                }
                for query in queries {
                    let (status, body) = get(&router, &token, &query).await;
                    let v: Value = serde_json::from_slice(&body)
                        .unwrap_or_else(|_| panic!("{query}: {status}"));
                    assert_eq!(
                        (status, v["error"]["code"].as_str()),
                        (StatusCode::NOT_FOUND, Some("not_found")),
                        "{query}"
                    );
                }
            }
            for query in ["path=", ""] {
                let (status, body) = get(&router, &token, query).await;
                let v: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(
                    (status, v["error"]["details"]["field"].as_str()),
                    (StatusCode::BAD_REQUEST, Some("path")),
                    "{query}"
                );
            }
        }

        async fn get_response(
            router: &axum::Router,
            token: &str,
            path: &str,
        ) -> (StatusCode, http::HeaderMap, Vec<u8>) {
            let req = Request::get(format!("/media?path={}", enc(path)))
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            let res = router.clone().oneshot(req).await.unwrap();
            let (status, headers) = (res.status(), res.headers().clone());
            let bytes = res.into_body().collect().await.unwrap().to_bytes().to_vec();
            (status, headers, bytes)
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn on_s3_files_up_to_4_mib_are_answered_and_larger_ones_redirected() {
            let endpoint = wa_testkit::moto::endpoint();
            let s3 = wa_media::S3Media::new(
                wa_media::S3Media::emulator_client(endpoint, wa_testkit::moto::REGION),
                format!("wa-test-{}", uuid::Uuid::new_v4().simple()),
            );
            s3.create_bucket().await.unwrap();
            let s3 = Arc::new(s3);
            let (router, app, token) = api(s3.clone()).await;
            let dev = uuid::Uuid::now_v7();
            let limit = super::super::MAX_INLINE_BYTES as usize;
            let small = MediaPath::inbound(app, dev, "SMALL", "image/jpeg");
            let large = MediaPath::inbound(app, dev, "LARGE", "application/pdf");
            let bytes = |n: usize| (0..n).map(|i| (i % 253) as u8).collect::<Vec<u8>>();
            s3.put(&small, &bytes(limit)).await.unwrap();
            s3.put(&large, &bytes(limit + 1)).await.unwrap();

            let (status, headers, body) = get_response(&router, &token, &small).await;
            assert_eq!(status, StatusCode::OK);
            assert!(body == bytes(limit), "the bytes of a file of exactly 4 MiB");
            assert_eq!(headers["content-type"], "image/jpeg");
            assert_eq!(
                headers["content-disposition"],
                format!("attachment; filename=\"{dev}-SMALL.jpg\"")
            );

            let (status, headers, body) = get_response(&router, &token, &large).await;
            assert_eq!((status, body.len()), (StatusCode::FOUND, 0));
            assert_eq!(headers["cache-control"], "no-store");
            let location = headers["location"].to_str().unwrap().to_owned();
            assert!(location.starts_with(endpoint), "{location}");
            assert!(location.contains("X-Amz-Expires=300"), "{location}");
            let res = reqwest::get(&location).await.unwrap();
            assert_eq!(res.status(), 200);
            assert_eq!(res.headers()["content-type"], "application/pdf");
            assert!(res.bytes().await.unwrap() == bytes(limit + 1));

            let other_app =
                MediaPath::inbound(uuid::Uuid::now_v7(), dev, "LARGE", "application/pdf");
            s3.put(&other_app, b"%PDF").await.unwrap();
            let missing = MediaPath::inbound(app, dev, "MISSING", "image/jpeg");
            for path in [&other_app, &missing] {
                let (status, _, body) = get_response(&router, &token, path).await;
                let v: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(
                    (status, v["error"]["code"].as_str()),
                    (StatusCode::NOT_FOUND, Some("not_found")),
                    "{path}"
                );
            }
        }

        /// A media store whose backend fails.
        struct Failing;

        #[async_trait::async_trait]
        impl MediaStore for Failing {
            async fn put(&self, _: &MediaPath, _: &[u8]) -> Result<(), MediaError> {
                Err(MediaError::Backend("down".into()))
            }
            async fn get(
                &self,
                _: &MediaPath,
            ) -> Result<Option<wa_core::media::Media>, MediaError> {
                Err(MediaError::Backend("down".into()))
            }
            async fn size(&self, _: &MediaPath) -> Result<Option<u64>, MediaError> {
                Err(MediaError::Unavailable("down".into()))
            }
            fn has_urls(&self) -> bool {
                false
            }
            async fn url(
                &self,
                _: &MediaPath,
                _: std::time::Duration,
            ) -> Result<Option<String>, MediaError> {
                Ok(None)
            }
            async fn delete_device(&self, _: uuid::Uuid, _: uuid::Uuid) -> Result<(), MediaError> {
                Err(MediaError::Backend("down".into()))
            }
            async fn delete_app(&self, _: uuid::Uuid) -> Result<(), MediaError> {
                Err(MediaError::Backend("down".into()))
            }
        }

        #[tokio::test]
        async fn a_failing_store_answers_500_without_its_cause() {
            let (router, app, token) = api(Arc::new(Failing)).await;
            let path = MediaPath::inbound(app, uuid::Uuid::now_v7(), "X", "image/png");
            let (status, _, body) = get_response(&router, &token, &path).await;
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(v["error"]["code"], "internal_error");
            assert!(!String::from_utf8_lossy(&body).contains("down"), "{v}");
        }
    }
}
