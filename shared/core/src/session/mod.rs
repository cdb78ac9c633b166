//! Session requests: the one mechanism for everything only a device's live session can
//! answer (profile, groups, contacts checks, and the sandbox's control routes, since the
//! sandbox lives in the worker's process).
//!
//! - [`SessionRequest`] / [`SessionAnswer`] / [`Reply`] (`wire`): what is asked and
//!   answered, tagged and versioned.
//! - [`execute`]: the one place where a request becomes a provider or sandbox call.
//! - [`Sessions`]: the port the HTTP handlers ask through, with two adapters:
//!   [`LocalSessions`] calls `execute` in this process (the worker runs here), and
//!   [`QueuedSessions`] (`queued`) puts a `Command::Ask` on the commands queue, routed like
//!   every command of the device, and waits for the worker's reply record in the store.
//!
//! Callers decide what the device record decides (410 destroyed, 409 not connected) before
//! asking; the answer and its errors are exactly what the provider or sandbox answered.

mod queued;
mod wire;

use async_trait::async_trait;
use std::sync::Arc;
use uuid::Uuid;
use wa_errors::{ApiError, ApiResult, ErrorCode};

use crate::devices::Device;
use crate::provider::{Provider, SandboxControl};

pub use queued::{
    DEFAULT_QUERY_WAIT, MAX_ASK_BYTES, QueuedSessions, REPLY_KEPT, check_ask_size, next_poll,
    poll_delay, query_wait, reply_expiry, still_wanted,
};
pub use wire::{Reply, ReplyError, SessionAnswer, SessionRequest};

/// The commands-queue group of a device's asks: their own FIFO group, so an ask never waits
/// behind the device's sends (a slow or rate-limited one), yet reaches the same owner.
pub fn ask_group(device_id: Uuid) -> String {
    format!("{device_id}:ask")
}

/// Where session requests are answered.
#[async_trait]
pub trait Sessions: Send + Sync {
    /// Asks `device`'s live session. The answer, or the error to answer with: the
    /// provider's or sandbox's own, 504 upstream_timeout when the device's worker does not
    /// answer in time (queued only), 413 request_too_large for a request too large to hand
    /// to the worker (queued only).
    async fn ask(&self, device: &Device, request: SessionRequest) -> ApiResult<SessionAnswer>;
}

/// 404 not_found: the sandbox's requests where the worker runs the real provider.
fn sandbox_off() -> ApiError {
    ApiError::not_found("the sandbox is not enabled (WA_PROVIDER=sandbox)")
}

/// 502 provider_error: a request this build does not know (a newer producer's).
fn unknown_request() -> ApiError {
    ApiError::new(
        ErrorCode::ProviderError,
        "the device's worker does not know this request; it runs an older version",
    )
}

/// Carries `request` out on the provider (or the sandbox, `None` unless
/// `WA_PROVIDER=sandbox`) for `device_id`. Errors are the provider's failures as API
/// errors, the sandbox's own errors, 404 not_found for a sandbox request without the
/// sandbox, 502 provider_error for an unknown request, 500 internal_error for an inbound
/// message whose fields are not a send's (the caller checked them).
pub async fn execute(
    provider: &dyn Provider,
    sandbox: Option<&dyn SandboxControl>,
    device_id: Uuid,
    request: SessionRequest,
) -> ApiResult<SessionAnswer> {
    use SessionRequest as R;
    let sb = || sandbox.ok_or_else(sandbox_off);
    Ok(match request {
        R::Profile { jid } => SessionAnswer::Profile(provider.profile(device_id, &jid).await?),
        R::Groups => SessionAnswer::Groups(provider.groups(device_id).await?),
        R::ChatPresence { jid, state } => {
            provider.chat_presence(device_id, &jid, state).await?;
            SessionAnswer::Done
        }
        R::SetPresence { presence } => {
            provider.set_presence(device_id, presence).await?;
            SessionAnswer::Done
        }
        R::EditMessage {
            chat,
            message_id,
            text,
        } => {
            provider
                .edit_message(device_id, &chat, &message_id, &text)
                .await?;
            SessionAnswer::Done
        }
        R::RevokeMessage { chat, message_id } => {
            provider
                .revoke_message(device_id, &chat, &message_id)
                .await?;
            SessionAnswer::Done
        }
        R::MarkRead { chat, messages } => {
            provider.mark_read(device_id, &chat, &messages).await?;
            SessionAnswer::Done
        }
        R::CheckContacts { phone_numbers } => {
            SessionAnswer::Contacts(provider.check_contacts(device_id, &phone_numbers).await?)
        }
        R::Group { request } => SessionAnswer::Group(provider.group(device_id, &request).await?),
        R::SandboxScan { wa_number, outcome } => {
            sb()?.scan(device_id, &wa_number, outcome).await?;
            SessionAnswer::Done
        }
        R::SandboxDrop { reason } => {
            sb()?.drop_session(device_id, reason).await?;
            SessionAnswer::Done
        }
        R::SandboxPresence {
            jid,
            presence,
            chat_state,
        } => {
            sb()?
                .presence(device_id, &jid, &presence, chat_state.as_deref())
                .await?;
            SessionAnswer::Done
        }
        R::SandboxSent => SessionAnswer::Sent(sb()?.sent(device_id).await?),
        R::SandboxSessions => SessionAnswer::Sessions(sb()?.sessions(device_id).await?),
        R::SandboxInbound { from, message } => {
            let sb = sb()?;
            let send = serde_json::from_value(message).map_err(|e| {
                ApiError::internal(format!("an inbound message that is not a send: {e}"))
            })?;
            SessionAnswer::MessageId(sb.inbound(device_id, &from, send).await?)
        }
        R::SandboxReceipt { message_id, status } => {
            sb()?.receipt(device_id, &message_id, status).await?;
            SessionAnswer::Done
        }
        R::SandboxRevoke {
            message_id,
            chat,
            from,
        } => {
            sb()?.revoke(device_id, &message_id, &chat, &from).await?;
            SessionAnswer::Done
        }
        R::SandboxReaction {
            chat,
            from,
            message_id,
            emoji,
        } => {
            sb()?
                .react(device_id, &chat, &from, &message_id, &emoji)
                .await?;
            SessionAnswer::Done
        }
        R::SandboxEdit {
            chat,
            from,
            message_id,
            text,
        } => {
            sb()?
                .edit(device_id, &chat, &from, &message_id, &text)
                .await?;
            SessionAnswer::Done
        }
        R::SandboxGroupEvent { update } => {
            sb()?.group_event(device_id, update).await?;
            SessionAnswer::Done
        }
        R::SandboxPollVote {
            chat,
            voter,
            poll_message_id,
            selected_options,
        } => {
            sb()?
                .poll_vote(
                    device_id,
                    &chat,
                    &voter,
                    &poll_message_id,
                    &selected_options,
                )
                .await?;
            SessionAnswer::Done
        }
        R::SandboxCall { from, is_video } => {
            sb()?.call(device_id, &from, is_video).await?;
            SessionAnswer::Done
        }
        R::Unknown => return Err(unknown_request()),
    })
}

/// Session requests answered in this process: the worker (its provider and the sandbox)
/// runs here (`wa-server` with `WA_WORKER=1`).
#[derive(Clone)]
pub struct LocalSessions {
    provider: Arc<dyn Provider>,
    sandbox: Option<Arc<dyn SandboxControl>>,
}

impl LocalSessions {
    /// The sessions of `provider`; `sandbox` when the provider is the sandbox.
    pub fn new(provider: Arc<dyn Provider>, sandbox: Option<Arc<dyn SandboxControl>>) -> Self {
        LocalSessions { provider, sandbox }
    }
}

#[async_trait]
impl Sessions for LocalSessions {
    async fn ask(&self, device: &Device, request: SessionRequest) -> ApiResult<SessionAnswer> {
        execute(
            &*self.provider,
            self.sandbox.as_deref(),
            device.device_id,
            request,
        )
        .await
    }
}

#[cfg(test)]
mod tests;
