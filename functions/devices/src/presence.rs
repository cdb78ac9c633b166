//! What a device shows others: typing or recording in a chat, and its own presence. Both
//! need a connected device and are carried out by its live session (asked of its worker
//! like the profile); each answers 204 once WhatsApp has the stanza.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use wa_api::openapi::SessionRefusals;
use wa_api::{ApiJson, AppState, AuthedApp};
use wa_core::provider::{ChatState, OwnPresence};
use wa_core::session::SessionRequest;
use wa_errors::ApiResult;

use crate::{PATH_ID, device_id};

/// Body of `POST /devices/{device_id}/chats/{jid}/presence`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"state": "composing"}))]
pub(crate) struct ChatPresenceRequest {
    /// `composing` (typing), `recording` (a voice note) or `paused` (neither).
    state: ChatState,
}

/// Body of `PUT /devices/{device_id}/presence`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"presence": "available"}))]
pub(crate) struct PresenceRequest {
    /// `available` (online) or `unavailable`.
    presence: OwnPresence,
}

/// Show typing or recording in a chat
#[utoipa::path(post, path = "/devices/{device_id}/chats/{jid}/presence", tag = "devices", security(("app_token" = [])),
    operation_id = "set_chat_presence",
    params(
        ("device_id" = Uuid, Path, description = PATH_ID),
        ("jid" = String, Path, description = "The chat: a JID (`@s.whatsapp.net`, `@lid`, `@g.us`) or a phone number"),
    ),
    request_body = ChatPresenceRequest,
    responses(
        (status = 204, description = "Shown in the chat"),
        SessionRefusals,
    ))]
pub(crate) async fn chat_presence(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path((id, jid)): Path<(String, String)>,
    ApiJson(body): ApiJson<ChatPresenceRequest>,
) -> ApiResult<StatusCode> {
    let id = device_id(&id)?;
    let jid = wa_core::jid::normalize("jid", &jid)?;
    let request = SessionRequest::ChatPresence {
        jid,
        state: body.state,
    };
    carry_out(&ctx, &app, id, request).await
}

/// Set the device's own presence
#[utoipa::path(put, path = "/devices/{device_id}/presence", tag = "devices", security(("app_token" = [])),
    operation_id = "set_own_presence",
    params(("device_id" = Uuid, Path, description = PATH_ID)),
    request_body = PresenceRequest,
    responses(
        (status = 204, description = "Set"),
        SessionRefusals,
    ))]
pub(crate) async fn set_presence(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PresenceRequest>,
) -> ApiResult<StatusCode> {
    let request = SessionRequest::SetPresence {
        presence: body.presence,
    };
    carry_out(&ctx, &app, device_id(&id)?, request).await
}

/// Asks the connected device `id` of `app` to carry out `request`: 204 once done.
async fn carry_out(
    ctx: &AppState,
    app: &wa_core::apps::App,
    id: uuid::Uuid,
    request: SessionRequest,
) -> ApiResult<StatusCode> {
    let d = ctx.devices.get(app, id).await?;
    d.ensure_connected()?;
    ctx.sessions.ask(&d, request).await?.into_done()?;
    Ok(StatusCode::NO_CONTENT)
}
