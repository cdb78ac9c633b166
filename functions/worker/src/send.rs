//! The send pipeline: one stored outbound message through pacing, crash recovery, its
//! media and the provider to its recorded outcome. What to do at each step is decided in
//! [`crate::decide`]; this module carries it out.

use wa_core::devices::Device;
use wa_core::messages::{
    MediaSource, Message, MessageError, MessageStatus, MessageUpdate, wait_key,
};
use wa_core::metrics::{self, SendOutcome};
use wa_core::provider::OutboundMessage;
use wa_core::queue::Received;
use wa_core::send_service::cancel_message;
use wa_core::store::{CHANGED, Settled, StoreError};
use wa_core::time;
use wa_core::webhooks::payload;
use wa_errors::ErrorCode;

use crate::decide::{self, Gate, Outcome};
use crate::{Next, Worker, media};

impl Worker {
    /// Sends one stored message: pacing, crash recovery, media, the provider, the outcome.
    /// `command` is the send command as received: its outcome's commit settles it where the
    /// store can (`Next::Settled`). `created`: the message as its send request created it,
    /// when the command carries it (`Command::Send::queued`): on the command's first
    /// delivery the send starts from it instead of reading the message, and the store
    /// refuses the `sending` mark made from it once the message changed, which sends this
    /// back to the read.
    pub(crate) async fn send(
        &self,
        device: &Device,
        message_id: &str,
        created: Option<&Message>,
        command: &Received,
    ) -> Result<Next, StoreError> {
        let receive_count = command.receive_count;
        let device_id = device.device_id;
        // Every write below is conditioned on this worker's lease of the device.
        let store = self.session_store(device_id)?;
        let mut copy = created.filter(|_| decide::starts_from_created(receive_count));
        let mut paced = false;
        let m = loop {
            let from_copy = copy.is_some();
            let m = match copy.take() {
                Some(c) => c.clone(),
                None => match store.get_message(device_id, message_id).await? {
                    Some(m) => m,
                    None => {
                        tracing::warn!(%device_id, %message_id, "send command for an unknown message dropped");
                        return Ok(Next::Done);
                    }
                },
            };
            match decide::gate(m.status, device.status, receive_count) {
                Gate::Go => {}
                // Anything but a send is decided on the stored message.
                _ if from_copy => continue,
                Gate::Skip => return Ok(Next::Done),
                Gate::Wait(delay) => return Ok(Next::RetryIn(delay)),
                Gate::Fail(error) => {
                    return self
                        .finish(&m, MessageStatus::Failed, Some(error), command)
                        .await;
                }
                Gate::Cancel { why, fail } => {
                    if let Err(e) = cancel_message(&*store, &self.notifier, &m, &why).await
                        && !matches!(e, StoreError::Conflict(_))
                    {
                        return Err(e);
                    }
                    if let Some(error) = fail {
                        return self
                            .finish(&m, MessageStatus::Failed, Some(error), command)
                            .await;
                    }
                    return Ok(Next::Done);
                }
            }
            if !paced {
                if let Some(wait) = self.pacing.take(device_id) {
                    return Ok(Next::RetryIn(wait));
                }
                paced = true;
            }
            if decide::ask_provider_first(m.status)
                && self.provider.was_sent(device_id, &m.message_id).await == Some(true)
            {
                tracing::info!(%device_id, message_id = %m.message_id, "already received by WhatsApp before the restart");
                return self.finish(&m, MessageStatus::Sent, None, command).await;
            }
            let sending = MessageUpdate {
                status: Some(MessageStatus::Sending),
                attempts: Some(m.attempts + 1),
                updated_at: Some(time::now()),
                ..MessageUpdate::default()
            };
            let marked = if from_copy {
                store.update_created_message(&m, &sending, &[]).await
            } else {
                store
                    .update_message(
                        device_id,
                        &m.message_id,
                        &sending,
                        &[MessageStatus::Queued, MessageStatus::Sending],
                        &[],
                    )
                    .await
            };
            match marked {
                Ok(m) => break m,
                // Changed since its create: decided again on the stored message.
                Err(StoreError::Conflict(CHANGED)) if from_copy => continue,
                // Canceled meanwhile.
                Err(StoreError::Conflict(_)) => return Ok(Next::Done),
                Err(e) => return Err(e),
            }
        };
        let attempt = m.attempts;
        let outbound = match self.outbound(&m).await? {
            Ok(o) => o,
            Err(error) => {
                return self
                    .finish(&m, MessageStatus::Failed, Some(error), command)
                    .await;
            }
        };
        let answer = self.provider.send(device_id, &outbound).await;
        let jitter = rand::random_range(0.8..1.2);
        match decide::outcome(answer, attempt, receive_count, jitter) {
            Outcome::Sent => {
                tracing::info!(%device_id, message_id = %m.message_id, attempt, "sent");
                self.finish(&m, MessageStatus::Sent, None, command).await
            }
            Outcome::RateLimited { error, retry_in } => {
                let u = MessageUpdate {
                    status: Some(MessageStatus::Queued),
                    error: Some(Some(error)),
                    next_attempt_at: Some(Some(time::now() + retry_in)),
                    updated_at: Some(time::now()),
                    ..MessageUpdate::default()
                };
                self.requeue(&m, &u).await?;
                self.notifier.notify(wait_key(device_id, &m.message_id));
                metrics::send_outcome(SendOutcome::RateLimited);
                tracing::info!(%device_id, message_id = %m.message_id, attempt, retry_in_ms = retry_in.as_millis() as u64, "rate limited; will retry");
                Ok(Next::RetryIn(retry_in))
            }
            Outcome::Reconnecting(wait) => {
                let u = MessageUpdate {
                    status: Some(MessageStatus::Queued),
                    updated_at: Some(time::now()),
                    ..MessageUpdate::default()
                };
                self.requeue(&m, &u).await?;
                Ok(Next::RetryIn(wait))
            }
            Outcome::Failed(error) => {
                tracing::info!(%device_id, message_id = %m.message_id, code = %error.code, "send failed");
                self.finish(&m, MessageStatus::Failed, Some(error), command)
                    .await
            }
        }
    }

    /// What the provider is handed: the content and its media bytes (inline ones from the
    /// store, URL ones fetched), or the error that fails the send.
    async fn outbound(
        &self,
        m: &Message,
    ) -> Result<Result<OutboundMessage, MessageError>, StoreError> {
        let Some(content) = m.content.clone() else {
            return Ok(Err(MessageError {
                code: ErrorCode::InternalError,
                message: "the message has no content".into(),
            }));
        };
        let media = match content.media() {
            None => None,
            Some(media) => match &media.source {
                MediaSource::Inline { .. } => {
                    match self
                        .session_store(m.device_id)?
                        .outbound_media(m.device_id, &m.message_id)
                        .await?
                    {
                        Some(bytes) => Some(bytes),
                        None => {
                            return Ok(Err(MessageError {
                                code: ErrorCode::InternalError,
                                message: "the message's media is missing".into(),
                            }));
                        }
                    }
                }
                MediaSource::Url { url } => {
                    match media::fetch(
                        url,
                        content.kind(),
                        &media.mime_type,
                        self.allow_private_urls,
                    )
                    .await
                    {
                        Ok(bytes) => Some(bytes),
                        Err(error) => return Ok(Err(error)),
                    }
                }
            },
        };
        Ok(Ok(OutboundMessage {
            message_id: m.message_id.clone(),
            to: m.to.clone(),
            content,
            media,
            reply_to: m.reply_to.clone(),
            mentions: m.mentions.clone(),
        }))
    }

    /// Puts a `sending` message back to `queued` (unless it moved on meanwhile).
    async fn requeue(&self, m: &Message, u: &MessageUpdate) -> Result<(), StoreError> {
        match self
            .session_store(m.device_id)?
            .update_message(
                m.device_id,
                &m.message_id,
                u,
                &[MessageStatus::Sending],
                &[],
            )
            .await
        {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Records the end of a send, with its command settled in the same commit where the
    /// store can, and wakes its waiting caller.
    pub(crate) async fn finish(
        &self,
        m: &Message,
        status: MessageStatus,
        error: Option<MessageError>,
        command: &Received,
    ) -> Result<Next, StoreError> {
        let now = time::now();
        let u = MessageUpdate {
            status: Some(status),
            sent_at: Some((status == MessageStatus::Sent).then_some(now)),
            error: Some(error),
            next_attempt_at: Some(None),
            updated_at: Some(now),
            ..MessageUpdate::default()
        };
        let mut next = m.clone();
        u.apply_to(&mut next);
        let events: Vec<_> = payload::message(&next).into_iter().collect();
        let mut settled = Next::Done;
        let store = self.session_store(m.device_id)?;
        match store
            .update_message_settling(
                m.device_id,
                &m.message_id,
                &u,
                &[MessageStatus::Queued, MessageStatus::Sending],
                &events,
                command,
                self.visibility,
            )
            .await
        {
            Ok((_, done)) => {
                if let Settled::Deleted { next: following } = done {
                    settled = Next::Settled(following);
                }
                match (status, &next.error) {
                    (MessageStatus::Sent, _) => {
                        metrics::send_outcome(SendOutcome::Sent);
                        metrics::send_latency(m.created_at);
                    }
                    (MessageStatus::Failed, Some(e)) => {
                        metrics::send_outcome(SendOutcome::Failed(e.code))
                    }
                    _ => {}
                }
            }
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
        self.notifier.notify(wait_key(m.device_id, &m.message_id));
        let inline = m
            .content
            .as_ref()
            .and_then(|c| c.media())
            .is_some_and(|media| matches!(media.source, MediaSource::Inline { .. }));
        if status == MessageStatus::Sent
            && inline
            && let Err(e) = store
                .delete_outbound_media(m.device_id, &m.message_id)
                .await
        {
            // A settled command is gone (and may have brought the next one): there is
            // nothing to retry, the media's bytes stay behind.
            if settled == Next::Done {
                return Err(e);
            }
            tracing::warn!(device_id = %m.device_id, message_id = %m.message_id, error = %e, "could not delete a sent message's media");
        }
        Ok(settled)
    }
}
