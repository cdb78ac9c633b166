//! A store wrapped around another. [`Layered`] passes every call of every store port to the
//! inner store, and lets its [`Layer`] act before each call and after each write that
//! committed events. The events queue's nudges (`crate::outbox`) and the fault injection of
//! tests are layers, so that the forwarding of the store's methods is written once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use crate::apps::App;
use crate::devices::{Device, DeviceStatus, DeviceUpdate};
use crate::lease::{Claim, Fence, Lease, Member, Owner};
use crate::messages::{Message, MessageStatus, MessageUpdate};
use crate::provider::Presence;
use crate::queue::{Command, Queue, Received};
use crate::session::Reply;
use crate::store::*;
use crate::time::OffsetDateTime;
use crate::webhooks::Event;

/// What a [`Layered`] store does around the inner store's calls.
#[async_trait]
pub trait Layer: Send + Sync + 'static {
    /// Runs before the call `op` (the store method's name) reaches the inner store; an
    /// error is the call's answer, and the inner store is not called.
    fn before(&self, op: &'static str) -> Result<(), StoreError> {
        let _ = op;
        Ok(())
    }

    /// Runs after a write committed `events` (never after a failed write, nor after one
    /// that wrote nothing, such as a send whose idempotency key existed).
    async fn committed(&self, events: &[Event]) {
        let _ = events;
    }
}

/// `inner`, with `layer` around each of its calls. Its fenced views keep the layer.
pub struct Layered<L> {
    inner: Arc<dyn Store>,
    layer: Arc<L>,
}

impl<L: Layer> Layered<L> {
    pub fn new(inner: Arc<dyn Store>, layer: Arc<L>) -> Layered<L> {
        Layered { inner, layer }
    }

    /// The layer, for its owner to inspect.
    pub fn layer(&self) -> &L {
        &self.layer
    }

    async fn after<T>(
        &self,
        result: Result<T, StoreError>,
        events: &[Event],
    ) -> Result<T, StoreError> {
        if result.is_ok() && !events.is_empty() {
            self.layer.committed(events).await;
        }
        result
    }
}

#[async_trait]
impl<L: Layer> AppStore for Layered<L> {
    async fn insert_app(&self, app: &App) -> Result<(), StoreError> {
        self.layer.before("insert_app")?;
        self.inner.insert_app(app).await
    }
    async fn get_app(&self, app_id: Uuid) -> Result<Option<App>, StoreError> {
        self.layer.before("get_app")?;
        self.inner.get_app(app_id).await
    }
    async fn app_by_token_hash(&self, token_hash: &str) -> Result<Option<App>, StoreError> {
        self.layer.before("app_by_token_hash")?;
        self.inner.app_by_token_hash(token_hash).await
    }
    async fn list_apps(&self, tenant_id: &str, page: PageRequest) -> Result<Page<App>, StoreError> {
        self.layer.before("list_apps")?;
        self.inner.list_apps(tenant_id, page).await
    }
    async fn update_app(&self, app_id: Uuid, update: &AppUpdate) -> Result<App, StoreError> {
        self.layer.before("update_app")?;
        self.inner.update_app(app_id, update).await
    }
    async fn delete_app(&self, app_id: Uuid) -> Result<(), StoreError> {
        self.layer.before("delete_app")?;
        self.inner.delete_app(app_id).await
    }
    async fn close_app(&self, app_id: Uuid) -> Result<(), StoreError> {
        self.layer.before("close_app")?;
        self.inner.close_app(app_id).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.layer.before("ping")?;
        self.inner.ping().await
    }
}

#[async_trait]
impl<L: Layer> DeviceStore for Layered<L> {
    async fn insert_device(&self, device: &Device) -> Result<(), StoreError> {
        self.layer.before("insert_device")?;
        self.inner.insert_device(device).await
    }
    async fn get_device(&self, device_id: Uuid) -> Result<Option<Device>, StoreError> {
        self.layer.before("get_device")?;
        self.inner.get_device(device_id).await
    }
    async fn list_devices(
        &self,
        app_id: Uuid,
        status: Option<DeviceStatus>,
        page: PageRequest,
    ) -> Result<Page<Device>, StoreError> {
        self.layer.before("list_devices")?;
        self.inner.list_devices(app_id, status, page).await
    }
    async fn devices_of_app(&self, app_id: Uuid) -> Result<Vec<Device>, StoreError> {
        self.layer.before("devices_of_app")?;
        self.inner.devices_of_app(app_id).await
    }
    async fn devices_with_status(
        &self,
        statuses: &[DeviceStatus],
        page: PageRequest,
    ) -> Result<Page<Device>, StoreError> {
        self.layer.before("devices_with_status")?;
        self.inner.devices_with_status(statuses, page).await
    }
    async fn update_device(
        &self,
        device_id: Uuid,
        update: &DeviceUpdate,
        expect: &[DeviceStatus],
        events: &[Event],
    ) -> Result<Device, StoreError> {
        self.layer.before("update_device")?;
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
        self.layer.before("put_presence")?;
        let r = self.inner.put_presence(device_id, presence, events).await;
        self.after(r, events).await
    }
    async fn get_presence(
        &self,
        device_id: Uuid,
        jid: &str,
    ) -> Result<Option<Presence>, StoreError> {
        self.layer.before("get_presence")?;
        self.inner.get_presence(device_id, jid).await
    }
}

#[async_trait]
impl<L: Layer> MessageStore for Layered<L> {
    async fn create_message(
        &self,
        message: &Message,
        media: Option<&[u8]>,
        idempotency: Option<&IdempotencyRecord>,
        events: &[Event],
    ) -> Result<Created, StoreError> {
        self.layer.before("create_message")?;
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
        queue: &dyn Queue,
        command: Command,
    ) -> Result<Created, StoreError> {
        self.layer.before("create_message_and_enqueue")?;
        self.inner
            .create_message_and_enqueue(message, media, idempotency, queue, command)
            .await
    }
    async fn get_message(
        &self,
        device_id: Uuid,
        message_id: &str,
    ) -> Result<Option<Message>, StoreError> {
        self.layer.before("get_message")?;
        self.inner.get_message(device_id, message_id).await
    }
    async fn inbound_message_id(
        &self,
        device_id: Uuid,
        chat: &str,
        from: &str,
        message_id: &str,
    ) -> Result<Option<String>, StoreError> {
        self.layer.before("inbound_message_id")?;
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
        self.layer.before("list_messages")?;
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
        self.layer.before("update_message")?;
        let r = self
            .inner
            .update_message(device_id, message_id, update, expect, events)
            .await;
        self.after(r, events).await
    }
    // `update_message`'s arguments, with the command and its follow-on's visibility.
    #[allow(clippy::too_many_arguments)]
    async fn update_message_settling(
        &self,
        device_id: Uuid,
        message_id: &str,
        update: &MessageUpdate,
        expect: &[MessageStatus],
        events: &[Event],
        done: &Received,
        visibility: Duration,
    ) -> Result<(Message, Settled), StoreError> {
        self.layer.before("update_message_settling")?;
        let r = self
            .inner
            .update_message_settling(
                device_id, message_id, update, expect, events, done, visibility,
            )
            .await;
        self.after(r, events).await
    }
    async fn outbound_media(
        &self,
        device_id: Uuid,
        message_id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.layer.before("outbound_media")?;
        self.inner.outbound_media(device_id, message_id).await
    }
    async fn delete_outbound_media(
        &self,
        device_id: Uuid,
        message_id: &str,
    ) -> Result<(), StoreError> {
        self.layer.before("delete_outbound_media")?;
        self.inner
            .delete_outbound_media(device_id, message_id)
            .await
    }
    async fn pending_messages(
        &self,
        device_id: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        self.layer.before("pending_messages")?;
        self.inner.pending_messages(device_id, limit).await
    }
    async fn pending_page(
        &self,
        after: Option<&PendingCursor>,
        limit: u32,
    ) -> Result<(Vec<Message>, Option<PendingCursor>), StoreError> {
        self.layer.before("pending_page")?;
        self.inner.pending_page(after, limit).await
    }
    async fn get_idempotency(
        &self,
        app_id: Uuid,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.layer.before("get_idempotency")?;
        self.inner.get_idempotency(app_id, key).await
    }
    async fn set_idempotency_response(
        &self,
        app_id: Uuid,
        key: &str,
        status: u16,
        body: &str,
    ) -> Result<(), StoreError> {
        self.layer.before("set_idempotency_response")?;
        self.inner
            .set_idempotency_response(app_id, key, status, body)
            .await
    }
    async fn clear_idempotency_response(&self, app_id: Uuid, key: &str) -> Result<(), StoreError> {
        self.layer.before("clear_idempotency_response")?;
        self.inner.clear_idempotency_response(app_id, key).await
    }
    async fn purge_expired_idempotency(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.layer.before("purge_expired_idempotency")?;
        self.inner.purge_expired_idempotency(now).await
    }
}

#[async_trait]
impl<L: Layer> EventStore for Layered<L> {
    async fn append_events(&self, events: &[Event]) -> Result<(), StoreError> {
        self.layer.before("append_events")?;
        let r = self.inner.append_events(events).await;
        self.after(r, events).await
    }
    async fn due_deliveries(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.layer.before("due_deliveries")?;
        self.inner.due_deliveries(now, limit).await
    }
    async fn next_delivery_of_device(
        &self,
        device_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Option<Delivery>, StoreError> {
        self.layer.before("next_delivery_of_device")?;
        self.inner.next_delivery_of_device(device_id, now).await
    }
    async fn record_attempt(
        &self,
        request_id: &str,
        attempt: &Attempt,
    ) -> Result<Delivery, StoreError> {
        self.layer.before("record_attempt")?;
        self.inner.record_attempt(request_id, attempt).await
    }
    async fn list_deliveries(
        &self,
        app_id: Uuid,
        status: Option<DeliveryStatus>,
        limit: u32,
        before_seq: Option<i64>,
    ) -> Result<(Vec<Delivery>, Option<i64>), StoreError> {
        self.layer.before("list_deliveries")?;
        self.inner
            .list_deliveries(app_id, status, limit, before_seq)
            .await
    }
    async fn get_delivery(&self, request_id: &str) -> Result<Option<Delivery>, StoreError> {
        self.layer.before("get_delivery")?;
        self.inner.get_delivery(request_id).await
    }
    /// A redelivered event is committed again: the layer sees it.
    async fn redeliver(&self, request_id: &str) -> Result<Delivery, StoreError> {
        self.layer.before("redeliver")?;
        let r = self.inner.redeliver(request_id).await;
        if let Ok(d) = &r {
            self.layer.committed(std::slice::from_ref(&d.event)).await;
        }
        r
    }
}

#[async_trait]
impl<L: Layer> LeaseStore for Layered<L> {
    async fn acquire_lease(&self, claim: &Claim) -> Result<Lease, StoreError> {
        self.layer.before("acquire_lease")?;
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
        self.layer.before("renew_lease")?;
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
        self.layer.before("release_lease")?;
        self.inner.release_lease(device_id, owner, epoch).await
    }
    async fn get_lease(&self, device_id: Uuid) -> Result<Option<Lease>, StoreError> {
        self.layer.before("get_lease")?;
        self.inner.get_lease(device_id).await
    }
    async fn list_leases(
        &self,
        owner: Option<&Owner>,
        page: PageRequest,
    ) -> Result<Page<Lease>, StoreError> {
        self.layer.before("list_leases")?;
        self.inner.list_leases(owner, page).await
    }
    async fn register_worker(&self, member: &Member) -> Result<(), StoreError> {
        self.layer.before("register_worker")?;
        self.inner.register_worker(member).await
    }
    async fn heartbeat_worker(&self, member: &Member) -> Result<(), StoreError> {
        self.layer.before("heartbeat_worker")?;
        self.inner.heartbeat_worker(member).await
    }
    async fn deregister_worker(&self, owner: &Owner) -> Result<(), StoreError> {
        self.layer.before("deregister_worker")?;
        self.inner.deregister_worker(owner).await
    }
    async fn live_workers(&self, now: OffsetDateTime) -> Result<Vec<Member>, StoreError> {
        self.layer.before("live_workers")?;
        self.inner.live_workers(now).await
    }
    fn fenced(&self, fence: Fence) -> Arc<dyn Store> {
        Arc::new(Layered::new(self.inner.fenced(fence), self.layer.clone()))
    }
}

#[async_trait]
impl<L: Layer> ReplyStore for Layered<L> {
    async fn put_reply(
        &self,
        ask_id: Uuid,
        reply: &Reply,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.layer.before("put_reply")?;
        self.inner.put_reply(ask_id, reply, expires_at).await
    }
    async fn get_reply(&self, ask_id: Uuid) -> Result<Option<Reply>, StoreError> {
        self.layer.before("get_reply")?;
        self.inner.get_reply(ask_id).await
    }
}
