//! The message routes (App token): send (every type, Idempotency-Key, `Prefer:
//! respond-async`), list, get, cancel; edit, revoke and read receipts (`actions`). Served
//! by the messages Lambda and by `wa-server`.

mod actions;
pub mod reply;
pub mod sends;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wa_api::openapi::Envelope;
use wa_api::views::{MessageData, MessageView};
use wa_api::{ApiJson, ApiQuery, ok};
use wa_api::{AppState, AuthedApp, AuthedAppDevice};
use wa_core::messages::{SendRequest, is_valid_message_id, validate_idempotency_key};
use wa_core::store::MessageCursor;
use wa_errors::schema::ErrorResponse;
use wa_errors::{ApiError, ApiResult, parse_uuid};

const PATH_ID: &str = "The device's id";

fn device_id(raw: &str) -> ApiResult<Uuid> {
    parse_uuid("device_id", raw)
}

fn message_id(raw: &str) -> ApiResult<&str> {
    if is_valid_message_id(raw) {
        Ok(raw)
    } else {
        Err(ApiError::validation(
            "message_id",
            "`message_id` is not a message id",
        ))
    }
}

/// Send a message
///
/// Answers 200 once WhatsApp accepted it (`sent`); 202 (`queued`) after `WA_SEND_WAIT_MS`
/// or at once with `Prefer: respond-async`; or the error of the table. With an
/// `Idempotency-Key` (1-255 chars) the first answer is replayed (`Idempotent-Replayed: true`)
/// for 24 h; the same key with another body is 409 conflict.
#[utoipa::path(post, path = "/devices/{device_id}/messages", tag = "messages", security(("app_token" = [])),
    params(
        ("device_id" = Uuid, Path, description = PATH_ID),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: 1-255 visible ASCII characters, kept 24 h per App"),
        ("Prefer" = Option<String>, Header, description = "`respond-async` answers 202 at once"),
    ),
    request_body = SendRequest,
    responses(
        (status = 200, description = "Sent", body = Envelope<MessageData>),
        (status = 202, description = "Queued: poll GET .../messages/{message_id} or listen to webhooks", body = Envelope<MessageData>),
        (status = 400, description = "validation_error: `details.field` names the field", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
        (status = 403, description = "forbidden, or group_posting_restricted (final)", body = ErrorResponse),
        (status = 404, description = "not_found", body = ErrorResponse),
        (status = 408, description = "request_canceled: canceled, or the device was disconnected while the send waited", body = ErrorResponse),
        (status = 409, description = "device_not_connected, logged_out, or conflict (Idempotency-Key reused with another body)", body = ErrorResponse),
        (status = 410, description = "device_destroyed", body = ErrorResponse),
        (status = 413, description = "request_too_large: send media by `url`", body = ErrorResponse),
        (status = 429, description = "provider_rate_limit: still queued, retried automatically (`Retry-After`, `details.message_id`)", body = ErrorResponse),
        (status = 502, description = "provider_error", body = ErrorResponse),
        (status = 503, description = "whatsapp_connection_lost / whatsapp_connection_aborted", body = ErrorResponse),
        (status = 504, description = "upstream_timeout / group_prekey_timeout (retry with the same Idempotency-Key)", body = ErrorResponse),
    ))]
async fn send(
    State(ctx): State<AppState>,
    AuthedAppDevice(app, read): AuthedAppDevice,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SendRequest>,
) -> ApiResult<Response> {
    let id = device_id(&id)?;
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(validate_idempotency_key(v.to_str().map_err(|_| {
            ApiError::validation("Idempotency-Key", "`Idempotency-Key` must be visible ASCII")
        })?)?),
    };
    let respond_async = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("respond-async"));
    let reply = ctx
        .messages
        .send(&app, id, read, body, key, respond_async)
        .await?;
    Ok(reply::answer(&reply, &wa_errors::request_id::current()).into_response())
}

/// Query of the message list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageListQuery {
    /// Page size, 1-200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageList {
    pub messages: Vec<MessageView>,
    pub count: usize,
    pub next_cursor: Option<String>,
}

fn encode_cursor(c: &MessageCursor) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", c.created_ms, c.message_id))
}

fn decode_cursor(raw: &str) -> ApiResult<MessageCursor> {
    let bad = || ApiError::validation("cursor", "`cursor` is not a cursor this API issued");
    let text = URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(bad)?;
    let (ms, id) = text.split_once(':').ok_or_else(bad)?;
    Ok(MessageCursor {
        created_ms: ms.parse().map_err(|_| bad())?,
        message_id: message_id(id).map_err(|_| bad())?.to_owned(),
    })
}

/// The device's messages, both directions, newest first
#[utoipa::path(get, path = "/devices/{device_id}/messages", operation_id = "list_messages", tag = "messages", security(("app_token" = [])),
    params(("device_id" = Uuid, Path, description = PATH_ID), MessageListQuery),
    responses(
        (status = 200, description = "One page", body = Envelope<MessageList>),
        (status = 400, description = "validation_error", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
        (status = 403, description = "forbidden", body = ErrorResponse),
        (status = 404, description = "not_found", body = ErrorResponse),
    ))]
async fn list(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<MessageListQuery>,
) -> ApiResult<impl IntoResponse> {
    let id = device_id(&id)?;
    let limit = wa_api::check_limit(q.limit)?;
    let cursor = q
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(decode_cursor)
        .transpose()?;
    let (items, next) = ctx.messages.list(&app, id, limit, cursor.as_ref()).await?;
    let messages: Vec<MessageView> = items.iter().map(MessageView::from).collect();
    Ok(ok(MessageList {
        count: messages.len(),
        messages,
        next_cursor: next.as_ref().map(encode_cursor),
    }))
}

/// One message
#[utoipa::path(get, path = "/devices/{device_id}/messages/{message_id}", tag = "messages", security(("app_token" = [])),
    params(("device_id" = Uuid, Path, description = PATH_ID), ("message_id" = String, Path, description = "The message's id", pattern = r"^[A-Za-z0-9._:-]{1,128}$")),
    responses(
        (status = 200, description = "The message", body = Envelope<MessageData>),
        (status = 400, description = "validation_error", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
        (status = 403, description = "forbidden", body = ErrorResponse),
        (status = 404, description = "not_found", body = ErrorResponse),
    ))]
async fn get_message(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path((id, mid)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let m = ctx
        .messages
        .get(&app, device_id(&id)?, message_id(&mid)?)
        .await?;
    Ok(ok(MessageData {
        message: MessageView::from(&m),
    }))
}

/// Cancel a queued send
///
/// A caller still waiting on it gets 408 request_canceled. Only `queued` sends can be
/// canceled (409 conflict otherwise).
#[utoipa::path(delete, path = "/devices/{device_id}/messages/{message_id}", tag = "messages", security(("app_token" = [])),
    params(("device_id" = Uuid, Path, description = PATH_ID), ("message_id" = String, Path, description = "The message's id", pattern = r"^[A-Za-z0-9._:-]{1,128}$")),
    responses(
        (status = 200, description = "Canceled", body = Envelope<MessageData>),
        (status = 400, description = "validation_error", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
        (status = 403, description = "forbidden", body = ErrorResponse),
        (status = 404, description = "not_found", body = ErrorResponse),
        (status = 409, description = "conflict: not queued any more", body = ErrorResponse),
    ))]
async fn cancel(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path((id, mid)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let m = ctx
        .messages
        .cancel(&app, device_id(&id)?, message_id(&mid)?)
        .await?;
    Ok(ok(MessageData {
        message: MessageView::from(&m),
    }))
}

/// The message routes with their OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send, list))
        .routes(routes!(get_message, cancel, actions::edit))
        .routes(routes!(actions::revoke))
        .routes(routes!(actions::read))
}

#[cfg(test)]
mod tests;
