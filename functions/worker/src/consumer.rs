//! The worker's consumer loop: the commands queue through the shared consume loop, the
//! session events and inbound messages from the provider, and the periodic upkeep, from
//! the start (taking back what the last run left in flight, restoring) to a drained stop,
//! the leases kept meanwhile, and the hand-over of every device at the end. Beside the
//! commands queue it consumes its own inbox, where other workers forward the commands of
//! the devices it holds (`crate::forward`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use uuid::Uuid;
use wa_core::consume::{ConsumeOptions, consume};
use wa_core::provider::{InboundDelivery, SessionEvent};
use wa_core::queue::COMMANDS;
use wa_core::store::StoreError;

use crate::forward::Via;
use crate::{CONCURRENCY, Worker};

/// Forwarded commands handled at once, beside the commands queue's [`CONCURRENCY`].
const INBOX_CONCURRENCY: usize = 32;

impl Worker {
    /// Restores sessions, then handles provider events and queued commands until `shutdown`
    /// turns true; in-flight commands finish first.
    pub async fn run(
        self: Arc<Self>,
        mut events: mpsc::UnboundedReceiver<(Uuid, SessionEvent)>,
        mut inbound: mpsc::UnboundedReceiver<InboundDelivery>,
        shutdown: watch::Receiver<bool>,
    ) {
        if let Some(sandbox) = &self.sandbox {
            sandbox.held_by(self.leases.clone());
        }
        let this = self.clone();
        let event_loop = tokio::spawn(async move {
            // One at a time, in order: a device's later event waits for an earlier one
            // that is being retried.
            while let Some((device_id, ev)) = events.recv().await {
                this.record_event(device_id, &ev).await;
            }
        });
        let this = self.clone();
        let inbound_loop = tokio::spawn(async move {
            while let Some(delivery) = inbound.recv().await {
                let result = this
                    .store_inbound(delivery.device_id, &delivery.message)
                    .await;
                match &result {
                    // Not acknowledged: WhatsApp delivers it again to the device's owner.
                    Err(StoreError::Fenced) => {
                        this.lose(delivery.device_id, "an inbound message was fenced")
                            .await
                    }
                    Err(e) => {
                        tracing::error!(device_id = %delivery.device_id, error = %e, "could not store an inbound message");
                    }
                    Ok(()) => {}
                }
                let result = result.map_err(|e| e.to_string());
                let _ = delivery.stored.send(result);
            }
        });
        // Opened before the restore joins the fleet: the membership record names it.
        let inbox = self.open_inbox().await;
        let sessions = self.restore_sessions().await;
        // The leases just claimed are renewed while the pending sends are queued again.
        let this = self.clone();
        let leases = tokio::spawn(this.keep_leases(shutdown.clone()));
        match sessions {
            Err(e) => tracing::error!(error = %e, "restoring sessions failed"),
            Ok(()) => {
                if let Err(e) = self.restore_sends().await {
                    tracing::error!(error = %e, "queuing the pending sends again failed");
                }
            }
        }
        let this = self.clone();
        let upkeep_stop = shutdown.clone();
        let upkeep = tokio::spawn(async move { this.upkeep(upkeep_stop).await });
        let options = ConsumeOptions {
            queue: COMMANDS,
            concurrency: CONCURRENCY,
            visibility: self.visibility,
            idle_min: Duration::from_millis(20),
            idle_max: Duration::from_millis(200),
            on_turn: crate::health::beat,
        };
        let forwarded = inbox.map(|inbox| {
            let options = ConsumeOptions {
                // One name per process start.
                queue: Box::leak(inbox.into_boxed_str()),
                concurrency: INBOX_CONCURRENCY,
                ..options.clone()
            };
            let this = self.clone();
            tokio::spawn(consume(
                self.queue.clone(),
                options,
                move |msg| {
                    let this = this.clone();
                    async move { this.take_forwarded(msg).await }
                },
                shutdown.clone(),
            ))
        });
        let this = self.clone();
        consume(
            self.queue.clone(),
            options,
            move |msg| {
                let this = this.clone();
                async move { this.process(msg, Via::received(COMMANDS)).await }
            },
            shutdown,
        )
        .await;
        if let Some(forwarded) = forwarded {
            let _ = forwarded.await;
            // While it still holds its devices: what others forward from now on goes back
            // to the commands queue, and comes to the devices' next owners.
            self.close_inbox().await;
        }
        let _ = upkeep.await;
        let _ = leases.await;
        self.hand_over().await;
        event_loop.abort();
        inbound_loop.abort();
        tracing::info!("worker stopped");
    }
}
