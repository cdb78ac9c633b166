//! The device routes (App token): create, list, get, QR (JSON and PNG), QR regeneration,
//! pair code, disconnect, reconnect, destroy, presence (a peer's, typing in a chat, the
//! device's own), profile, groups and contacts checks; and the sandbox's control routes.
//! Served by the devices Lambda and by `wa-server`.

mod contacts;
mod groups;
mod media;
mod presence;
mod sandbox;
pub mod views;
pub mod webhook_events;
mod webhooks;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wa_api::openapi::Envelope;
use wa_api::{ApiJson, ApiQuery, ok};
use wa_api::{AppState, AuthedApp, ListQuery, encode_cursor};
use wa_core::devices::DeviceStatus;
use wa_core::session::SessionRequest;
use wa_errors::schema::ErrorResponse;
use wa_errors::{ApiError, ApiResult, parse_uuid};

pub use media::router as media_router;
pub use sandbox::router as sandbox_router;
use views::*;
pub use webhooks::router as webhooks_router;

/// The `{device}` answer of the device routes.
pub(crate) fn device_answer(d: &wa_core::devices::Device) -> wa_api::ApiOk<DeviceData> {
    ok(DeviceData {
        device: DeviceView::of(d),
    })
}

pub(crate) fn device_id(raw: &str) -> ApiResult<Uuid> {
    parse_uuid("device_id", raw)
}

/// Body of `POST /devices`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"device_name": "Support line"}))]
pub struct CreateDevice {
    /// 1-100 characters, unique among the App's live devices.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub device_name: String,
}

/// Query of `GET /devices`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceListQuery {
    /// Only devices with this status.
    #[param(value_type = Option<DeviceStatus>)]
    pub status: Option<String>,
    /// Page size, 1-200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Query of `GET /devices/{device_id}/qr`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QrQuery {
    /// `png` for the image itself (same as `Accept: image/png`), `json` (default).
    #[param(pattern = r"^(png|json)$")]
    pub format: Option<String>,
}

/// `?jid=` of presence and profile.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JidQuery {
    /// A phone number or a JID (`@s.whatsapp.net`, `@lid`, `@g.us`).
    #[param(value_type = String, required = true, pattern = r"^\+?[0-9]{6,20}$|^[0-9]{6,20}@(s\.whatsapp\.net|lid)$|^[0-9]{6,20}(-[0-9]{6,20})?@g\.us$")]
    pub jid: Option<String>,
}

/// Body of `POST /devices/{device_id}/pair-code`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"phone_number": "+15551230001"}))]
pub struct PairCodeRequest {
    /// The account's phone number in international format (digits, optional +).
    #[schema(pattern = r"^\+?[1-9][0-9]{6,14}$")]
    pub phone_number: String,
}

pub(crate) const PATH_ID: &str = "The device's id";

/// Create a device and start linking it
///
/// Answers once the first QR is there (`qr_generated`), or after a few seconds with
/// `initializing` if the provider is slow: poll `GET /devices/{device_id}` then.
#[utoipa::path(post, path = "/devices", tag = "devices", security(("app_token" = [])),
    request_body = CreateDevice,
    responses(
        (status = 201, description = "Created", body = Envelope<DeviceData>),
        (status = 400, description = "validation_error", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
        (status = 409, description = "conflict: a live device has this name", body = ErrorResponse),
    ))]
async fn create_device(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    ApiJson(body): ApiJson<CreateDevice>,
) -> ApiResult<impl IntoResponse> {
    let d = ctx.devices.create(&app, &body.device_name).await?;
    Ok(device_answer(&d).with_status(axum::http::StatusCode::CREATED))
}

/// Create a device (alias of `POST /devices`)
#[utoipa::path(post, path = "/devices/deploy", tag = "devices", security(("app_token" = [])),
    request_body = CreateDevice,
    responses(
        (status = 201, description = "Created", body = Envelope<DeviceData>),
        (status = 400, description = "validation_error", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
        (status = 409, description = "conflict", body = ErrorResponse),
    ))]
async fn deploy_device(
    state: State<AppState>,
    app: AuthedApp,
    body: ApiJson<CreateDevice>,
) -> ApiResult<impl IntoResponse> {
    create_device(state, app, body).await
}

/// List the App's devices
#[utoipa::path(get, path = "/devices", tag = "devices", security(("app_token" = [])),
    params(DeviceListQuery),
    responses(
        (status = 200, description = "One page, oldest first", body = Envelope<DeviceList>),
        (status = 400, description = "validation_error (status, limit, cursor)", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
    ))]
async fn list_devices(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    ApiQuery(q): ApiQuery<DeviceListQuery>,
) -> ApiResult<impl IntoResponse> {
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(DeviceStatus::parse(s).ok_or_else(|| {
            ApiError::validation("status", format!("`status` must be one of: {}", statuses()))
        })?),
    };
    let page = ListQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page()?;
    let page = ctx.devices.list(&app, status, page).await?;
    let devices: Vec<DeviceView> = page.items.iter().map(DeviceView::of).collect();
    Ok(ok(DeviceList {
        count: devices.len(),
        devices,
        next_cursor: page.next.map(encode_cursor),
    }))
}

fn statuses() -> String {
    DeviceStatus::ALL
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Get a device
#[utoipa::path(get, path = "/devices/{device_id}", tag = "devices", security(("app_token" = [])),
    params(("device_id" = Uuid, Path, description = PATH_ID)),
    responses(
        (status = 200, description = "The device (destroyed devices too)", body = Envelope<DeviceData>),
        (status = 400, description = "validation_error: `device_id` is not a UUID", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
        (status = 403, description = "forbidden: another App's device", body = ErrorResponse),
        (status = 404, description = "not_found", body = ErrorResponse),
    ))]
async fn get_device(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let d = ctx.devices.get(&app, device_id(&id)?).await?;
    Ok(device_answer(&d))
}

/// The current QR, as JSON or as a PNG image
#[utoipa::path(get, path = "/devices/{device_id}/qr", tag = "devices", security(("app_token" = [])),
    params(("device_id" = Uuid, Path, description = PATH_ID), QrQuery),
    responses(
        (status = 200, description = "The QR (`image/png` with `Accept: image/png` or `?format=png`)", body = Envelope<QrData>, content_type = "application/json"),
        (status = 400, description = "validation_error", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
        (status = 403, description = "forbidden", body = ErrorResponse),
        (status = 404, description = "not_found: no valid QR right now", body = ErrorResponse),
        (status = 410, description = "device_destroyed", body = ErrorResponse),
    ))]
async fn get_qr(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<QrQuery>,
) -> ApiResult<Response> {
    let png = match q.format.as_deref() {
        Some("png") => true,
        Some("json") => false,
        Some(_) => {
            return Err(ApiError::validation(
                "format",
                "`format` must be png or json",
            ));
        }
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("image/png")),
    };
    let d = ctx.devices.get(&app, device_id(&id)?).await?;
    d.ensure_alive()?;
    let now = wa_core::time::now();
    let qr = d.valid_qr(now).ok_or_else(|| {
        ApiError::not_found(format!(
            "the device has no valid QR (status {}); POST /devices/{{device_id}}/qr for a new one",
            d.status
        ))
    })?;
    if png {
        let bytes = qr.png().map_err(ApiError::internal)?;
        return Ok((
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("image/png")),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            bytes,
        )
            .into_response());
    }
    Ok(ok(QrData {
        qr: QrView {
            code: qr.code.clone(),
            image: qr.image().map_err(ApiError::internal)?.into_owned(),
            expires_at: qr.expires_at,
        },
    })
    .into_response())
}

/// Generate a new QR
///
/// Only from `expired`, `disconnected` or `logged_out` (else 409 qr_reset_not_allowed).
/// Linking again replaces the account the device had.
#[utoipa::path(post, path = "/devices/{device_id}/qr", tag = "devices", security(("app_token" = [])),
    params(("device_id" = Uuid, Path, description = PATH_ID)),
    responses(
        (status = 200, description = "Linking again; normally `qr_generated` with the QR", body = Envelope<DeviceData>),
        (status = 400, description = "validation_error", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
        (status = 403, description = "forbidden", body = ErrorResponse),
        (status = 404, description = "not_found", body = ErrorResponse),
        (status = 409, description = "qr_reset_not_allowed", body = ErrorResponse),
        (status = 410, description = "device_destroyed", body = ErrorResponse),
    ))]
async fn regenerate_qr(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let d = ctx.devices.regenerate_qr(&app, device_id(&id)?).await?;
    Ok(device_answer(&d))
}

/// Link by phone number instead of QR
#[utoipa::path(post, path = "/devices/{device_id}/pair-code", tag = "devices", security(("app_token" = [])),
    params(("device_id" = Uuid, Path, description = PATH_ID)),
    request_body = PairCodeRequest,
    responses(
        (status = 200, description = "The code to enter on the phone", body = Envelope<PairCodeData>),
        (status = 400, description = "validation_error", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
        (status = 403, description = "forbidden", body = ErrorResponse),
        (status = 404, description = "not_found", body = ErrorResponse),
        (status = 409, description = "qr_reset_not_allowed: a session is active", body = ErrorResponse),
        (status = 410, description = "device_destroyed", body = ErrorResponse),
        (status = 429, description = "provider_rate_limit: WhatsApp throttles pair codes for this number", body = ErrorResponse),
        (status = 503, description = "whatsapp_connection_lost", body = ErrorResponse),
        (status = 504, description = "upstream_timeout", body = ErrorResponse),
    ))]
async fn pair_code(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PairCodeRequest>,
) -> ApiResult<impl IntoResponse> {
    let id = device_id(&id)?;
    let p = ctx.devices.pair_code(&app, id, &body.phone_number).await?;
    Ok(ok(PairCodeData {
        pair_code: p.code,
        expires_at: p.expires_at,
    }))
}

/// Close the session, keep the credentials
#[utoipa::path(post, path = "/devices/{device_id}/disconnect", tag = "devices", security(("app_token" = [])),
    params(("device_id" = Uuid, Path, description = PATH_ID)),
    responses(
        (status = 200, description = "`disconnected`", body = Envelope<DeviceData>),
        (status = 400, description = "validation_error", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
        (status = 403, description = "forbidden", body = ErrorResponse),
        (status = 404, description = "not_found", body = ErrorResponse),
        (status = 409, description = "device_not_connected (expired) or logged_out", body = ErrorResponse),
        (status = 410, description = "device_destroyed", body = ErrorResponse),
    ))]
async fn disconnect(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let d = ctx.devices.disconnect(&app, device_id(&id)?).await?;
    Ok(device_answer(&d))
}

/// Resume with the stored credentials
#[utoipa::path(post, path = "/devices/{device_id}/reconnect", tag = "devices", security(("app_token" = [])),
    params(("device_id" = Uuid, Path, description = PATH_ID)),
    responses(
        (status = 200, description = "`connecting` or `connected`", body = Envelope<DeviceData>),
        (status = 400, description = "validation_error", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
        (status = 403, description = "forbidden", body = ErrorResponse),
        (status = 404, description = "not_found", body = ErrorResponse),
        (status = 409, description = "logged_out: never linked or logged out", body = ErrorResponse),
        (status = 410, description = "device_destroyed", body = ErrorResponse),
    ))]
async fn reconnect(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let d = ctx.devices.reconnect(&app, device_id(&id)?).await?;
    Ok(device_answer(&d))
}

/// Destroy a device
///
/// Unlinks it from WhatsApp and deletes its keys; terminal. Its name may be reused, its id
/// never.
#[utoipa::path(delete, path = "/devices/{device_id}", tag = "devices", security(("app_token" = [])),
    params(("device_id" = Uuid, Path, description = PATH_ID)),
    responses(
        (status = 200, description = "`destroyed`", body = Envelope<DeviceData>),
        (status = 400, description = "validation_error", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
        (status = 403, description = "forbidden", body = ErrorResponse),
        (status = 404, description = "not_found", body = ErrorResponse),
        (status = 410, description = "device_destroyed: already destroyed", body = ErrorResponse),
    ))]
async fn destroy(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let d = ctx.devices.destroy(&app, device_id(&id)?).await?;
    Ok(device_answer(&d))
}

fn required_jid(q: &JidQuery) -> ApiResult<&str> {
    q.jid
        .as_deref()
        .filter(|j| !j.trim().is_empty())
        .ok_or_else(|| ApiError::validation("jid", "`jid` is required"))
}

/// A peer's last known presence (cached)
#[utoipa::path(get, path = "/devices/{device_id}/presence", operation_id = "get_peer_presence", tag = "devices", security(("app_token" = [])),
    params(("device_id" = Uuid, Path, description = PATH_ID), JidQuery),
    responses(
        (status = 200, description = "Last known presence; `unknown` until WhatsApp reports one", body = Envelope<PresenceData>),
        (status = 400, description = "validation_error", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
        (status = 403, description = "forbidden", body = ErrorResponse),
        (status = 404, description = "not_found", body = ErrorResponse),
        (status = 409, description = "device_not_connected", body = ErrorResponse),
        (status = 410, description = "device_destroyed", body = ErrorResponse),
    ))]
async fn presence(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<JidQuery>,
) -> ApiResult<impl IntoResponse> {
    let id = device_id(&id)?;
    let jid = required_jid(&q)?;
    let p = ctx.devices.presence(&app, id, jid).await?;
    let view = match p {
        Some(p) => PresenceView {
            jid: p.jid,
            presence: p.presence,
            chat_state: p.chat_state,
            last_seen: p.last_seen,
            updated_at: Some(p.updated_at),
        },
        None => PresenceView {
            jid: wa_core::jid::normalize("jid", jid)?,
            presence: "unknown".into(),
            chat_state: None,
            last_seen: None,
            updated_at: None,
        },
    };
    Ok(ok(PresenceData { presence: view }))
}

/// A contact's or group's profile
#[utoipa::path(get, path = "/devices/{device_id}/profile", tag = "devices", security(("app_token" = [])),
    params(("device_id" = Uuid, Path, description = PATH_ID), JidQuery),
    responses(
        (status = 200, description = "Best effort: privacy can hide fields", body = Envelope<ProfileData>),
        (status = 400, description = "validation_error", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
        (status = 403, description = "forbidden", body = ErrorResponse),
        (status = 404, description = "not_found", body = ErrorResponse),
        (status = 409, description = "device_not_connected", body = ErrorResponse),
        (status = 410, description = "device_destroyed", body = ErrorResponse),
        (status = 502, description = "provider_error", body = ErrorResponse),
        (status = 504, description = "upstream_timeout", body = ErrorResponse),
    ))]
async fn profile(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<JidQuery>,
) -> ApiResult<impl IntoResponse> {
    let id = device_id(&id)?;
    let jid = wa_core::jid::normalize("jid", required_jid(&q)?)?;
    let d = ctx.devices.get(&app, id).await?;
    d.ensure_connected()?;
    let profile = ctx
        .sessions
        .ask(&d, SessionRequest::Profile { jid })
        .await?
        .into_profile()?;
    Ok(ok(ProfileData { profile }))
}

/// The /devices routes with their OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_device, list_devices))
        .routes(routes!(deploy_device))
        .routes(routes!(get_device, destroy))
        .routes(routes!(get_qr, regenerate_qr))
        .routes(routes!(pair_code))
        .routes(routes!(disconnect))
        .routes(routes!(reconnect))
        .routes(routes!(presence, presence::set_presence))
        .routes(routes!(presence::chat_presence))
        .routes(routes!(profile))
        .routes(routes!(groups::list_groups, groups::create_group))
        .routes(routes!(groups::get_group, groups::update_group))
        .routes(routes!(groups::change_participants))
        .routes(routes!(groups::get_invite))
        .routes(routes!(groups::revoke_invite))
        .routes(routes!(groups::join_group))
        .routes(routes!(groups::leave_group))
        .routes(routes!(contacts::check_contacts))
}

#[cfg(test)]
mod tests;
