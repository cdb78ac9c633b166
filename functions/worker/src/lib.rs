//! The worker: it owns the provider sessions, applies the commands of the commands queue
//! and turns every provider event into a stored status change. It runs inside `wa-server`
//! and as its own `wa-worker` binary.
//!
//! Crash safety: a command is deleted from the queue only after it was applied; one that
//! was in flight when the process died comes back after its visibility timeout. Commands
//! are idempotent: each checks the device's current status first.

mod config;
pub mod health;
pub mod media;
mod pacing;
pub use wa_fn_webhooks as webhooks;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pacing::Pacing;

use tokio::sync::{Semaphore, mpsc, watch};
use tracing::Instrument;
use uuid::Uuid;
use wa_core::devices::{Device, DeviceStatus as S, DeviceUpdate, PairCode};
use wa_core::lifecycle::on_event;
use wa_core::messages::{Direction, Message, MessageError, MessageStatus, MessageUpdate, wait_key};
use wa_core::metrics::{self, SendOutcome};
use wa_core::notify::Notifier;
use wa_core::provider::{
    InboundDelivery, InboundMessage, OutboundMessage, Provider, ProviderFailure, SessionEvent,
};
use wa_core::queue::{COMMANDS, Command, CommandEnvelope, Queue, Received};
use wa_core::send_service::{cancel_message, cancel_pending};
use wa_core::store::{PageRequest, Store, StoreError};
use wa_core::time;
use wa_core::webhooks::payload;
use wa_errors::ErrorCode;

pub use config::{ProviderKind, WorkerConfig, backends, build_provider};

/// Called with a device whenever a new QR is stored (the embedded server draws it).
pub type QrHook = Arc<dyn Fn(&Device) + Send + Sync>;

/// How long a received command stays invisible to other consumers.
const VISIBILITY: Duration = Duration::from_secs(120);
/// Commands handled at once (one per device at most: the queue is FIFO per device).
const CONCURRENCY: usize = 16;

/// The worker's parts.
pub struct Worker {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub provider: Arc<dyn Provider>,
    pub notifier: Arc<Notifier>,
    pub on_qr: Option<QrHook>,
    /// Inbound media are stored under `<data_dir>/media`.
    pub data_dir: PathBuf,
    /// Allow media URLs on private addresses (`WA_ALLOW_PRIVATE_URLS`).
    pub allow_private_urls: bool,
    pacing: Pacing,
}

/// What to do with a handled command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Applied: delete it from the queue.
    Done,
    /// Not yet: make it visible again after this delay (pacing, backoff).
    RetryIn(Duration),
}

/// Deliveries of one command before it moves to the dead letters.
pub const MAX_RECEIVES: u32 = 20;

/// How many times a send may find its device still reconnecting before it fails.
const MAX_RECONNECT_WAITS: u32 = 8;

impl Worker {
    pub fn new(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        provider: Arc<dyn Provider>,
        notifier: Arc<Notifier>,
        data_dir: PathBuf,
    ) -> Self {
        Worker {
            store,
            queue,
            provider,
            notifier,
            on_qr: None,
            data_dir,
            allow_private_urls: false,
            pacing: Pacing::new(0.0, 1),
        }
    }

    /// Per-device send pacing: `rate` sends per second with bursts of `burst` (0 = unpaced).
    pub fn with_pacing(mut self, rate: f64, burst: u32) -> Self {
        self.pacing = Pacing::new(rate, burst);
        self
    }
    /// Restores sessions, then handles provider events and queued commands until `shutdown`
    /// turns true; in-flight commands finish first.
    pub async fn run(
        self: Arc<Self>,
        mut events: mpsc::UnboundedReceiver<(Uuid, SessionEvent)>,
        mut inbound: mpsc::UnboundedReceiver<InboundDelivery>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let this = self.clone();
        let event_loop = tokio::spawn(async move {
            while let Some((device_id, ev)) = events.recv().await {
                if let Err(e) = this.apply_event(device_id, &ev).await {
                    tracing::error!(%device_id, error = %e, "could not record a session event");
                }
            }
        });
        let this = self.clone();
        let inbound_loop = tokio::spawn(async move {
            while let Some(delivery) = inbound.recv().await {
                let result = this
                    .store_inbound(delivery.device_id, &delivery.message)
                    .await
                    .map_err(|e| e.to_string());
                if let Err(e) = &result {
                    tracing::error!(device_id = %delivery.device_id, error = %e, "could not store an inbound message");
                }
                let _ = delivery.stored.send(result);
            }
        });
        // This worker is the queue's only consumer: what was in flight died with the last one.
        match self.queue.release_in_flight(COMMANDS).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                commands = n,
                "took back commands left in flight by the last run"
            ),
            Err(e) => tracing::error!(error = %e, "could not take back in-flight commands"),
        }
        if let Err(e) = self.restore().await {
            tracing::error!(error = %e, "restoring sessions failed");
        }
        let permits = Arc::new(Semaphore::new(CONCURRENCY));
        // Woken when a command finishes: its device's next command is now deliverable.
        let done = Arc::new(tokio::sync::Notify::new());
        let mut idle = Duration::from_millis(20);
        loop {
            if *shutdown.borrow() {
                break;
            }
            health::beat();
            let free = permits.available_permits();
            let batch = if free == 0 {
                Vec::new()
            } else {
                // A receive may long-poll (SQS): shutting down does not wait for it.
                let received = tokio::select! {
                    r = self.queue.receive(COMMANDS, free.min(10), VISIBILITY) => r,
                    changed = shutdown.changed() => {
                        // Stopping, or nobody left to say so.
                        if changed.is_err() {
                            break;
                        }
                        continue;
                    }
                };
                match received {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!(error = %e, "receiving commands failed");
                        Vec::new()
                    }
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = self.queue.wait_for_work(idle) => {}
                    _ = done.notified() => {}
                    _ = shutdown.changed() => {}
                }
                idle = (idle * 2).min(Duration::from_millis(200));
                continue;
            }
            idle = Duration::from_millis(20);
            for msg in batch {
                let permit = permits
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                let this = self.clone();
                let done = done.clone();
                tokio::spawn(async move {
                    this.process(msg).await;
                    drop(permit);
                    done.notify_one();
                });
            }
        }
        // Drain: wait until every in-flight command has finished.
        let _ = permits.acquire_many(CONCURRENCY as u32).await;
        event_loop.abort();
        inbound_loop.abort();
        tracing::info!("worker stopped");
    }

    async fn process(&self, msg: Received) {
        let env: CommandEnvelope = match serde_json::from_str(&msg.body) {
            Ok(e) => e,
            Err(e) => {
                // Never dropped silently: it is retried until it reaches the dead letters.
                tracing::error!(message_id = %msg.message_id, error = %e, "undecodable command");
                let _ = self
                    .queue
                    .retry_after(COMMANDS, &msg.receipt, Duration::ZERO)
                    .await;
                return;
            }
        };
        let device_id = env.command.device_id();
        let message_id = match &env.command {
            Command::Send { message_id, .. } => message_id.as_str(),
            _ => "",
        };
        let span = tracing::info_span!("command", request_id = %env.request_id, %device_id, message_id = tracing::field::Empty);
        if !message_id.is_empty() {
            span.record("message_id", message_id);
        }
        let result = wa_errors::request_id::scope(
            env.request_id.clone(),
            self.handle(&env.command, msg.receive_count)
                .instrument(span),
        )
        .await;
        match result {
            Ok(Next::Done) => {
                if let Err(e) = self.queue.delete(COMMANDS, &msg.receipt).await {
                    tracing::warn!(%device_id, error = %e, "could not delete a handled command");
                }
            }
            Ok(Next::RetryIn(delay)) => {
                if let Err(e) = self.queue.retry_after(COMMANDS, &msg.receipt, delay).await {
                    tracing::warn!(%device_id, error = %e, "could not reschedule a command");
                }
            }
            Err(e) => {
                let delay = Duration::from_secs(2u64.pow(msg.receive_count.min(6)));
                tracing::warn!(%device_id, error = %e, retry_in_secs = delay.as_secs(), "command failed; will retry");
                let _ = self.queue.retry_after(COMMANDS, &msg.receipt, delay).await;
            }
        }
    }

    /// Applies one command (`receive_count`: how often it was delivered). `Err` only for
    /// failures worth retrying (storage).
    pub async fn handle(&self, command: &Command, receive_count: u32) -> Result<Next, StoreError> {
        let device_id = command.device_id();
        let Some(device) = self.store.get_device(device_id).await? else {
            tracing::warn!(%device_id, "command for an unknown device dropped");
            return Ok(Next::Done);
        };
        if let Command::Send { message_id, .. } = command {
            return self.send(&device, message_id, receive_count).await;
        }
        match command {
            Command::Link { pair_phone, .. } => {
                if device.status != S::Initializing {
                    return Ok(Next::Done);
                }
                match self.provider.link(device_id, pair_phone.as_deref()).await {
                    Ok(Some((code, expires_at))) => {
                        let update = DeviceUpdate {
                            pair_code: Some(Some(PairCode {
                                code,
                                phone_number: pair_phone.clone().unwrap_or_default(),
                                expires_at,
                            })),
                            updated_at: Some(time::now()),
                            ..DeviceUpdate::default()
                        };
                        match self
                            .store
                            .update_device(
                                device_id,
                                &update,
                                &[S::Initializing, S::QrGenerated],
                                &[],
                            )
                            .await
                        {
                            Ok(_) | Err(StoreError::Conflict(_)) => {}
                            Err(e) => return Err(e),
                        }
                        self.notifier.notify(device_id);
                    }
                    Ok(None) => {}
                    Err(error) => {
                        self.apply_event(device_id, &SessionEvent::Stopped { error })
                            .await?
                    }
                }
            }
            Command::Resume { .. } => {
                if device.status != S::Connecting {
                    return Ok(Next::Done);
                }
                if let Err(error) = self.provider.resume(device_id).await {
                    self.apply_event(device_id, &stopped_or_logged_out(error))
                        .await?;
                }
            }
            Command::Disconnect { .. } => self.provider.disconnect(device_id).await,
            Command::Destroy { .. } => {
                self.provider.destroy(device_id).await;
                media::delete_device_media(&self.data_dir, device.app_id, device_id);
            }
            Command::SubscribePresence { jid, .. } => {
                if let Err(e) = self.provider.subscribe_presence(device_id, jid).await {
                    tracing::info!(%device_id, error = %e, "presence subscription failed");
                }
            }
            Command::Send { .. } => {}
        }
        Ok(Next::Done)
    }

    /// Records a provider event: the device's new status (if the event still applies) or
    /// the presence cache.
    pub async fn apply_event(&self, device_id: Uuid, ev: &SessionEvent) -> Result<(), StoreError> {
        match ev {
            SessionEvent::Presence(p) => {
                let Some(d) = self.store.get_device(device_id).await? else {
                    return Ok(());
                };
                let events = payload::presence(d.app_id, device_id, p);
                return self.store.put_presence(device_id, p, &events).await;
            }
            SessionEvent::Receipt {
                message_ids,
                status,
                from,
                ..
            } => {
                return self
                    .apply_receipt(device_id, message_ids, *status, from)
                    .await;
            }
            SessionEvent::Revoked {
                message_id,
                chat,
                from,
            } => {
                let Some(d) = self.store.get_device(device_id).await? else {
                    return Ok(());
                };
                tracing::info!(%device_id, %message_id, "message revoked by its sender");
                let event = payload::revoked(d.app_id, device_id, message_id, chat, from);
                return self.store.append_events(&[event]).await;
            }
            _ => {}
        }
        for _ in 0..5 {
            let Some(d) = self.store.get_device(device_id).await? else {
                return Ok(());
            };
            let Some(update) = on_event(&d, ev, time::now()) else {
                return Ok(());
            };
            let mut next = d.clone();
            update.apply_to(&mut next);
            let events: Vec<_> = payload::device(d.status, &next).into_iter().collect();
            match self
                .store
                .update_device(device_id, &update, &[d.status], &events)
                .await
            {
                Ok(updated) => {
                    tracing::info!(%device_id, from = %d.status, to = %updated.status, "device status recorded");
                    self.notifier.notify(device_id);
                    if matches!(updated.status, S::Disconnected | S::LoggedOut) {
                        cancel_pending(
                            &*self.store,
                            &self.notifier,
                            device_id,
                            "the device lost its session before the send",
                        )
                        .await?;
                    }
                    if matches!(ev, SessionEvent::Qr { .. })
                        && let Some(hook) = &self.on_qr
                    {
                        hook(&updated);
                    }
                    return Ok(());
                }
                Err(StoreError::Conflict("status")) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Backend("device status kept changing".into()))
    }

    /// After a start: sessions that were live reconnect by themselves; linking sessions that
    /// died with the process are expired; devices whose link never started are started.
    pub async fn restore(&self) -> Result<(), StoreError> {
        // Sends accepted before a crash whose command may be lost: queue them again (a
        // duplicate command is harmless, the send checks the message's status first).
        loop {
            let pending = self.store.pending_messages(None, 10_000).await?;
            for m in &pending {
                let cmd = Command::Send {
                    device_id: m.device_id,
                    message_id: m.message_id.clone(),
                };
                wa_core::queue::enqueue(&*self.queue, cmd)
                    .await
                    .map_err(|e| StoreError::Backend(e.to_string()))?;
            }
            if pending.len() < 10_000 {
                break;
            }
        }
        let mut after = None;
        loop {
            let page = self
                .store
                .devices_with_status(
                    &[S::Connected, S::Connecting, S::QrGenerated, S::Initializing],
                    PageRequest { limit: 200, after },
                )
                .await?;
            for d in &page.items {
                self.restore_one(d).await?;
            }
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(()),
            }
        }
    }

    async fn restore_one(&self, d: &Device) -> Result<(), StoreError> {
        let id = d.device_id;
        match d.status {
            S::Connected | S::Connecting => {
                if d.status == S::Connected {
                    let mut u = DeviceUpdate::status(S::Connecting);
                    u.updated_at = Some(time::now());
                    let mut next = d.clone();
                    u.apply_to(&mut next);
                    let events: Vec<_> = payload::device(d.status, &next).into_iter().collect();
                    match self
                        .store
                        .update_device(id, &u, &[S::Connected], &events)
                        .await
                    {
                        Ok(_) | Err(StoreError::Conflict(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                if !self.provider.has_credentials(id).await {
                    let error = ProviderFailure::new(
                        ErrorCode::LoggedOut,
                        "the session's keys are gone; link the device again",
                    );
                    return self
                        .apply_event(id, &SessionEvent::LoggedOut { error })
                        .await;
                }
                tracing::info!(device_id = %id, "resuming session");
                if let Err(error) = self.provider.resume(id).await {
                    self.apply_event(id, &stopped_or_logged_out(error)).await?;
                }
            }
            S::QrGenerated => {
                let mut u = DeviceUpdate::status(S::Expired);
                u.qr = Some(None);
                u.pair_code = Some(None);
                u.updated_at = Some(time::now());
                match self
                    .store
                    .update_device(id, &u, &[S::QrGenerated], &[])
                    .await
                {
                    Ok(_) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            S::Initializing => {
                // Its Link command may be queued already; a second one is a no-op.
                let cmd = Command::Link {
                    device_id: id,
                    pair_phone: d.pair_code.as_ref().map(|p| p.phone_number.clone()),
                };
                wa_core::queue::enqueue(&*self.queue, cmd)
                    .await
                    .map_err(|e| StoreError::Backend(e.to_string()))?;
            }
            _ => {}
        }
        Ok(())
    }
}

fn stopped_or_logged_out(error: ProviderFailure) -> SessionEvent {
    if error.code == ErrorCode::LoggedOut {
        SessionEvent::LoggedOut { error }
    } else {
        SessionEvent::Stopped { error }
    }
}

/// Exponential backoff with jitter for a rate-limited send: 1 s, 2 s, 4 s ... at most 60 s,
/// each within ±20 %.
pub fn rate_limit_backoff(attempt: u32) -> Duration {
    let base = 1000u64
        .saturating_mul(1 << attempt.saturating_sub(1).min(6))
        .min(60_000);
    let jitter = rand::random_range(0.8..1.2);
    Duration::from_millis((base as f64 * jitter) as u64)
}

impl Worker {
    /// Sends one stored message: pacing, crash recovery, media, the provider, the outcome.
    async fn send(
        &self,
        device: &Device,
        message_id: &str,
        receive_count: u32,
    ) -> Result<Next, StoreError> {
        let device_id = device.device_id;
        let Some(m) = self.store.get_message(device_id, message_id).await? else {
            tracing::warn!(%device_id, %message_id, "send command for an unknown message dropped");
            return Ok(Next::Done);
        };
        if !matches!(m.status, MessageStatus::Queued | MessageStatus::Sending) {
            return Ok(Next::Done);
        }
        match device.status {
            S::Connected => {}
            S::Connecting if receive_count < MAX_RECONNECT_WAITS => {
                return Ok(Next::RetryIn(Duration::from_secs(2)));
            }
            S::Connecting => {
                let error = MessageError {
                    code: ErrorCode::WhatsappConnectionLost,
                    message: "the device did not reconnect in time".into(),
                };
                return self.finish(&m, MessageStatus::Failed, Some(error)).await;
            }
            s => {
                let why = format!("the device is {s}; the send was not made");
                if let Err(e) = cancel_message(&*self.store, &self.notifier, &m, &why).await
                    && !matches!(e, StoreError::Conflict(_))
                {
                    return Err(e);
                }
                if m.status == MessageStatus::Sending {
                    let error = MessageError {
                        code: ErrorCode::DeviceNotConnected,
                        message: why,
                    };
                    return self.finish(&m, MessageStatus::Failed, Some(error)).await;
                }
                return Ok(Next::Done);
            }
        }
        if let Some(wait) = self.pacing.take(device_id) {
            return Ok(Next::RetryIn(wait));
        }
        if m.status == MessageStatus::Sending
            && self.provider.was_sent(device_id, &m.message_id).await == Some(true)
        {
            tracing::info!(%device_id, message_id = %m.message_id, "already received by WhatsApp before the restart");
            return self.finish(&m, MessageStatus::Sent, None).await;
        }
        let attempt = m.attempts + 1;
        let sending = MessageUpdate {
            status: Some(MessageStatus::Sending),
            attempts: Some(attempt),
            updated_at: Some(time::now()),
            ..MessageUpdate::default()
        };
        let m = match self
            .store
            .update_message(
                device_id,
                &m.message_id,
                &sending,
                &[MessageStatus::Queued, MessageStatus::Sending],
                &[],
            )
            .await
        {
            Ok(m) => m,
            // Canceled meanwhile.
            Err(StoreError::Conflict(_)) => return Ok(Next::Done),
            Err(e) => return Err(e),
        };
        let Some(content) = m.content.clone() else {
            let error = MessageError {
                code: ErrorCode::InternalError,
                message: "the message has no content".into(),
            };
            return self.finish(&m, MessageStatus::Failed, Some(error)).await;
        };
        let media = match content.media() {
            None => None,
            Some(media) => match &media.source {
                wa_core::messages::MediaSource::Inline { .. } => {
                    match self.store.outbound_media(device_id, &m.message_id).await? {
                        Some(bytes) => Some(bytes),
                        None => {
                            let error = MessageError {
                                code: ErrorCode::InternalError,
                                message: "the message's media is missing".into(),
                            };
                            return self.finish(&m, MessageStatus::Failed, Some(error)).await;
                        }
                    }
                }
                wa_core::messages::MediaSource::Url { url } => {
                    match media::fetch(
                        url,
                        content.kind(),
                        &media.mime_type,
                        self.allow_private_urls,
                    )
                    .await
                    {
                        Ok(bytes) => Some(bytes),
                        Err(error) => {
                            return self.finish(&m, MessageStatus::Failed, Some(error)).await;
                        }
                    }
                }
            },
        };
        let outbound = OutboundMessage {
            message_id: m.message_id.clone(),
            to: m.to.clone(),
            content,
            media,
        };
        match self.provider.send(device_id, &outbound).await {
            Ok(()) => {
                tracing::info!(%device_id, message_id = %m.message_id, attempt, "sent");
                self.finish(&m, MessageStatus::Sent, None).await
            }
            Err(f) if f.code == ErrorCode::ProviderRateLimit => {
                let delay = rate_limit_backoff(attempt);
                let u = MessageUpdate {
                    status: Some(MessageStatus::Queued),
                    error: Some(Some(MessageError {
                        code: f.code,
                        message: format!("{}; retried automatically", f.message),
                    })),
                    next_attempt_at: Some(Some(time::now() + delay)),
                    updated_at: Some(time::now()),
                    ..MessageUpdate::default()
                };
                match self
                    .store
                    .update_message(device_id, &m.message_id, &u, &[MessageStatus::Sending], &[])
                    .await
                {
                    Ok(_) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
                self.notifier.notify(wait_key(device_id, &m.message_id));
                metrics::send_outcome(SendOutcome::RateLimited);
                tracing::info!(%device_id, message_id = %m.message_id, attempt, retry_in_ms = delay.as_millis() as u64, "rate limited; will retry");
                Ok(Next::RetryIn(delay))
            }
            Err(f)
                if f.code == ErrorCode::DeviceNotConnected
                    && receive_count < MAX_RECONNECT_WAITS =>
            {
                // The session went away under us; wait for it like a reconnect.
                let u = MessageUpdate {
                    status: Some(MessageStatus::Queued),
                    updated_at: Some(time::now()),
                    ..MessageUpdate::default()
                };
                match self
                    .store
                    .update_message(device_id, &m.message_id, &u, &[MessageStatus::Sending], &[])
                    .await
                {
                    Ok(_) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
                Ok(Next::RetryIn(Duration::from_secs(2)))
            }
            Err(f) => {
                tracing::info!(%device_id, message_id = %m.message_id, code = %f.code, "send failed");
                let error = MessageError {
                    code: f.code,
                    message: f.message,
                };
                self.finish(&m, MessageStatus::Failed, Some(error)).await
            }
        }
    }

    /// Records the end of a send and wakes its waiting caller.
    async fn finish(
        &self,
        m: &Message,
        status: MessageStatus,
        error: Option<MessageError>,
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
        match self
            .store
            .update_message(
                m.device_id,
                &m.message_id,
                &u,
                &[MessageStatus::Queued, MessageStatus::Sending],
                &events,
            )
            .await
        {
            Ok(_) => match (status, &next.error) {
                (MessageStatus::Sent, _) => {
                    metrics::send_outcome(SendOutcome::Sent);
                    metrics::send_latency(m.created_at);
                }
                (MessageStatus::Failed, Some(e)) => {
                    metrics::send_outcome(SendOutcome::Failed(e.code))
                }
                _ => {}
            },
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
        self.notifier.notify(wait_key(m.device_id, &m.message_id));
        let inline = m
            .content
            .as_ref()
            .and_then(|c| c.media())
            .is_some_and(|media| {
                matches!(media.source, wa_core::messages::MediaSource::Inline { .. })
            });
        if status == MessageStatus::Sent && inline {
            self.store
                .delete_outbound_media(m.device_id, &m.message_id)
                .await?;
        }
        Ok(Next::Done)
    }

    /// Moves sent messages forward on receipts (never backwards), each with its event.
    async fn apply_receipt(
        &self,
        device_id: Uuid,
        ids: &[String],
        status: MessageStatus,
        from: &str,
    ) -> Result<(), StoreError> {
        let earlier: &[MessageStatus] = match status {
            MessageStatus::Delivered => &[MessageStatus::Sending, MessageStatus::Sent],
            MessageStatus::Read => &[
                MessageStatus::Sending,
                MessageStatus::Sent,
                MessageStatus::Delivered,
            ],
            MessageStatus::Played => &[
                MessageStatus::Sending,
                MessageStatus::Sent,
                MessageStatus::Delivered,
                MessageStatus::Read,
            ],
            _ => return Ok(()),
        };
        for id in ids {
            let Some(m) = self.store.get_message(device_id, id).await? else {
                continue;
            };
            if !earlier.contains(&m.status) {
                continue;
            }
            let u = MessageUpdate {
                status: Some(status),
                updated_at: Some(time::now()),
                ..MessageUpdate::default()
            };
            let mut next = m.clone();
            u.apply_to(&mut next);
            let event = payload::receipt(&next, from);
            match self
                .store
                .update_message(device_id, id, &u, earlier, &[event])
                .await
            {
                Ok(_) => self.notifier.notify(wait_key(device_id, id)),
                Err(StoreError::Conflict(_)) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Stores an inbound message (its media first); the provider acknowledges WhatsApp after.
    pub async fn store_inbound(
        &self,
        device_id: Uuid,
        msg: &InboundMessage,
    ) -> Result<(), StoreError> {
        let Some(device) = self.store.get_device(device_id).await? else {
            tracing::warn!(%device_id, "inbound message for an unknown device dropped");
            return Ok(());
        };
        if self
            .store
            .get_message(device_id, &msg.message_id)
            .await?
            .is_some()
        {
            // A redelivery of a message already stored.
            return Ok(());
        }
        let stored = match &msg.media {
            Some(media) => {
                let (dir, app, mid, mime, bytes) = (
                    self.data_dir.clone(),
                    device.app_id,
                    msg.message_id.clone(),
                    media.mime_type.clone(),
                    media.bytes.clone(),
                );
                let s = tokio::task::spawn_blocking(move || {
                    media::store(&dir, app, device_id, &mid, &mime, &bytes)
                })
                .await
                .map_err(|e| StoreError::Backend(e.to_string()))?
                .map_err(|e| StoreError::Backend(format!("writing media failed: {e}")))?;
                Some(s)
            }
            None => None,
        };
        let now = time::now();
        let m = Message {
            message_id: msg.message_id.clone(),
            device_id,
            app_id: device.app_id,
            direction: Direction::Inbound,
            to: device.wa_device_jid.clone().unwrap_or_default(),
            from: Some(msg.from.clone()),
            from_phone: msg.from_phone.clone(),
            chat: msg.chat.clone(),
            kind: msg.kind,
            status: MessageStatus::Received,
            error: None,
            attempts: 0,
            idempotency_key: None,
            content: None,
            text: msg.text.clone(),
            media_path: stored.as_ref().map(|s| s.path.clone()),
            mime_type: msg.media.as_ref().map(|m| m.mime_type.clone()),
            media_size: stored.as_ref().map(|s| s.size),
            media_sha256: stored.as_ref().map(|s| s.sha256.clone()),
            created_at: msg.timestamp,
            updated_at: now,
            sent_at: None,
            next_attempt_at: None,
        };
        let events: Vec<_> = payload::message(&m).into_iter().collect();
        match self.store.create_message(&m, None, None, &events).await {
            Ok(_) | Err(StoreError::Conflict("message_id")) => {}
            Err(e) => return Err(e),
        }
        tracing::info!(%device_id, message_id = %m.message_id, kind = m.kind.as_str(), "inbound message stored");
        Ok(())
    }
}
