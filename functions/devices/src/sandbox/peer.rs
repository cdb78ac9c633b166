//! A peer's actions on messages, simulated: a reaction to a message of the device's
//! history, an edit of a message the peer sent, a vote on a poll of the device's history.
//! They come to `POST /sandbox/devices/{id}/inbound` with `type` `reaction`, `edit` or
//! `poll_vote`; each is asked of the device's worker, answers 202, and its webhook event
//! (`reaction`, `message_edited`, `poll_vote`) follows.

use serde::Deserialize;
use serde_json::Value;
use wa_api::AppState;
use wa_core::devices::Device;
use wa_core::messages::polls::{check_selection, poll_of};
use wa_core::messages::{
    Direction, MAX_TEXT_CHARS, MessageType, is_one_emoji, is_valid_message_id,
};
use wa_core::session::SessionRequest;
use wa_errors::{ApiError, ApiResult};

use super::accepted;

/// The body of a peer's action, `from` taken out.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum PeerAction {
    Reaction {
        message_id: String,
        emoji: String,
        /// Ignored: the chat is the sender's.
        #[serde(default)]
        #[allow(dead_code)]
        to: Option<String>,
    },
    Edit {
        message_id: String,
        text: String,
    },
    PollVote {
        message_id: String,
        selected_options: Vec<String>,
        /// Ignored: the chat is the poll's.
        #[serde(default)]
        #[allow(dead_code)]
        to: Option<String>,
    },
}

/// Whether `body` is a peer's action rather than a message.
pub(super) fn is_peer_action(body: &Value) -> bool {
    matches!(
        body.get("type").and_then(Value::as_str),
        Some("reaction" | "edit" | "poll_vote")
    )
}

/// 400 validation_error for `message_id`.
fn unknown_message(why: &'static str) -> ApiError {
    ApiError::validation("message_id", why)
}

/// Checks the action `body` of `from` on device `d` and has the worker report it.
pub(super) async fn act(
    ctx: &AppState,
    d: &Device,
    from: &str,
    body: Value,
) -> ApiResult<wa_api::ApiOk<Value>> {
    let from = wa_core::jid::normalize("from", from)?;
    let action: PeerAction = wa_errors::parse_json(body.to_string().as_bytes())?;
    let stored = |id: &str| {
        let (store, id) = (ctx.store.clone(), id.to_owned());
        async move {
            if !is_valid_message_id(&id) {
                return Ok(None);
            }
            store.get_message(d.device_id, &id).await
        }
    };
    let request = match action {
        PeerAction::Reaction {
            message_id, emoji, ..
        } => {
            if stored(&message_id).await?.is_none() {
                return Err(unknown_message(
                    "`message_id` must be a message of this device's history",
                ));
            }
            if !emoji.is_empty() && !is_one_emoji(&emoji) {
                return Err(ApiError::validation(
                    "emoji",
                    "`emoji` must be one emoji, or \"\" to take the reaction back",
                ));
            }
            SessionRequest::SandboxReaction {
                chat: from.clone(),
                from,
                message_id,
                emoji,
            }
        }
        PeerAction::Edit { message_id, text } => {
            let m = stored(&message_id)
                .await?
                .filter(|m| m.direction == Direction::Inbound && m.from.as_deref() == Some(&from))
                .ok_or_else(|| {
                    unknown_message("`message_id` must be a message `from` sent to this device")
                })?;
            let n = text.chars().count();
            if n == 0 || n > MAX_TEXT_CHARS {
                return Err(ApiError::validation(
                    "text",
                    "`text` must be 1-65536 characters",
                ));
            }
            SessionRequest::SandboxEdit {
                chat: m.chat,
                from,
                message_id,
                text,
            }
        }
        PeerAction::PollVote {
            message_id,
            selected_options,
            ..
        } => {
            let poll = stored(&message_id)
                .await?
                .filter(|m| m.kind == MessageType::Poll)
                .ok_or_else(|| {
                    ApiError::not_found("no poll with this `message_id` on this device")
                })?;
            let (options, count, _) = poll_of(poll.content.as_ref()).ok_or_else(|| {
                ApiError::not_found("no poll with this `message_id` on this device")
            })?;
            let selected_options = check_selection(options, count, &selected_options)?;
            d.ensure_connected()?;
            SessionRequest::SandboxPollVote {
                chat: poll.chat,
                voter: from,
                poll_message_id: message_id,
                selected_options,
            }
        }
    };
    ctx.sessions.ask(d, request).await?.into_done()?;
    Ok(accepted())
}

/// Body of the call route.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallRequest {
    /// The caller: a phone number or a JID.
    pub from: String,
    /// A video call (default a voice call).
    #[serde(default)]
    pub is_video: bool,
}

/// Sandbox: a peer calls the device
#[utoipa::path(post, path = "/sandbox/devices/{device_id}/call", tag = "sandbox", security(("app_token" = [])),
    params(("device_id" = uuid::Uuid, Path, description = "The device's id")),
    request_body = CallRequest,
    responses(
        (status = 202, description = "The device rings; a `call` event follows (`status` `offer`, or `rejected` with `WA_REJECT_CALLS=1`)"),
        (status = 400, description = "validation_error", body = wa_errors::schema::ErrorResponse),
        (status = 401, description = "invalid_api_key", body = wa_errors::schema::ErrorResponse),
        (status = 403, description = "forbidden: the device belongs to another App", body = wa_errors::schema::ErrorResponse),
        (status = 404, description = "not_found", body = wa_errors::schema::ErrorResponse),
        (status = 409, description = "device_not_connected", body = wa_errors::schema::ErrorResponse),
        (status = 410, description = "device_destroyed", body = wa_errors::schema::ErrorResponse),
        (status = 504, description = "upstream_timeout: the device's worker did not answer in time (`WA_QUERY_WAIT_MS`)", body = wa_errors::schema::ErrorResponse),
    ))]
pub(super) async fn call(
    axum::extract::State(ctx): axum::extract::State<AppState>,
    wa_api::AuthedApp(app): wa_api::AuthedApp,
    axum::extract::Path(id): axum::extract::Path<String>,
    wa_api::ApiJson(body): wa_api::ApiJson<CallRequest>,
) -> ApiResult<wa_api::ApiOk<Value>> {
    let d = super::owned(&ctx, &app, &id).await?;
    let from = wa_core::jid::normalize("from", &body.from)?;
    d.ensure_connected()?;
    let request = SessionRequest::SandboxCall {
        from,
        is_video: body.is_video,
    };
    ctx.sessions.ask(&d, request).await?.into_done()?;
    Ok(accepted())
}
