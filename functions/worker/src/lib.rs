//! The worker: it owns the provider sessions, applies the commands of the commands queue
//! and turns every provider event into a stored status change. It runs inside `wa-server`
//! and as its own `wa-worker` binary.
//!
//! Crash safety: a command is deleted from the queue only after it was applied; one that
//! was in flight when the process died comes back after its visibility timeout. Commands
//! are idempotent: each checks the device's current status first.

mod config;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, watch};
use tracing::Instrument;
use uuid::Uuid;
use wa_core::devices::{Device, DeviceStatus as S, DeviceUpdate, PairCode};
use wa_core::lifecycle::on_event;
use wa_core::notify::Notifier;
use wa_core::provider::{Provider, ProviderFailure, SessionEvent};
use wa_core::queue::{COMMANDS, Command, CommandEnvelope, Queue, Received};
use wa_core::store::{PageRequest, Store, StoreError};
use wa_core::time;
use wa_errors::ErrorCode;

pub use config::{ProviderKind, WorkerConfig, build_provider};

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
}

impl Worker {
    /// Restores sessions, then handles provider events and queued commands until `shutdown`
    /// turns true; in-flight commands finish first.
    pub async fn run(
        self: Arc<Self>,
        mut events: mpsc::UnboundedReceiver<(Uuid, SessionEvent)>,
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
        if let Err(e) = self.restore().await {
            tracing::error!(error = %e, "restoring sessions failed");
        }
        let permits = Arc::new(Semaphore::new(CONCURRENCY));
        let mut idle = Duration::from_millis(20);
        loop {
            if *shutdown.borrow() {
                break;
            }
            let free = permits.available_permits();
            let batch = if free == 0 {
                Vec::new()
            } else {
                match self.queue.receive(COMMANDS, free.min(10), VISIBILITY).await {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!(error = %e, "receiving commands failed");
                        Vec::new()
                    }
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(idle) => {}
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
                tokio::spawn(async move {
                    this.process(msg).await;
                    drop(permit);
                });
            }
        }
        // Drain: wait until every in-flight command has finished.
        let _ = permits.acquire_many(CONCURRENCY as u32).await;
        event_loop.abort();
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
        let span = tracing::info_span!("command", request_id = %env.request_id, %device_id);
        let result = wa_errors::request_id::scope(
            env.request_id.clone(),
            self.handle(&env.command).instrument(span),
        )
        .await;
        match result {
            Ok(()) => {
                if let Err(e) = self.queue.delete(COMMANDS, &msg.receipt).await {
                    tracing::warn!(%device_id, error = %e, "could not delete a handled command");
                }
            }
            Err(e) => {
                let delay = Duration::from_secs(2u64.pow(msg.receive_count.min(6)));
                tracing::warn!(%device_id, error = %e, retry_in_secs = delay.as_secs(), "command failed; will retry");
                let _ = self.queue.retry_after(COMMANDS, &msg.receipt, delay).await;
            }
        }
    }

    /// Applies one command. `Err` only for failures worth retrying (storage).
    pub async fn handle(&self, command: &Command) -> Result<(), StoreError> {
        let device_id = command.device_id();
        let Some(device) = self.store.get_device(device_id).await? else {
            tracing::warn!(%device_id, "command for an unknown device dropped");
            return Ok(());
        };
        match command {
            Command::Link { pair_phone, .. } => {
                if device.status != S::Initializing {
                    return Ok(());
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
                            .update_device(device_id, &update, &[S::Initializing, S::QrGenerated])
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
                    return Ok(());
                }
                if let Err(error) = self.provider.resume(device_id).await {
                    self.apply_event(device_id, &stopped_or_logged_out(error))
                        .await?;
                }
            }
            Command::Disconnect { .. } => self.provider.disconnect(device_id).await,
            Command::Destroy { .. } => self.provider.destroy(device_id).await,
            Command::SubscribePresence { jid, .. } => {
                if let Err(e) = self.provider.subscribe_presence(device_id, jid).await {
                    tracing::info!(%device_id, error = %e, "presence subscription failed");
                }
            }
        }
        Ok(())
    }

    /// Records a provider event: the device's new status (if the event still applies) or
    /// the presence cache.
    pub async fn apply_event(&self, device_id: Uuid, ev: &SessionEvent) -> Result<(), StoreError> {
        if let SessionEvent::Presence(p) = ev {
            return self.store.put_presence(device_id, p).await;
        }
        for _ in 0..5 {
            let Some(d) = self.store.get_device(device_id).await? else {
                return Ok(());
            };
            let Some(update) = on_event(&d, ev, time::now()) else {
                return Ok(());
            };
            match self
                .store
                .update_device(device_id, &update, &[d.status])
                .await
            {
                Ok(updated) => {
                    tracing::info!(%device_id, from = %d.status, to = %updated.status, "device status recorded");
                    self.notifier.notify(device_id);
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
                    match self.store.update_device(id, &u, &[S::Connected]).await {
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
                match self.store.update_device(id, &u, &[S::QrGenerated]).await {
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
