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

use crate::apps::App;
use crate::devices::{Device, DeviceStatus, DeviceUpdate};
use crate::lease::{Claim, Fence, Lease, Member, Owner};
use crate::messages::{Message, MessageStatus, MessageUpdate};
use crate::provider::Presence;
use crate::queue::{EVENTS, Queue, QueueError};
use crate::session::Reply;
use crate::store::*;
use crate::time::OffsetDateTime;
use crate::webhooks::Event;

/// Puts a nudge for `device` on the events queue.
pub async fn nudge(queue: &dyn Queue, device: Uuid) -> Result<(), QueueError> {
    let body = format!(r#"{{"device_id":"{device}"}}"#);
    queue
        .send(EVENTS, Some(&device.to_string()), &body, Duration::ZERO)
        .await
        .map(|_| ())
}

/// A store that nudges the events queue after every write that carries events.
pub struct Nudging {
    inner: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
}

impl Nudging {
    pub fn new(inner: Arc<dyn Store>, queue: Arc<dyn Queue>) -> Nudging {
        Nudging { inner, queue }
    }

    async fn after<T>(
        &self,
        result: Result<T, StoreError>,
        events: &[Event],
    ) -> Result<T, StoreError> {
        if result.is_ok() {
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
        result
    }
}

#[async_trait]
impl AppStore for Nudging {
    async fn insert_app(&self, app: &App) -> Result<(), StoreError> {
        self.inner.insert_app(app).await
    }
    async fn get_app(&self, app_id: Uuid) -> Result<Option<App>, StoreError> {
        self.inner.get_app(app_id).await
    }
    async fn app_by_token_hash(&self, token_hash: &str) -> Result<Option<App>, StoreError> {
        self.inner.app_by_token_hash(token_hash).await
    }
    async fn list_apps(&self, tenant_id: &str, page: PageRequest) -> Result<Page<App>, StoreError> {
        self.inner.list_apps(tenant_id, page).await
    }
    async fn update_app(&self, app_id: Uuid, update: &AppUpdate) -> Result<App, StoreError> {
        self.inner.update_app(app_id, update).await
    }
    async fn delete_app(&self, app_id: Uuid) -> Result<(), StoreError> {
        self.inner.delete_app(app_id).await
    }
    async fn close_app(&self, app_id: Uuid) -> Result<(), StoreError> {
        self.inner.close_app(app_id).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

#[async_trait]
impl DeviceStore for Nudging {
    async fn insert_device(&self, device: &Device) -> Result<(), StoreError> {
        self.inner.insert_device(device).await
    }
    async fn get_device(&self, device_id: Uuid) -> Result<Option<Device>, StoreError> {
        self.inner.get_device(device_id).await
    }
    async fn list_devices(
        &self,
        app_id: Uuid,
        status: Option<DeviceStatus>,
        page: PageRequest,
    ) -> Result<Page<Device>, StoreError> {
        self.inner.list_devices(app_id, status, page).await
    }
    async fn devices_of_app(&self, app_id: Uuid) -> Result<Vec<Device>, StoreError> {
        self.inner.devices_of_app(app_id).await
    }
    async fn devices_with_status(
        &self,
        statuses: &[DeviceStatus],
        page: PageRequest,
    ) -> Result<Page<Device>, StoreError> {
        self.inner.devices_with_status(statuses, page).await
    }
    async fn update_device(
        &self,
        device_id: Uuid,
        update: &DeviceUpdate,
        expect: &[DeviceStatus],
        events: &[Event],
    ) -> Result<Device, StoreError> {
        let r = self
            .inner
            .update_device(device_id, update, expect, events)
            .await;
        self.after(r, events).await
    }
    async fn put_presence(
        &self,
        device_id: Uuid,
        presence: &Presence,
        events: &[Event],
    ) -> Result<(), StoreError> {
        let r = self.inner.put_presence(device_id, presence, events).await;
        self.after(r, events).await
    }
    async fn get_presence(
        &self,
        device_id: Uuid,
        jid: &str,
    ) -> Result<Option<Presence>, StoreError> {
        self.inner.get_presence(device_id, jid).await
    }
}

#[async_trait]
impl MessageStore for Nudging {
    async fn create_message(
        &self,
        message: &Message,
        media: Option<&[u8]>,
        idempotency: Option<&IdempotencyRecord>,
        events: &[Event],
    ) -> Result<Created, StoreError> {
        let r = self
            .inner
            .create_message(message, media, idempotency, events)
            .await;
        // An existing key wrote nothing.
        let written: &[Event] = match r {
            Ok(Created::Created) => events,
            _ => &[],
        };
        self.after(r, written).await
    }
    async fn create_message_and_enqueue(
        &self,
        message: &Message,
        media: Option<&[u8]>,
        idempotency: Option<&IdempotencyRecord>,
        queue: &dyn crate::queue::Queue,
        command: crate::queue::Command,
    ) -> Result<Created, StoreError> {
        // No events: nothing to nudge.
        self.inner
            .create_message_and_enqueue(message, media, idempotency, queue, command)
            .await
    }
    async fn get_message(
        &self,
        device_id: Uuid,
        message_id: &str,
    ) -> Result<Option<Message>, StoreError> {
        self.inner.get_message(device_id, message_id).await
    }
    async fn inbound_message_id(
        &self,
        device_id: Uuid,
        chat: &str,
        from: &str,
        message_id: &str,
    ) -> Result<Option<String>, StoreError> {
        self.inner
            .inbound_message_id(device_id, chat, from, message_id)
            .await
    }
    async fn list_messages(
        &self,
        device_id: Uuid,
        limit: u32,
        before: Option<&MessageCursor>,
    ) -> Result<(Vec<Message>, Option<MessageCursor>), StoreError> {
        self.inner.list_messages(device_id, limit, before).await
    }
    async fn update_message(
        &self,
        device_id: Uuid,
        message_id: &str,
        update: &MessageUpdate,
        expect: &[MessageStatus],
        events: &[Event],
    ) -> Result<Message, StoreError> {
        let r = self
            .inner
            .update_message(device_id, message_id, update, expect, events)
            .await;
        self.after(r, events).await
    }
    async fn outbound_media(
        &self,
        device_id: Uuid,
        message_id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.outbound_media(device_id, message_id).await
    }
    async fn delete_outbound_media(
        &self,
        device_id: Uuid,
        message_id: &str,
    ) -> Result<(), StoreError> {
        self.inner
            .delete_outbound_media(device_id, message_id)
            .await
    }
    async fn pending_messages(
        &self,
        device_id: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        self.inner.pending_messages(device_id, limit).await
    }
    async fn pending_page(
        &self,
        after: Option<&PendingCursor>,
        limit: u32,
    ) -> Result<(Vec<Message>, Option<PendingCursor>), StoreError> {
        self.inner.pending_page(after, limit).await
    }
    async fn get_idempotency(
        &self,
        app_id: Uuid,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.get_idempotency(app_id, key).await
    }
    async fn set_idempotency_response(
        &self,
        app_id: Uuid,
        key: &str,
        status: u16,
        body: &str,
    ) -> Result<(), StoreError> {
        self.inner
            .set_idempotency_response(app_id, key, status, body)
            .await
    }
    async fn clear_idempotency_response(&self, app_id: Uuid, key: &str) -> Result<(), StoreError> {
        self.inner.clear_idempotency_response(app_id, key).await
    }
    async fn purge_expired_idempotency(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.inner.purge_expired_idempotency(now).await
    }
}

#[async_trait]
impl EventStore for Nudging {
    async fn append_events(&self, events: &[Event]) -> Result<(), StoreError> {
        let r = self.inner.append_events(events).await;
        self.after(r, events).await
    }
    async fn due_deliveries(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.inner.due_deliveries(now, limit).await
    }
    async fn next_delivery_of_device(
        &self,
        device_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Option<Delivery>, StoreError> {
        self.inner.next_delivery_of_device(device_id, now).await
    }
    async fn record_attempt(
        &self,
        request_id: &str,
        attempt: &Attempt,
    ) -> Result<Delivery, StoreError> {
        self.inner.record_attempt(request_id, attempt).await
    }
    async fn list_deliveries(
        &self,
        app_id: Uuid,
        status: Option<DeliveryStatus>,
        limit: u32,
        before_seq: Option<i64>,
    ) -> Result<(Vec<Delivery>, Option<i64>), StoreError> {
        self.inner
            .list_deliveries(app_id, status, limit, before_seq)
            .await
    }
    async fn get_delivery(&self, request_id: &str) -> Result<Option<Delivery>, StoreError> {
        self.inner.get_delivery(request_id).await
    }
    async fn redeliver(&self, request_id: &str) -> Result<Delivery, StoreError> {
        let r = self.inner.redeliver(request_id).await;
        if let Ok(d) = &r
            && let Err(e) = nudge(&*self.queue, d.event.device_id).await
        {
            tracing::warn!(error = %e, "nudging the events queue failed");
        }
        r
    }
}

/// Leases carry no events: every method is the inner store's, and a fenced view nudges
/// like this store does.
#[async_trait]
impl LeaseStore for Nudging {
    async fn acquire_lease(&self, claim: &Claim) -> Result<Lease, StoreError> {
        self.inner.acquire_lease(claim).await
    }
    async fn renew_lease(
        &self,
        device_id: Uuid,
        owner: &Owner,
        epoch: u64,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<Lease, StoreError> {
        self.inner
            .renew_lease(device_id, owner, epoch, now, ttl)
            .await
    }
    async fn release_lease(
        &self,
        device_id: Uuid,
        owner: &Owner,
        epoch: u64,
    ) -> Result<Lease, StoreError> {
        self.inner.release_lease(device_id, owner, epoch).await
    }
    async fn get_lease(&self, device_id: Uuid) -> Result<Option<Lease>, StoreError> {
        self.inner.get_lease(device_id).await
    }
    async fn list_leases(
        &self,
        owner: Option<&Owner>,
        page: PageRequest,
    ) -> Result<Page<Lease>, StoreError> {
        self.inner.list_leases(owner, page).await
    }
    async fn register_worker(&self, member: &Member) -> Result<(), StoreError> {
        self.inner.register_worker(member).await
    }
    async fn heartbeat_worker(&self, member: &Member) -> Result<(), StoreError> {
        self.inner.heartbeat_worker(member).await
    }
    async fn deregister_worker(&self, owner: &Owner) -> Result<(), StoreError> {
        self.inner.deregister_worker(owner).await
    }
    async fn live_workers(&self, now: OffsetDateTime) -> Result<Vec<Member>, StoreError> {
        self.inner.live_workers(now).await
    }
    fn fenced(&self, fence: Fence) -> Arc<dyn Store> {
        Arc::new(Nudging::new(self.inner.fenced(fence), self.queue.clone()))
    }
}

#[async_trait]
impl ReplyStore for Nudging {
    async fn put_reply(
        &self,
        ask_id: Uuid,
        reply: &Reply,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.inner.put_reply(ask_id, reply, expires_at).await
    }
    async fn get_reply(&self, ask_id: Uuid) -> Result<Option<Reply>, StoreError> {
        self.inner.get_reply(ask_id).await
    }
}
