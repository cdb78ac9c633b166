//! The worker's consumer loop: the commands queue through the shared consume loop, the
//! session events and inbound messages from the provider, and the periodic upkeep, from
//! the start (taking back what the last run left in flight, restoring) to a drained stop.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use uuid::Uuid;
use wa_core::consume::{ConsumeOptions, consume};
use wa_core::provider::{InboundDelivery, SessionEvent};
use wa_core::queue::COMMANDS;

use crate::{CONCURRENCY, Worker};

impl Worker {
    /// Restores sessions, then handles provider events and queued commands until `shutdown`
    /// turns true; in-flight commands finish first.
    pub async fn run(
        self: Arc<Self>,
        mut events: mpsc::UnboundedReceiver<(Uuid, SessionEvent)>,
        mut inbound: mpsc::UnboundedReceiver<InboundDelivery>,
        shutdown: watch::Receiver<bool>,
    ) {
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
        let this = self.clone();
        consume(
            self.queue.clone(),
            options,
            move |msg| {
                let this = this.clone();
                async move { this.process(msg).await }
            },
            shutdown,
        )
        .await;
        let _ = upkeep.await;
        event_loop.abort();
        inbound_loop.abort();
        tracing::info!("worker stopped");
    }
}
