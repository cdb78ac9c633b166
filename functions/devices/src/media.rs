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
/// nothing else (no traversal, no other App). Answers the path relative to the data dir.
pub fn authorize(path: &str, app_id: uuid::Uuid) -> Option<String> {
    let rest = path.strip_prefix("media/")?;
    let (app, file) = rest.split_once('/')?;
    if app != app_id.to_string() || file.is_empty() || file.len() > 200 {
        return None;
    }
    let (stem, ext) = file.rsplit_once('.')?;
    let ok_stem = stem.len() > 37
        && uuid::Uuid::parse_str(&stem[..36]).is_ok()
        && stem.as_bytes()[36] == b'-'
        && stem[37..].bytes().all(|b| b.is_ascii_alphanumeric());
    let ok_ext = (1..=5).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphanumeric());
    (ok_stem && ok_ext).then(|| format!("media/{app}/{file}"))
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
        ] {
            assert!(authorize(&bad, app).is_none(), "{bad}");
        }
    }
}
