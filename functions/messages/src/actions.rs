//! The actions on a stored message: edit a sent text or caption (`PATCH`), delete a sent
//! message for everyone (`POST .../revoke`), send a read receipt for a received one
//! (`POST .../read`). Each needs a connected device and is carried out by its live session
//! (asked of its worker like the profile); the rules are `wa_core::messages::actions`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa::ToSchema;
use wa_api::openapi::{Envelope, SessionRefusals};
use wa_api::views::{MessageData, MessageView};
use wa_api::{ApiJson, AppState, AuthedApp, ok};
use wa_errors::ApiResult;

use crate::{PATH_ID, device_id, message_id};

/// Body of `PATCH /devices/{device_id}/messages/{message_id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"text": "See you at 6, not 5"}))]
pub(crate) struct EditRequest {
    /// The new text (1-65536 characters) or caption (1-1024).
    text: String,
}

/// Edit a sent message
///
/// Replaces the text of a text message, or the caption of an image, video or document,
/// that the device sent, at most 15 minutes after `sent_at` (409 conflict later, or for
/// another type).
#[utoipa::path(patch, path = "/devices/{device_id}/messages/{message_id}", tag = "messages", security(("app_token" = [])),
    operation_id = "edit_message",
    params(("device_id" = Uuid, Path, description = PATH_ID), ("message_id" = String, Path, description = "The message's id", pattern = r"^[A-Za-z0-9._:-]{1,128}$")),
    request_body = EditRequest,
    responses(
        (status = 200, description = "Edited: the message with `edited_at`", body = Envelope<MessageData>),
        SessionRefusals,
    ))]
pub(crate) async fn edit(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path((id, mid)): Path<(String, String)>,
    ApiJson(body): ApiJson<EditRequest>,
) -> ApiResult<impl IntoResponse> {
    let (id, mid) = (device_id(&id)?, message_id(&mid)?);
    let m = ctx
        .messages
        .edit(&*ctx.sessions, &app, id, mid, &body.text)
        .await?;
    Ok(ok(MessageData {
        message: MessageView::from(&m),
    }))
}

/// Delete a sent message for everyone
///
/// The message becomes `revoked`; asking again answers it as it is. A queued send is
/// canceled with DELETE instead (409 conflict here).
#[utoipa::path(post, path = "/devices/{device_id}/messages/{message_id}/revoke", tag = "messages", security(("app_token" = [])),
    operation_id = "revoke_message",
    params(("device_id" = Uuid, Path, description = PATH_ID), ("message_id" = String, Path, description = "The message's id", pattern = r"^[A-Za-z0-9._:-]{1,128}$")),
    responses(
        (status = 200, description = "Revoked: the message, status `revoked`", body = Envelope<MessageData>),
        SessionRefusals,
    ))]
pub(crate) async fn revoke(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path((id, mid)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let (id, mid) = (device_id(&id)?, message_id(&mid)?);
    let m = ctx.messages.revoke(&*ctx.sessions, &app, id, mid).await?;
    Ok(ok(MessageData {
        message: MessageView::from(&m),
    }))
}

/// Mark a received message read
///
/// Sends a read receipt for the message and for the earlier received messages of its chat
/// that were not read yet; each becomes `read`. Only received messages (409 conflict for a
/// sent one).
#[utoipa::path(post, path = "/devices/{device_id}/messages/{message_id}/read", tag = "messages", security(("app_token" = [])),
    operation_id = "mark_message_read",
    params(("device_id" = Uuid, Path, description = PATH_ID), ("message_id" = String, Path, description = "The message's id", pattern = r"^[A-Za-z0-9._:-]{1,128}$")),
    responses(
        (status = 204, description = "The receipt was sent"),
        SessionRefusals,
    ))]
pub(crate) async fn read(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path((id, mid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (id, mid) = (device_id(&id)?, message_id(&mid)?);
    ctx.messages.read(&*ctx.sessions, &app, id, mid).await?;
    Ok(StatusCode::NO_CONTENT)
}
