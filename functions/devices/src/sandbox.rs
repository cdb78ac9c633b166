//! The sandbox's control routes (`WA_PROVIDER=sandbox` only): scan a QR with a chosen
//! outcome, drop a session, simulate a peer's presence, read what WhatsApp received and
//! which sessions the workers opened. The
//! sandbox lives in the worker's process: each route is a session request
//! (`wa_core::session`), asked after the device record allowed it.

mod group_event;
mod peer;

use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use wa_api::openapi::Envelope;
use wa_api::{ApiJson, ok};
use wa_api::{AppState, AuthedApp};
use wa_core::devices::{Device, DeviceStatus};
use wa_core::provider::{DropReason, ScanOutcome};
use wa_core::session::SessionRequest;
use wa_errors::schema::ErrorResponse;
use wa_errors::{ApiError, ApiResult};

use crate::views::{DeviceData, SentList, SessionList};
use crate::{device_answer, device_id};

/// Body of the scan route.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"wa_number": "15551230001"}))]
pub struct ScanRequest {
    /// The phone number of the simulated account.
    #[schema(pattern = r"^\+?[1-9][0-9]{6,14}$")]
    pub wa_number: String,
    /// `ok` (default), `too_many_devices` or `client_outdated`.
    #[serde(default = "ok_outcome")]
    pub outcome: ScanOutcome,
}

fn ok_outcome() -> ScanOutcome {
    ScanOutcome::Ok
}

/// Body of the drop route.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DropRequest {
    /// `logged_out` ends the session; `connection_lost` triggers the automatic reconnect.
    pub reason: DropReason,
}

/// Body of the presence route.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"jid": "15550001111", "presence": "available", "chat_state": "composing"}))]
pub struct PresenceRequest {
    /// The peer: a phone number or a JID.
    #[schema(
        pattern = r"^\+?[0-9]{6,20}$|^[0-9]{6,20}@(s\.whatsapp\.net|lid)$|^[0-9]{6,20}(-[0-9]{6,20})?@g\.us$"
    )]
    pub jid: String,
    /// `available` or `unavailable`.
    #[schema(pattern = r"^(available|unavailable)$")]
    pub presence: String,
    /// `composing`, `recording` or `paused`.
    #[serde(default)]
    #[schema(pattern = r"^(composing|recording|paused)$")]
    pub chat_state: Option<String>,
}

/// 202 `{"accepted": true}`: the simulated event was handed to the worker.
fn accepted() -> wa_api::ApiOk<serde_json::Value> {
    ok(serde_json::json!({"accepted": true})).with_status(axum::http::StatusCode::ACCEPTED)
}

/// The caller's live device (410 when destroyed).
async fn owned(ctx: &AppState, app: &wa_core::apps::App, raw: &str) -> ApiResult<Device> {
    let d = ctx.devices.get(app, device_id(raw)?).await?;
    d.ensure_alive()?;
    Ok(d)
}

/// Waits briefly until the worker recorded the consequence of a simulated event.
async fn settled(ctx: &AppState, before: &Device) -> ApiResult<Device> {
    let store = ctx.store.clone();
    let id = before.device_id;
    let from = before.status;
    let changed = ctx
        .notifier
        .wait_for(
            id,
            Duration::from_secs(5),
            Duration::from_millis(100),
            || {
                let store = store.clone();
                async move {
                    match store.get_device(id).await {
                        Ok(Some(d)) if d.status != from || d.updated_at != before.updated_at => {
                            Some(d)
                        }
                        _ => None,
                    }
                }
            },
        )
        .await;
    match changed {
        Some(d) => Ok(d),
        None => Ok(ctx
            .store
            .get_device(id)
            .await?
            .ok_or_else(|| ApiError::not_found("device not found"))?),
    }
}

/// Sandbox: scan the device's current QR
#[utoipa::path(post, path = "/sandbox/devices/{device_id}/scan", tag = "sandbox", security(("app_token" = [])),
    params(("device_id" = uuid::Uuid, Path, description = "The device's id")),
    request_body = ScanRequest,
    responses(
        (status = 200, description = "The device after the scan (`connected`, or `disconnected` with `last_error`)", body = Envelope<DeviceData>),
        (status = 400, description = "validation_error", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
        (status = 404, description = "not_found (also when the sandbox is off)", body = ErrorResponse),
        (status = 409, description = "conflict: no valid QR", body = ErrorResponse),
        (status = 410, description = "device_destroyed", body = ErrorResponse),
        (status = 504, description = "upstream_timeout: the device's worker did not answer in time (`WA_QUERY_WAIT_MS`)", body = ErrorResponse),
    ))]
async fn scan(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ScanRequest>,
) -> ApiResult<impl IntoResponse> {
    let d = owned(&ctx, &app, &id).await?;
    if d.status != DeviceStatus::QrGenerated {
        return Err(ApiError::conflict(format!(
            "the device has no valid QR to scan (status {})",
            d.status
        )));
    }
    let scan = SessionRequest::SandboxScan {
        wa_number: body.wa_number,
        outcome: body.outcome,
    };
    ctx.sessions.ask(&d, scan).await?.into_done()?;
    let d = settled(&ctx, &d).await?;
    Ok(device_answer(&d))
}

/// Sandbox: drop the device's session
#[utoipa::path(post, path = "/sandbox/devices/{device_id}/drop", tag = "sandbox", security(("app_token" = [])),
    params(("device_id" = uuid::Uuid, Path, description = "The device's id")),
    request_body = DropRequest,
    responses(
        (status = 200, description = "The device after the drop", body = Envelope<DeviceData>),
        (status = 400, description = "validation_error", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
        (status = 404, description = "not_found", body = ErrorResponse),
        (status = 409, description = "device_not_connected", body = ErrorResponse),
        (status = 410, description = "device_destroyed", body = ErrorResponse),
        (status = 504, description = "upstream_timeout: the device's worker did not answer in time (`WA_QUERY_WAIT_MS`)", body = ErrorResponse),
    ))]
async fn drop_session(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DropRequest>,
) -> ApiResult<impl IntoResponse> {
    let d = owned(&ctx, &app, &id).await?;
    let drop = SessionRequest::SandboxDrop {
        reason: body.reason,
    };
    ctx.sessions.ask(&d, drop).await?.into_done()?;
    let d = settled(&ctx, &d).await?;
    Ok(device_answer(&d))
}

/// Sandbox: a peer's presence or typing changes
#[utoipa::path(post, path = "/sandbox/devices/{device_id}/presence", operation_id = "sandbox_presence", tag = "sandbox", security(("app_token" = [])),
    params(("device_id" = uuid::Uuid, Path, description = "The device's id")),
    request_body = PresenceRequest,
    responses(
        (status = 202, description = "Accepted; the presence cache is updated"),
        (status = 400, description = "validation_error", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
        (status = 404, description = "not_found", body = ErrorResponse),
        (status = 409, description = "device_not_connected", body = ErrorResponse),
        (status = 410, description = "device_destroyed", body = ErrorResponse),
        (status = 504, description = "upstream_timeout: the device's worker did not answer in time (`WA_QUERY_WAIT_MS`)", body = ErrorResponse),
    ))]
async fn presence(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PresenceRequest>,
) -> ApiResult<impl IntoResponse> {
    let d = owned(&ctx, &app, &id).await?;
    let presence = SessionRequest::SandboxPresence {
        jid: body.jid,
        presence: body.presence,
        chat_state: body.chat_state,
    };
    ctx.sessions.ask(&d, presence).await?.into_done()?;
    Ok(accepted())
}

/// Sandbox: what the simulated WhatsApp received from the device
#[utoipa::path(get, path = "/sandbox/devices/{device_id}/sent", tag = "sandbox", security(("app_token" = [])),
    params(("device_id" = uuid::Uuid, Path, description = "The device's id")),
    responses(
        (status = 200, description = "In order of arrival; kept across restarts", body = Envelope<SentList>),
        (status = 400, description = "validation_error", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
        (status = 404, description = "not_found", body = ErrorResponse),
        (status = 504, description = "upstream_timeout: the device's worker did not answer in time (`WA_QUERY_WAIT_MS`)", body = ErrorResponse),
    ))]
async fn sent(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let d = ctx.devices.get(&app, device_id(&id)?).await?;
    let sent = ctx
        .sessions
        .ask(&d, SessionRequest::SandboxSent)
        .await?
        .into_sent()?;
    Ok(ok(SentList {
        count: sent.len(),
        sent,
    }))
}

/// Sandbox: every simulated session of the device
#[utoipa::path(get, path = "/sandbox/devices/{device_id}/sessions", operation_id = "sandbox_sessions", tag = "sandbox", security(("app_token" = [])),
    params(("device_id" = uuid::Uuid, Path, description = "The device's id")),
    responses(
        (status = 200, description = "Oldest first: the worker that opened each, its lease's epoch, when it opened and closed (`null`: open, or its worker died); shared by the workers of one data directory", body = Envelope<SessionList>),
        (status = 400, description = "validation_error", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
        (status = 403, description = "forbidden: the device belongs to another App of the tenant", body = ErrorResponse),
        (status = 404, description = "not_found", body = ErrorResponse),
        (status = 504, description = "upstream_timeout: the device's worker did not answer in time (`WA_QUERY_WAIT_MS`)", body = ErrorResponse),
    ))]
async fn sessions(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let d = ctx.devices.get(&app, device_id(&id)?).await?;
    let sessions = ctx
        .sessions
        .ask(&d, SessionRequest::SandboxSessions)
        .await?
        .into_sessions()?;
    Ok(ok(SessionList {
        count: sessions.len(),
        sessions,
    }))
}

/// Body of the inbound route: who sends, and the fields of a send. (The handler reads the
/// body itself, to refuse unknown fields; this type describes it in the OpenAPI document.)
///
/// Its schema is the send's object schema with `from` added and `to` optional: one object
/// with `additionalProperties: false`, never `allOf` of two closed objects (which no body
/// can satisfy: each forbids the other's fields).
#[derive(Debug)]
#[allow(dead_code)]
pub struct InboundRequest {
    pub from: String,
    pub message: wa_core::messages::SendRequest,
}

impl utoipa::PartialSchema for InboundRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
        let RefOr::T(Schema::Object(mut object)) =
            <wa_core::messages::SendRequest as utoipa::PartialSchema>::schema()
        else {
            unreachable!("a send request is described by an object schema")
        };
        object.description = Some(
            "Body of the inbound route: who sends, and the fields of a send (`to` defaults \
             to the sender)."
                .into(),
        );
        object.required.retain(|f| f != "to");
        object.required.insert(0, "from".into());
        object.properties.insert(
            "from".into(),
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(r"^\+?[0-9]{6,20}$|^[0-9]{6,20}@(s\.whatsapp\.net|lid)$|^[0-9]{6,20}(-[0-9]{6,20})?@g\.us$"))
                .description(Some(
                    "The sender: a phone number or a JID (a LID a contacts check or profile \
                     handed out resolves to its number, `9<number>@lid` to `<number>`).",
                ))
                .into(),
        );
        RefOr::T(Schema::Object(object))
    }
}

impl ToSchema for InboundRequest {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <wa_core::messages::SendRequest as ToSchema>::schemas(schemas);
    }
}

/// Sandbox: a message arrives for the device
#[utoipa::path(post, path = "/sandbox/devices/{device_id}/inbound", tag = "sandbox", security(("app_token" = [])),
    params(("device_id" = uuid::Uuid, Path, description = "The device's id")),
    request_body = InboundRequest,
    responses(
        (status = 200, description = "Stored: the message as listed", body = Envelope<wa_api::views::MessageData>),
        (status = 202, description = "`type` `reaction` (`message_id` of the device's history, `emoji`), `edit` (`message_id` of a message `from` sent, `text`) or `poll_vote` (`message_id` of a poll of the device's history, `selected_options`: its option names, none withdraws the vote): accepted; the `reaction`, `message_edited` or `poll_vote` event follows"),
        (status = 400, description = "validation_error", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
        (status = 404, description = "not_found (also `poll_vote` on an unknown poll)", body = ErrorResponse),
        (status = 409, description = "device_not_connected", body = ErrorResponse),
        (status = 410, description = "device_destroyed", body = ErrorResponse),
        (status = 504, description = "upstream_timeout: the device's worker did not answer in time (`WA_QUERY_WAIT_MS`)", body = ErrorResponse),
    ))]
async fn inbound(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> ApiResult<impl IntoResponse> {
    let d = owned(&ctx, &app, &id).await?;
    // `from` is taken out here: the rest must be exactly the fields of a send.
    let mut body = body;
    let from = body
        .as_object_mut()
        .and_then(|o| o.remove("from"))
        .ok_or_else(|| ApiError::validation("from", "`from` is required"))?;
    let from = from
        .as_str()
        .ok_or_else(|| ApiError::validation("from", "`from` must be a string"))?
        .to_owned();
    if peer::is_peer_action(&body) {
        return Ok(peer::act(&ctx, &d, &from, body).await?.into_response());
    }
    // Checked here, so that a bad field answers as a send's would; the worker gets the
    // checked fields as they came.
    let message = body.to_string();
    let send: wa_core::messages::SendRequest = wa_errors::parse_json(message.as_bytes())?;
    // A quote names a message of this device's history, as a send's does.
    if let Some(q) = &send.reply_to {
        let known = wa_core::messages::is_valid_message_id(&q.message_id)
            && ctx
                .store
                .get_message(d.device_id, &q.message_id)
                .await?
                .is_some();
        if !known {
            return Err(ApiError::validation(
                "reply_to",
                "`reply_to` names no message of this device",
            ));
        }
    }
    let inbound = SessionRequest::SandboxInbound {
        from,
        message: body,
    };
    let message_id = ctx.sessions.ask(&d, inbound).await?.into_message_id()?;
    let m = ctx
        .store
        .get_message(d.device_id, &message_id)
        .await?
        .ok_or_else(|| ApiError::internal("stored inbound message not found"))?;
    Ok(ok(wa_api::views::MessageData {
        message: wa_api::views::MessageView::from(&m),
    })
    .into_response())
}

/// Body of the receipt route.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptRequest {
    #[schema(pattern = r"^[A-Za-z0-9._:-]{1,128}$")]
    pub message_id: String,
    /// `delivered`, `read` or `played`.
    #[schema(value_type = String, pattern = r"^(delivered|read|played)$")]
    pub status: wa_core::messages::MessageStatus,
}

/// Sandbox: the recipient acknowledges a message
#[utoipa::path(post, path = "/sandbox/devices/{device_id}/receipt", tag = "sandbox", security(("app_token" = [])),
    params(("device_id" = uuid::Uuid, Path, description = "The device's id")),
    request_body = ReceiptRequest,
    responses(
        (status = 202, description = "Accepted; the message's status moves forward"),
        (status = 400, description = "validation_error", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
        (status = 404, description = "not_found: WhatsApp never received that message", body = ErrorResponse),
        (status = 409, description = "device_not_connected", body = ErrorResponse),
        (status = 410, description = "device_destroyed", body = ErrorResponse),
        (status = 504, description = "upstream_timeout: the device's worker did not answer in time (`WA_QUERY_WAIT_MS`)", body = ErrorResponse),
    ))]
async fn receipt(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReceiptRequest>,
) -> ApiResult<impl IntoResponse> {
    let d = owned(&ctx, &app, &id).await?;
    let receipt = SessionRequest::SandboxReceipt {
        message_id: body.message_id,
        status: body.status,
    };
    ctx.sessions.ask(&d, receipt).await?.into_done()?;
    Ok(accepted())
}

/// Body of the revoke route.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// An inbound message of the device.
    #[schema(pattern = r"^[A-Za-z0-9._:-]{1,128}$")]
    pub message_id: String,
}

/// Sandbox: the sender of an inbound message deletes it for everyone
#[utoipa::path(post, path = "/sandbox/devices/{device_id}/revoke", tag = "sandbox", security(("app_token" = [])),
    params(("device_id" = uuid::Uuid, Path, description = "The device's id")),
    request_body = RevokeRequest,
    responses(
        (status = 202, description = "Accepted; a `message_revoked` event follows"),
        (status = 400, description = "validation_error", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
        (status = 404, description = "not_found: no such inbound message", body = ErrorResponse),
        (status = 409, description = "device_not_connected", body = ErrorResponse),
        (status = 410, description = "device_destroyed", body = ErrorResponse),
        (status = 504, description = "upstream_timeout: the device's worker did not answer in time (`WA_QUERY_WAIT_MS`)", body = ErrorResponse),
    ))]
async fn revoke(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RevokeRequest>,
) -> ApiResult<impl IntoResponse> {
    let d = owned(&ctx, &app, &id).await?;
    let m = ctx
        .store
        .get_message(d.device_id, &body.message_id)
        .await?
        .filter(|m| m.direction == wa_core::messages::Direction::Inbound)
        .ok_or_else(|| ApiError::not_found("no inbound message with this id"))?;
    let revoke = SessionRequest::SandboxRevoke {
        from: m.from.clone().unwrap_or_else(|| m.chat.clone()),
        message_id: m.message_id,
        chat: m.chat,
    };
    ctx.sessions.ask(&d, revoke).await?.into_done()?;
    Ok(accepted())
}

/// The /sandbox routes with their OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(scan))
        .routes(routes!(drop_session))
        .routes(routes!(presence))
        .routes(routes!(sent))
        .routes(routes!(sessions))
        .routes(routes!(inbound))
        .routes(routes!(receipt))
        .routes(routes!(revoke))
        .routes(routes!(group_event::group_event))
        .routes(routes!(peer::call))
}
