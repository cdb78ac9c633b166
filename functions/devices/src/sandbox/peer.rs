//! A peer's actions on messages, simulated: a reaction to a message of the device's
//! history, and an edit of a message the peer sent. Both come to
//! `POST /sandbox/devices/{id}/inbound` with `type` `reaction` or `edit`; each is asked of
//! the device's worker, answers 202, and its webhook event (`reaction`, `message_edited`)
//! follows.

use serde::Deserialize;
use serde_json::Value;
use wa_api::AppState;
use wa_core::devices::Device;
use wa_core::messages::{Direction, MAX_TEXT_CHARS, is_one_emoji, is_valid_message_id};
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
}

/// Whether `body` is a peer's action rather than a message.
pub(super) fn is_peer_action(body: &Value) -> bool {
    matches!(
        body.get("type").and_then(Value::as_str),
        Some("reaction" | "edit")
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
    };
    ctx.sessions.ask(d, request).await?.into_done()?;
    Ok(accepted())
}
