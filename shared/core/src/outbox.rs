//! Nudges for the events queue. In AWS, webhook events stay in the store's outbox (written
//! in the same transaction as the change that caused them) and a message on the FIFO
//! events queue, grouped by device, tells the webhooks consumer that a device has something
//! to deliver. [`Nudging`] wraps any store and sends those nudges after each commit that
//! carries events. A nudge lost between the commit and its send (a crash) is recovered by
//! the consumer's sweep of overdue deliveries, so an event is late at worst, never lost.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use crate::layer::{Layer, Layered};
use crate::queue::{EVENTS, Queue, QueueError};
use crate::store::Store;
use crate::webhooks::Event;

/// Puts a nudge for `device` on the events queue.
pub async fn nudge(queue: &dyn Queue, device: Uuid) -> Result<(), QueueError> {
    let body = format!(r#"{{"device_id":"{device}"}}"#);
    queue
        .send(EVENTS, Some(&device.to_string()), &body, Duration::ZERO)
        .await
        .map(|_| ())
}

/// A store that nudges the events queue after every write that carries events (a
/// redelivery included), once per device the events are for.
pub type Nudging = Layered<Nudges>;

impl Nudging {
    pub fn nudging(inner: Arc<dyn Store>, queue: Arc<dyn Queue>) -> Nudging {
        Layered::new(inner, Arc::new(Nudges { queue }))
    }
}

/// The layer of [`Nudging`].
pub struct Nudges {
    queue: Arc<dyn Queue>,
}

#[async_trait]
impl Layer for Nudges {
    async fn committed(&self, events: &[Event]) {
        let mut devices: Vec<Uuid> = events.iter().map(|e| e.device_id).collect();
        devices.sort_unstable();
        devices.dedup();
        for d in devices {
            if let Err(e) = nudge(&*self.queue, d).await {
                // The sweep of overdue deliveries nudges the device later.
                tracing::warn!(device_id = %d, error = %e, "nudging the events queue failed");
            }
        }
    }
}
