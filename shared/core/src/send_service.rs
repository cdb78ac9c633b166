//! The send use cases: accept (validate, reserve the Idempotency-Key, store, queue), wait
//! for the worker's outcome, replay, cancel, read. A send comes to a typed [`Outcome`]; the
//! HTTP code renders it, the sends consumer acts on it.

mod actions;

pub use actions::MAX_READ_SCAN;

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use uuid::Uuid;
use wa_errors::{ApiError, ApiResult, ErrorCode};

use crate::apps::App;
use crate::device_service::Devices;
use crate::devices::{Device, DeviceStatus};
use crate::messages::{
    Direction, Message, MessageError, MessageStatus, MessageUpdate, SendRequest, new_message_id,
    wait_key,
};
use crate::notify::Notifier;
use crate::queue::{Command, Queue, enqueue};
use crate::store::{Created, IdempotencyRecord, MessageCursor, Store, StoreError};
use crate::time;

/// How long an Idempotency-Key is remembered.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

/// The number an idempotency record keeps beside its outcome: the version of the outcome's
/// encoding, here the message as it was when it reached its final status, as JSON (without
/// its content, which no answer shows). Records of earlier versions keep an HTTP status
/// (200 and up) and a rendered body: a request with their key is answered from the
/// message's current state.
pub const KEPT_OUTCOME_FORMAT: u16 = 1;

/// A waited send reads its message again (when no notification came first) this often
/// for its first second, then half as often for two seconds, then every second: a slow
/// send (a device reconnecting, a recipient WhatsApp is slow with) waited on for the whole
/// 20 s of `WA_SEND_WAIT_MS` costs about 25 reads, not 80, and is answered at most a
/// second late.
const POLL: Duration = Duration::from_millis(250);
const LONGEST_POLL: Duration = Duration::from_secs(1);
const POLLS_PER_STEP: u32 = 4;

/// The first read of a waited send's message where its worker runs in another process
/// ([`Messages::first_look`]): one poll's time after the command was queued.
pub const FIRST_LOOK_ELSEWHERE: Duration = POLL;

/// The pause after the `n`-th read (0 first) of a waited send's message that found it still
/// in flight: [`POLL`] four times, then doubling every four reads, at most [`LONGEST_POLL`].
pub fn send_poll_delay(n: u32) -> Duration {
    crate::notify::doubling(POLL, POLLS_PER_STEP, LONGEST_POLL, n)
}

/// What a send came to.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// WhatsApp accepted it (the message may have gone further since: delivered, read).
    Sent(Message),
    /// Accepted and not sent yet (`queued` or `sending`): the caller asked not to wait, the
    /// wait ran out, or the send is still in flight when its key is used again.
    Queued(Message),
    /// It will not be sent (`failed` or `canceled`); `error` has its code,
    /// `details.message_id`, and `details.field` when its media URL was refused.
    Failed { message: Message, error: ApiError },
    /// WhatsApp rate-limited it: still queued, tried again automatically in `retry_after`
    /// (whole seconds, at least one); `error` is provider_rate_limit with
    /// `details.message_id`.
    RateLimited {
        message: Message,
        error: ApiError,
        retry_after: Duration,
    },
}

impl Outcome {
    /// The message the outcome is about.
    pub fn message(&self) -> &Message {
        match self {
            Outcome::Sent(m) | Outcome::Queued(m) => m,
            Outcome::Failed { message, .. } | Outcome::RateLimited { message, .. } => message,
        }
    }

    /// The outcome of a message that reached a final status: failed or canceled, else sent.
    pub fn of_final(m: Message) -> Outcome {
        match m.status {
            MessageStatus::Failed | MessageStatus::Canceled => Outcome::Failed {
                error: message_error(&m),
                message: m,
            },
            _ => Outcome::Sent(m),
        }
    }
}

/// A send's outcome, and whether it is the first one of its Idempotency-Key replayed.
#[derive(Debug, Clone)]
pub struct SendReply {
    pub outcome: Outcome,
    /// The key was used before and this is its answer again (`Idempotent-Replayed: true`):
    /// the first final outcome as it was kept (its message without content), or the
    /// current state of a send still in flight.
    pub replayed: bool,
}

impl SendReply {
    fn new(outcome: Outcome) -> SendReply {
        SendReply {
            outcome,
            replayed: false,
        }
    }

    fn replayed(outcome: Outcome) -> SendReply {
        SendReply {
            outcome,
            replayed: true,
        }
    }
}

/// How long a rate-limited message waits from `now` until its `next_attempt_at`: whole
/// seconds, at least one (also when the retry time is unknown or already past).
fn retry_after(
    next_attempt_at: Option<time::OffsetDateTime>,
    now: time::OffsetDateTime,
) -> Duration {
    let secs = next_attempt_at
        .map(|t| (t - now).whole_seconds().max(1) as u64)
        .unwrap_or(1);
    Duration::from_secs(secs)
}

/// The message as an idempotency record keeps it.
fn kept(m: &Message) -> Result<String, serde_json::Error> {
    let snapshot = Message {
        content: None,
        ..m.clone()
    };
    serde_json::to_string(&snapshot)
}

/// The outcome an idempotency record kept, if it kept one in this version's encoding.
fn kept_outcome(rec: &IdempotencyRecord) -> ApiResult<Option<Outcome>> {
    match &rec.response {
        Some((KEPT_OUTCOME_FORMAT, body)) => {
            let m: Message = serde_json::from_str(body).map_err(ApiError::internal)?;
            Ok(Some(Outcome::of_final(m)))
        }
        _ => Ok(None),
    }
}

/// The error a finished (or rate-limited) message is answered with.
fn message_error(m: &Message) -> ApiError {
    let (code, text) = match (&m.error, m.status) {
        (Some(e), _) => (e.code, e.message.clone()),
        (None, MessageStatus::Canceled) => {
            (ErrorCode::RequestCanceled, "the send was canceled".into())
        }
        (None, _) => (ErrorCode::ProviderError, "the send failed".into()),
    };
    let mut e = ApiError::new(code, text).with_detail("message_id", m.message_id.clone());
    if code == ErrorCode::ValidationError {
        e = e.with_detail("field", "url");
    }
    e
}

/// The send use cases.
#[derive(Clone)]
pub struct Messages {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    notifier: Arc<Notifier>,
    devices: Devices,
    /// `WA_SEND_WAIT_MS`: how long a send waits for WhatsApp before answering 202.
    pub send_wait: Duration,
    /// How long a waited send lets pass before its first read of the message: zero (the
    /// default) where the worker runs in this process, whose notification ends the wait at
    /// once; [`FIRST_LOOK_ELSEWHERE`] where the outcome comes from another process (a
    /// Lambda function, `wa-server` with `WA_WORKER=0`), where a read right after the
    /// command was queued would find the message just as it was written.
    pub first_look: Duration,
    /// Whether a send's command carries the message as created (`Command::Send::queued`),
    /// so that the worker starts from it instead of reading it: where a read is a request
    /// (DynamoDB). Off by default: SQLite reads cheaply, and the local queue would keep a
    /// second copy of every message in the database.
    pub hand_on_created: bool,
    pub allow_private_urls: bool,
}

impl Messages {
    pub fn new(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        notifier: Arc<Notifier>,
        devices: Devices,
        allow_private_urls: bool,
    ) -> Self {
        Messages {
            store,
            queue,
            notifier,
            devices,
            send_wait: Duration::from_secs(20),
            first_look: Duration::ZERO,
            hand_on_created: false,
            allow_private_urls,
        }
    }

    /// Accepts a send and waits for its outcome (unless `respond_async`): sent, queued (asked
    /// not to wait, or still waiting after `send_wait`), failed, rate limited. Refusals
    /// before the send is accepted are errors of the table (validation, device, conflict of
    /// an Idempotency-Key reused with another request). With an Idempotency-Key the first
    /// final outcome is replayed. `read`: the device as read with the caller's App
    /// (`Apps::authenticate_with_device`), else it is read here.
    pub async fn send(
        &self,
        app: &App,
        device_id: Uuid,
        read: Option<Device>,
        request: SendRequest,
        idempotency_key: Option<String>,
        respond_async: bool,
    ) -> ApiResult<SendReply> {
        let mut valid = request.validate(self.allow_private_urls)?;
        let device = self.devices.get_read(app, device_id, read).await?;
        // Only a request with an Idempotency-Key is ever compared with another one.
        let request_hash = if idempotency_key.is_some() {
            let canonical =
                serde_json::to_string(&(device_id, &request)).map_err(ApiError::internal)?;
            crate::auth::hex(&Sha256::digest(canonical.as_bytes()))
        } else {
            String::new()
        };
        if let Some(key) = &idempotency_key
            && let Some(rec) = self.store.get_idempotency(app.app_id, key).await?
        {
            return self.replay(app, rec, &request_hash, respond_async).await;
        }
        device.ensure_alive()?;
        match device.status {
            DeviceStatus::Connected => {}
            DeviceStatus::LoggedOut => return Err(crate::devices::logged_out()),
            s => {
                return Err(ApiError::new(
                    ErrorCode::DeviceNotConnected,
                    format!("the device is {s}; link or reconnect it first"),
                ));
            }
        }
        // The messages the send names (the one it quotes, the one it reacts to) must be in
        // this device's history.
        for (field, id) in valid.references() {
            let found = self.store.get_message(device_id, &id).await?;
            valid.resolve(field, found.as_ref())?;
        }
        let now = time::now();
        let message = Message {
            message_id: new_message_id(),
            device_id,
            app_id: app.app_id,
            direction: Direction::Outbound,
            to: valid.to.clone(),
            from: device.wa_device_jid.clone(),
            from_phone: device.wa_number.clone(),
            chat: valid.to.clone(),
            kind: valid.content.kind(),
            status: MessageStatus::Queued,
            error: None,
            attempts: 0,
            idempotency_key: idempotency_key.clone(),
            text: valid.content.display_text(),
            mime_type: valid.content.media().map(|m| m.mime_type.clone()),
            content: Some(valid.content),
            media_path: None,
            media_size: None,
            media_sha256: None,
            created_at: now,
            updated_at: now,
            sent_at: None,
            next_attempt_at: None,
            reply_to: valid.reply_to,
            mentions: valid.mentions,
            edited_at: None,
            poll_votes: Vec::new(),
        };
        let record = idempotency_key.as_ref().map(|key| IdempotencyRecord {
            app_id: app.app_id,
            key: key.clone(),
            request_hash: request_hash.clone(),
            device_id,
            message_id: message.message_id.clone(),
            response: None,
            expires_at: now + IDEMPOTENCY_TTL,
        });
        let command = Command::Send {
            queued: self.hand_on_created.then(|| Box::new(message.clone())),
            device_id,
            message_id: message.message_id.clone(),
        };
        match self
            .store
            .create_message_and_enqueue(
                &message,
                valid.media.as_deref(),
                record.as_ref(),
                &*self.queue,
                command,
            )
            .await?
        {
            Created::Created => {}
            // A concurrent request with the same key won the reservation.
            Created::Existing(rec) => {
                return self.replay(app, rec, &request_hash, respond_async).await;
            }
        }
        tracing::Span::current().record("message_id", message.message_id.as_str());
        tracing::info!(message_id = %message.message_id, %device_id, kind = message.kind.as_str(), "send accepted");
        if respond_async {
            return Ok(SendReply::new(Outcome::Queued(message)));
        }
        self.await_outcome(
            app,
            device_id,
            &message.message_id,
            idempotency_key.as_deref(),
        )
        .await
    }

    async fn queue_send(&self, device_id: Uuid, message_id: &str) -> ApiResult<()> {
        enqueue(
            &*self.queue,
            Command::Send {
                queued: None,
                device_id,
                message_id: message_id.to_owned(),
            },
        )
        .await?;
        Ok(())
    }

    /// A request whose Idempotency-Key is known.
    async fn replay(
        &self,
        app: &App,
        rec: IdempotencyRecord,
        request_hash: &str,
        respond_async: bool,
    ) -> ApiResult<SendReply> {
        if rec.request_hash != request_hash {
            return Err(ApiError::conflict(
                "this Idempotency-Key was used with a different request",
            )
            .with_detail("field", "Idempotency-Key"));
        }
        tracing::Span::current().record("message_id", rec.message_id.as_str());
        if let Some(outcome) = kept_outcome(&rec)? {
            return Ok(SendReply::replayed(outcome));
        }
        // The winner may not have written its message yet: give it a moment.
        let mut message = None;
        for _ in 0..40 {
            if let Some(m) = self
                .store
                .get_message(rec.device_id, &rec.message_id)
                .await?
            {
                message = Some(m);
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let m =
            message.ok_or_else(|| ApiError::internal("idempotency record without its message"))?;
        match m.status {
            MessageStatus::Failed if m.error.as_ref().is_some_and(|e| e.code.is_retryable()) => {
                // A retryable failure: the same message (same WhatsApp id) is sent again.
                let u = MessageUpdate {
                    status: Some(MessageStatus::Queued),
                    error: Some(None),
                    updated_at: Some(time::now()),
                    ..MessageUpdate::default()
                };
                match self
                    .store
                    .update_message(
                        m.device_id,
                        &m.message_id,
                        &u,
                        &[MessageStatus::Failed],
                        &[],
                    )
                    .await
                {
                    Ok(_) => {}
                    Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                tracing::info!(message_id = %m.message_id, "retrying a failed send under its Idempotency-Key");
                self.queue_send(m.device_id, &m.message_id).await?;
                if respond_async {
                    let m = self
                        .store
                        .get_message(m.device_id, &m.message_id)
                        .await?
                        .unwrap_or(m);
                    return Ok(SendReply::new(Outcome::Queued(m)));
                }
                self.await_outcome(app, m.device_id, &m.message_id, Some(&rec.key))
                    .await
            }
            s if s.is_final() => {
                self.remember(app, &rec.key, &m).await;
                Ok(SendReply::replayed(Outcome::of_final(m)))
            }
            // Still in flight: its current state.
            _ => Ok(SendReply::replayed(Outcome::Queued(m))),
        }
    }

    /// Keeps the first final outcome of a key, unless the failure is worth retrying.
    async fn remember(&self, app: &App, key: &str, m: &Message) {
        let retryable = m.status == MessageStatus::Failed
            && m.error.as_ref().is_some_and(|e| e.code.is_retryable());
        if retryable || !m.status.is_final() {
            return;
        }
        let body = match kept(m) {
            Ok(body) => body,
            Err(e) => {
                tracing::warn!(error = %e, "could not encode the outcome of an Idempotency-Key");
                return;
            }
        };
        if let Err(e) = self
            .store
            .set_idempotency_response(app.app_id, key, KEPT_OUTCOME_FORMAT, &body)
            .await
        {
            tracing::warn!(error = %e, "could not keep the outcome of an Idempotency-Key");
        }
    }

    /// Waits for the worker: the final outcome, a rate-limited retry, or still queued after
    /// `send_wait`.
    async fn await_outcome(
        &self,
        app: &App,
        device_id: Uuid,
        message_id: &str,
        key: Option<&str>,
    ) -> ApiResult<SendReply> {
        let store = self.store.clone();
        let id = message_id.to_owned();
        let first_look = self.first_look.min(self.send_wait);
        tokio::time::sleep(first_look).await;
        let outcome = self
            .notifier
            .wait_polling(
                wait_key(device_id, message_id),
                self.send_wait - first_look,
                send_poll_delay,
                || {
                    let (store, id) = (store.clone(), id.clone());
                    async move {
                        match store.get_message(device_id, &id).await {
                            Err(e) => Some(Err(e)),
                            Ok(None) => None,
                            Ok(Some(m)) => {
                                let rate_limited = m.status == MessageStatus::Queued
                                    && m.error
                                        .as_ref()
                                        .is_some_and(|e| e.code == ErrorCode::ProviderRateLimit);
                                (m.status.is_final() || rate_limited).then_some(Ok(m))
                            }
                        }
                    }
                },
            )
            .await;
        let m = match outcome {
            Some(r) => r?,
            None => {
                let m = self
                    .store
                    .get_message(device_id, message_id)
                    .await?
                    .ok_or_else(|| ApiError::internal("accepted message vanished"))?;
                return Ok(SendReply::new(Outcome::Queued(m)));
            }
        };
        if !m.status.is_final() {
            // Rate limited: still queued, retried automatically.
            return Ok(SendReply::new(Outcome::RateLimited {
                error: message_error(&m),
                retry_after: retry_after(m.next_attempt_at, time::now()),
                message: m,
            }));
        }
        if let Some(key) = key {
            self.remember(app, key, &m).await;
        }
        Ok(SendReply::new(Outcome::of_final(m)))
    }

    /// One message of the device.
    pub async fn get(&self, app: &App, device_id: Uuid, message_id: &str) -> ApiResult<Message> {
        self.devices.get(app, device_id).await?;
        self.store
            .get_message(device_id, message_id)
            .await?
            .ok_or_else(|| ApiError::not_found("message not found"))
    }

    /// The device's messages, newest first, both directions.
    pub async fn list(
        &self,
        app: &App,
        device_id: Uuid,
        limit: u32,
        before: Option<&MessageCursor>,
    ) -> ApiResult<(Vec<Message>, Option<MessageCursor>)> {
        self.devices.get(app, device_id).await?;
        Ok(self.store.list_messages(device_id, limit, before).await?)
    }

    /// Cancels a queued send; a caller waiting on it gets 408 request_canceled.
    pub async fn cancel(&self, app: &App, device_id: Uuid, message_id: &str) -> ApiResult<Message> {
        let m = self.get(app, device_id, message_id).await?;
        if m.direction != Direction::Outbound || m.status != MessageStatus::Queued {
            return Err(ApiError::conflict(format!(
                "only queued sends can be canceled; this message is {}",
                m.status.as_str()
            )));
        }
        match cancel_message(
            &*self.store,
            &self.notifier,
            &m,
            "the send was canceled by DELETE",
        )
        .await
        {
            Ok(m) => Ok(m),
            Err(StoreError::Conflict(_)) => Err(ApiError::conflict(
                "the message left the queue meanwhile; it can no longer be canceled",
            )),
            Err(e) => Err(e.into()),
        }
    }
}

/// Cancels one queued message (conditional on it still being queued).
pub async fn cancel_message(
    store: &dyn Store,
    notifier: &Notifier,
    m: &Message,
    why: &str,
) -> Result<Message, StoreError> {
    let now = time::now();
    let u = MessageUpdate {
        status: Some(MessageStatus::Canceled),
        error: Some(Some(MessageError {
            code: ErrorCode::RequestCanceled,
            message: why.to_owned(),
        })),
        next_attempt_at: Some(None),
        updated_at: Some(now),
        ..MessageUpdate::default()
    };
    let mut next = m.clone();
    u.apply_to(&mut next);
    let events: Vec<_> = crate::webhooks::payload::message(&next)
        .into_iter()
        .collect();
    let updated = store
        .update_message(
            m.device_id,
            &m.message_id,
            &u,
            &[MessageStatus::Queued],
            &events,
        )
        .await?;
    store
        .delete_outbound_media(m.device_id, &m.message_id)
        .await?;
    notifier.notify(wait_key(m.device_id, &m.message_id));
    crate::metrics::send_outcome(crate::metrics::SendOutcome::Canceled);
    tracing::info!(message_id = %m.message_id, device_id = %m.device_id, why, "send canceled");
    Ok(updated)
}

/// Cancels every queued send of a device (it was disconnected, logged out or destroyed).
pub async fn cancel_pending(
    store: &dyn Store,
    notifier: &Notifier,
    device_id: Uuid,
    why: &str,
) -> Result<usize, StoreError> {
    let mut n = 0;
    loop {
        let pending = store.pending_messages(Some(device_id), 200).await?;
        let queued: Vec<_> = pending
            .iter()
            .filter(|m| m.status == MessageStatus::Queued)
            .collect();
        if queued.is_empty() {
            return Ok(n);
        }
        for m in queued {
            match cancel_message(store, notifier, m, why).await {
                Ok(_) => n += 1,
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waited_send_reads_less_often_the_longer_it_waits() {
        let ms = Duration::from_millis;
        for (n, pause) in [
            (0, ms(250)),
            (3, ms(250)),
            (4, ms(500)),
            (7, ms(500)),
            (8, ms(1000)),
            (79, ms(1000)),
            (u32::MAX, ms(1000)),
        ] {
            assert_eq!(send_poll_delay(n), pause, "after read {n}");
        }
        // Reads in a 20 s wait that never ends early: the first after `FIRST_LOOK_ELSEWHERE`.
        let (mut at, mut reads) = (FIRST_LOOK_ELSEWHERE, 0);
        while at <= Duration::from_secs(20) {
            at += send_poll_delay(reads);
            reads += 1;
        }
        assert_eq!(reads, 25);
    }

    #[test]
    fn retry_after_is_whole_seconds_and_at_least_one() {
        let now = time::now();
        let secs = |s: i64| Some(now + ::time::Duration::seconds(s));
        for (next, expected) in [
            (None, 1),
            (secs(-5), 1),
            (Some(now), 1),
            (Some(now + ::time::Duration::milliseconds(400)), 1),
            (secs(30), 30),
            (Some(now + ::time::Duration::milliseconds(2_900)), 2),
        ] {
            assert_eq!(
                retry_after(next, now),
                Duration::from_secs(expected),
                "{next:?}"
            );
        }
    }
}
