//! `GET /media?path=`: inbound media files, to their own App only.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
use wa_api::ApiQuery;
use wa_api::{AppState, AuthedApp};
use wa_errors::schema::ErrorResponse;
use wa_errors::{ApiError, ApiResult};

/// Query of the media route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MediaQuery {
    /// `media_path` exactly as a message or webhook gave it.
    #[param(value_type = String, required = true, min_length = 1)]
    pub path: Option<String>,
}

/// Checks a media path against the caller's App: `media/<app_id>/<device_id>-<id>.<ext>`,
/// nothing else (no traversal, no other App, no other characters). Answers the path relative
/// to the data dir, or `None` for anything else (the route answers 404). Never slices the
/// path by position: any text, multibyte characters included, is answered without a panic.
pub fn authorize(path: &str, app_id: uuid::Uuid) -> Option<String> {
    let rest = path.strip_prefix("media/")?;
    let (app, file) = rest.split_once('/')?;
    if app != app_id.to_string() || file.is_empty() || file.len() > 200 {
        return None;
    }
    let (stem, ext) = file.rsplit_once('.')?;
    // The id has no `-`, so the last one ends the device id.
    let (device, id) = stem.rsplit_once('-')?;
    let alnum = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
    // 36 characters: the hyphenated form only (parse_str also takes simple and braced ones).
    let ok_device = device.len() == 36 && uuid::Uuid::parse_str(device).is_ok();
    let ok_ext = ext.len() <= 5 && alnum(ext);
    (ok_device && alnum(id) && ok_ext).then(|| format!("media/{app}/{file}"))
}

fn content_type(ext: &str) -> &'static str {
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

/// Download an inbound media file
#[utoipa::path(get, path = "/media", tag = "media", security(("app_token" = [])),
    params(MediaQuery),
    responses(
        (status = 200, description = "The file, with Content-Type, Content-Length and Content-Disposition", content_type = "application/octet-stream"),
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
    let rel = authorize(&raw, app.app_id).ok_or_else(not_found)?;
    let root = ctx.media_root.as_ref().ok_or_else(not_found)?;
    let bytes = tokio::fs::read(root.join(&rel))
        .await
        .map_err(|_| not_found())?;
    let file = rel.rsplit('/').next().unwrap_or("media");
    let ext = file.rsplit('.').next().unwrap_or("");
    let mut res = bytes.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(ext)),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
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

        #[tokio::test]
        async fn odd_paths_answer_404_never_500() {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(wa_store::SqliteStore::in_memory().unwrap());
            let queue = Arc::new(wa_queue::LocalQueue::in_memory(5).unwrap());
            let jwt = JwtConfig::new("0123456789abcdef0123456789abcdef", None, None).unwrap();
            let mut ctx = wa_api::Context::new(store, queue, jwt, false);
            ctx.media_root = Some(dir.path().to_path_buf());
            let ctx = ctx.into_state();
            let created = ctx
                .apps
                .create(
                    "acme",
                    CreateApp {
                        name: "a".into(),
                        webhook_url: None,
                    },
                )
                .await
                .unwrap();
            let (app, token) = (created.app.app_id, created.app_token);
            let (r, _) = OpenApiRouter::new()
                .merge(super::super::router())
                .split_for_parts();
            let router = wa_api::finish_router(r.with_state(ctx), 1 << 20, Default::default());

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
    }
}
