//! A message arriving for a device, simulated (`POST /sandbox/devices/{id}/inbound`): the
//! fields of a send from `from` (a quote, mentions and polls included), checked like a
//! send's, handed to the worker like the real provider's inbound messages, answered once
//! stored.

use std::time::Duration;

use uuid::Uuid;
use wa_core::messages::{MessageType, SendRequest};
use wa_core::provider::{InboundDelivery, InboundMedia, InboundMessage};
use wa_core::time;
use wa_errors::{ApiError, ApiResult, ErrorCode};

use super::Sandbox;

impl Sandbox {
    /// Delivers a message from `from` with the fields of `request` to the worker: its id,
    /// once stored.
    pub(super) async fn deliver_inbound(
        &self,
        device_id: Uuid,
        from: &str,
        request: SendRequest,
    ) -> ApiResult<String> {
        let from = wa_core::jid::normalize("from", from)?;
        let mut req = request;
        if req.to.is_none() {
            // `to` is this account; the validation only needs a well-formed JID.
            req.to = Some(from.clone());
        }
        let valid = req.validate(true)?;
        // A peer's reaction is an action on a message (`SandboxControl::react`), not a
        // message of its own.
        if valid.content.kind() == MessageType::Reaction {
            return Err(ApiError::validation(
                "type",
                "the sandbox does not simulate incoming messages of this `type`",
            ));
        }
        self.live_creds(device_id)?;
        let message_id = wa_core::messages::new_message_id();
        let kind = valid.content.kind();
        let media = valid.media.map(|bytes| InboundMedia {
            mime_type: valid
                .content
                .media()
                .map(|m| m.mime_type.clone())
                .unwrap_or_default(),
            bytes,
            file_name: match &valid.content {
                wa_core::messages::Content::Document { file_name, .. } => file_name.clone(),
                _ => None,
            },
        });
        if kind.is_media() && media.is_none() {
            return Err(ApiError::validation(
                "data_base64",
                "sandbox inbound media must be sent inline as `data_base64`",
            ));
        }
        let chat = from.clone();
        // An `@lid` handed out to the device resolves through its kept pair.
        let paired = from
            .ends_with("@lid")
            .then(|| self.pairs.phone_of(device_id, &from))
            .flatten();
        let from_phone = super::contacts::sender_phone(&from, paired);
        let message = InboundMessage {
            message_id: message_id.clone(),
            chat,
            from,
            from_phone,
            kind,
            text: valid.content.display_text(),
            media,
            timestamp: time::now(),
            // The quoted message as the request named it; the worker fills in the rest
            // from the device's history, as for the real provider.
            reply_to: valid.reply_to,
            mentions: valid.mentions,
            content: (kind == MessageType::Poll).then_some(valid.content),
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inbound
            .send(InboundDelivery {
                device_id,
                message,
                stored: tx,
            })
            .map_err(|_| ApiError::internal("the worker is not running"))?;
        match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok(Ok(()))) => Ok(message_id),
            Ok(Ok(Err(e))) => Err(ApiError::internal(format!(
                "storing the inbound message failed: {e}"
            ))),
            _ => Err(ApiError::new(
                ErrorCode::UpstreamTimeout,
                "the worker did not store the message in time",
            )),
        }
    }
}
