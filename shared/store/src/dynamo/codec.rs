//! How every record of the port is laid out in the table: the key builders, the index
//! attributes, and one `From` (record → item) and one `TryFrom` (item → record) per record
//! type. docs/dynamodb.md describes the design; this module is its only implementation,
//! but for the items of leases and workers, which `leases` lays out with the keys below.
//!
//! Index attributes are derived here from the record, never set by callers: an item is in a
//! sparse index exactly when its record says so (a message while it is pending, ...).

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;
use wa_core::apps::App;
use wa_core::devices::{Device, DeviceStatus};
use wa_core::messages::{Message, MessageStatus};
use wa_core::provider::Presence;
use wa_core::store::{Delivery, DeliveryStatus, IdempotencyRecord, StoreError};
use wa_core::time::{self, OffsetDateTime};

use super::shards;

/// The attributes of one item, as the SDK takes and returns them.
pub(crate) type Attrs = HashMap<String, AttributeValue>;

pub(crate) const PK: &str = "pk";
pub(crate) const SK: &str = "sk";
/// The optimistic-concurrency revision of mutable records (apps, devices, messages,
/// deliveries): every replace is conditioned on the revision that was read.
pub(crate) const REV: &str = "rev";
/// The TTL attribute (epoch seconds) of idempotency records.
pub(crate) const EXPIRES_AT: &str = "expires_at";
/// The exact expiry (epoch milliseconds) of idempotency records, leases and worker
/// records; reads and conditions use it, DynamoDB's TTL the coarser `expires_at`.
pub(crate) const EXPIRES_MS: &str = "expires_ms";
pub(crate) const STATUS: &str = "status";
pub(crate) const RESPONSE_STATUS: &str = "response_status";
pub(crate) const RESPONSE_BODY: &str = "response_body";
/// The highest delivery `seq` committed for a device (its order guard).
pub(crate) const LAST_SEQ: &str = "last_seq";

/// The table and its global secondary indexes; every index has a string hash key and a
/// string range key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Index {
    Table,
    /// Listings in key order: a tenant's apps, an App's devices, a device's messages, an
    /// App's deliveries.
    Gsi1,
    /// Listings by status (sparse where only some statuses matter): devices by status, a
    /// device's pending messages, an App's deliveries of one status.
    Gsi2,
    /// Global work lists, all sparse: pending messages, the delivery queue, idempotency
    /// records by expiry.
    Gsi3,
}

impl Index {
    pub(crate) const GSIS: [Index; 3] = [Index::Gsi1, Index::Gsi2, Index::Gsi3];

    /// The index name, `None` for the table itself.
    pub(crate) fn name(self) -> Option<&'static str> {
        match self {
            Index::Table => None,
            Index::Gsi1 => Some("gsi1"),
            Index::Gsi2 => Some("gsi2"),
            Index::Gsi3 => Some("gsi3"),
        }
    }

    pub(crate) fn hash_key(self) -> &'static str {
        match self {
            Index::Table => PK,
            Index::Gsi1 => "gsi1pk",
            Index::Gsi2 => "gsi2pk",
            Index::Gsi3 => "gsi3pk",
        }
    }

    pub(crate) fn range_key(self) -> &'static str {
        match self {
            Index::Table => SK,
            Index::Gsi1 => "gsi1sk",
            Index::Gsi2 => "gsi2sk",
            Index::Gsi3 => "gsi3sk",
        }
    }
}

/// A number as fixed-width text that sorts like the number (offset binary, 20 digits), for
/// range keys: timestamps, delivery sequence numbers, expiries.
pub(crate) fn sortable(n: i64) -> String {
    format!("{:020}", (n as u64) ^ (1 << 63))
}

/// Milliseconds since the Unix epoch.
pub(crate) fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn from_ms(v: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(v as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The hash keys of work lists and listings (index hash keys).
pub(crate) mod list {
    use uuid::Uuid;

    pub(crate) fn tenant_apps(tenant: &str) -> String {
        format!("TENANT#{tenant}")
    }
    pub(crate) fn app_devices(app: Uuid) -> String {
        format!("APPDEV#{app}")
    }
    /// The membership items of an App's devices (table hash key, strongly consistent).
    pub(crate) fn devices_of_app(app: Uuid) -> String {
        format!("DEVOFAPP#{app}")
    }
    pub(crate) fn devices_with_status(status: &str) -> String {
        format!("DEVSTATUS#{status}")
    }
    pub(crate) fn device_messages(device: Uuid) -> String {
        format!("MSGS#{device}")
    }
    pub(crate) fn device_pending_messages(device: Uuid) -> String {
        format!("PENDING#{device}")
    }
    /// Every pending message, in the partitions of `dynamo::shards` (`PENDING#nn`).
    pub(crate) const PENDING_MESSAGES: &str = "PENDING";
    pub(crate) fn app_deliveries(app: Uuid) -> String {
        format!("APPDLV#{app}")
    }
    pub(crate) fn app_deliveries_with_status(app: Uuid, status: &str) -> String {
        format!("APPDLV#{app}#{status}")
    }
    /// Every pending delivery's queue entry, in `seq` order, in the partitions of
    /// `dynamo::shards` (`DLVQ#nn`).
    pub(crate) const DELIVERY_QUEUE: &str = "DLVQ";
    /// Every idempotency record by expiry, in the partitions of `dynamo::shards`
    /// (`IDEMEXP#nn`).
    pub(crate) const IDEMPOTENCY_BY_EXPIRY: &str = "IDEMEXP";
    /// A device's queue of pending deliveries (table hash key, strongly consistent).
    pub(crate) fn device_queue(device: Uuid) -> String {
        format!("DLVQ#{device}")
    }
    /// The chunks of one upload of a message's media (table hash key).
    pub(crate) fn media_chunks(device: Uuid, message_id: &str, upload: Uuid) -> String {
        format!("CHUNK#{device}#{message_id}#{upload}")
    }
    /// Every lease, in the partitions of `dynamo::shards` (`LEASES#nn`).
    pub(crate) const LEASES: &str = "LEASES";
    /// The leases held by one run of a worker.
    pub(crate) fn leases_of_owner(incarnation: Uuid, worker_id: &str) -> String {
        format!("LEASEOWNER#{incarnation}#{worker_id}")
    }
    pub(crate) const WORKERS: &str = "WORKERS";
}

/// Primary keys. A hash key embeds at most one free-form string, always last, so no two
/// records can share a key whatever their text holds.
pub(crate) mod key {
    use super::{Item, list, sortable};
    use uuid::Uuid;

    pub(crate) fn app(id: Uuid) -> Item {
        Item::key(format!("APP#{id}"), "APP")
    }
    /// Guard of the rule "one App name per tenant".
    pub(crate) fn app_name(tenant: &str, name: &str) -> Item {
        Item::key(format!("APPNAME#{tenant}"), format!("NAME#{name}"))
    }
    /// The mark of an App closed to new devices (kept after the App is deleted).
    pub(crate) fn app_closed(id: Uuid) -> Item {
        Item::key(format!("APP#{id}"), "CLOSED")
    }
    /// A device's membership of its App: what the consistent listing of the App's devices
    /// reads.
    pub(crate) fn app_device(app: Uuid, device: Uuid) -> Item {
        Item::key(list::devices_of_app(app), device.to_string())
    }
    /// Guard of the rule "one App per token hash", and the lookup by token.
    pub(crate) fn app_token(hash: &str) -> Item {
        Item::key(format!("APPTOKEN#{hash}"), "APPTOKEN")
    }
    pub(crate) fn device(id: Uuid) -> Item {
        Item::key(format!("DEVICE#{id}"), "DEVICE")
    }
    /// Guard of the rule "one live device name per App".
    pub(crate) fn device_name(app: Uuid, name: &str) -> Item {
        Item::key(format!("DEVNAME#{app}"), format!("NAME#{name}"))
    }
    pub(crate) fn presence(device: Uuid, jid: &str) -> Item {
        Item::key(format!("DEVICE#{device}"), format!("PRESENCE#{jid}"))
    }
    pub(crate) fn message(device: Uuid, message_id: &str) -> Item {
        Item::key(format!("DEVICE#{device}"), format!("MSG#{message_id}"))
    }
    pub(crate) fn media(device: Uuid, message_id: &str) -> Item {
        Item::key(format!("DEVICE#{device}"), format!("MEDIA#{message_id}"))
    }
    pub(crate) fn media_chunk(device: Uuid, message_id: &str, upload: Uuid, index: u32) -> Item {
        Item::key(
            list::media_chunks(device, message_id, upload),
            format!("{index:06}"),
        )
    }
    pub(crate) fn idempotency(app: Uuid, key: &str) -> Item {
        Item::key(format!("IDEM#{app}#{key}"), "IDEM")
    }
    pub(crate) fn delivery(request_id: &str) -> Item {
        Item::key(format!("DLV#{request_id}"), "DLV")
    }
    pub(crate) fn queue_entry(device: Uuid, seq: i64) -> Item {
        Item::key(list::device_queue(device), sortable(seq))
    }
    /// Guard of the rule "a device's events commit in `seq` order".
    pub(crate) fn device_order(device: Uuid) -> Item {
        Item::key(format!("DLVSEQ#{device}"), "DLVSEQ")
    }
    pub(crate) fn counter(name: &str) -> Item {
        Item::key(format!("COUNTER#{name}"), "COUNTER")
    }
    pub(crate) fn lease(device: Uuid) -> Item {
        Item::key(format!("LEASE#{device}"), "LEASE")
    }
    pub(crate) fn worker(worker_id: &str) -> Item {
        Item::key(format!("WORKER#{worker_id}"), "WORKER")
    }
}

/// One item: a record's attributes, with typed setters and getters that name the item in
/// their errors.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Item(pub(crate) Attrs);

impl Item {
    pub(crate) fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
        Item::default().with_s(PK, pk).with_s(SK, sk)
    }

    /// The primary key of this item.
    pub(crate) fn primary_key(&self) -> Item {
        let mut k = Item::default();
        for name in [PK, SK] {
            if let Some(v) = self.0.get(name) {
                k.0.insert(name.to_owned(), v.clone());
            }
        }
        k
    }

    /// `pk` and `sk` as text (a map key for items read back in another order).
    pub(crate) fn key_text(&self) -> (String, String) {
        let s = |n| self.s(n).map(str::to_owned).unwrap_or_default();
        (s(PK), s(SK))
    }

    pub(crate) fn with(mut self, name: &str, v: AttributeValue) -> Item {
        self.0.insert(name.to_owned(), v);
        self
    }

    pub(crate) fn with_s(self, name: &str, v: impl Into<String>) -> Item {
        self.with(name, AttributeValue::S(v.into()))
    }

    pub(crate) fn with_n(self, name: &str, v: impl Display) -> Item {
        self.with(name, AttributeValue::N(v.to_string()))
    }

    pub(crate) fn with_b(self, name: &str, v: Vec<u8>) -> Item {
        self.with(name, AttributeValue::B(Blob::new(v)))
    }

    /// Sets the attribute when there is a value; absent attributes mean `None`.
    pub(crate) fn with_opt_s(self, name: &str, v: Option<impl Into<String>>) -> Item {
        match v {
            Some(v) => self.with_s(name, v),
            None => self,
        }
    }

    pub(crate) fn with_opt_n(self, name: &str, v: Option<impl Display>) -> Item {
        match v {
            Some(v) => self.with_n(name, v),
            None => self,
        }
    }

    fn with_json<T: Serialize>(self, name: &str, v: &Option<T>) -> Item {
        let text = v
            .as_ref()
            .map(|v| serde_json::to_string(v).expect("records serialize"));
        self.with_opt_s(name, text)
    }

    /// Puts the item in an index under `hash`/`range`.
    pub(crate) fn in_index(self, index: Index, hash: impl Into<String>, range: String) -> Item {
        self.with_s(index.hash_key(), hash)
            .with_s(index.range_key(), range)
    }

    pub(crate) fn with_rev(self, rev: u64) -> Item {
        self.with_n(REV, rev)
    }

    fn corrupt(&self, name: &str, what: impl Display) -> StoreError {
        let (pk, sk) = self.key_text();
        StoreError::Backend(format!("corrupt item {pk}/{sk}: attribute {name}: {what}"))
    }

    fn attr(&self, name: &str) -> Option<&AttributeValue> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// The length of the item's stored body (its JSON), 0 when it has none: what decides
    /// whether a copy of it is kept ([`super::recent`]).
    pub(crate) fn body_len(&self) -> usize {
        self.opt_s("body").ok().flatten().map_or(0, str::len)
    }

    pub(crate) fn opt_s(&self, name: &str) -> Result<Option<&str>, StoreError> {
        match self.attr(name) {
            None => Ok(None),
            Some(AttributeValue::S(s)) => Ok(Some(s)),
            Some(_) => Err(self.corrupt(name, "not a string")),
        }
    }

    pub(crate) fn s(&self, name: &str) -> Result<&str, StoreError> {
        self.opt_s(name)?
            .ok_or_else(|| self.corrupt(name, "missing"))
    }

    pub(crate) fn opt_n<T: FromStr>(&self, name: &str) -> Result<Option<T>, StoreError>
    where
        T::Err: Display,
    {
        match self.attr(name) {
            None => Ok(None),
            Some(AttributeValue::N(n)) => n.parse().map(Some).map_err(|e| self.corrupt(name, e)),
            Some(_) => Err(self.corrupt(name, "not a number")),
        }
    }

    pub(crate) fn n<T: FromStr>(&self, name: &str) -> Result<T, StoreError>
    where
        T::Err: Display,
    {
        self.opt_n(name)?
            .ok_or_else(|| self.corrupt(name, "missing"))
    }

    pub(crate) fn opt_b(&self, name: &str) -> Result<Option<&[u8]>, StoreError> {
        match self.attr(name) {
            None => Ok(None),
            Some(AttributeValue::B(b)) => Ok(Some(b.as_ref())),
            Some(_) => Err(self.corrupt(name, "not binary")),
        }
    }

    pub(crate) fn uuid(&self, name: &str) -> Result<Uuid, StoreError> {
        Uuid::parse_str(self.s(name)?).map_err(|e| self.corrupt(name, e))
    }

    fn opt_time(&self, name: &str) -> Result<Option<OffsetDateTime>, StoreError> {
        self.opt_s(name)?
            .map(|s| time::parse(s).map_err(|e| self.corrupt(name, e)))
            .transpose()
    }

    fn time(&self, name: &str) -> Result<OffsetDateTime, StoreError> {
        self.opt_time(name)?
            .ok_or_else(|| self.corrupt(name, "missing"))
    }

    fn opt_json<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StoreError> {
        self.opt_s(name)?
            .map(|s| serde_json::from_str(s).map_err(|e| self.corrupt(name, e)))
            .transpose()
    }

    fn json<T: DeserializeOwned>(&self, name: &str) -> Result<T, StoreError> {
        self.opt_json(name)?
            .ok_or_else(|| self.corrupt(name, "missing"))
    }

    /// The revision the item was written with.
    pub(crate) fn rev(&self) -> Result<u64, StoreError> {
        self.n(REV)
    }
}

/// A guard item: holds a uniqueness rule's key for its owner (an App or a device).
pub(crate) fn guard(key: Item, owner: Uuid) -> Item {
    key.with_s("kind", "guard")
        .with_s("owner", owner.to_string())
}

/// The owner a guard item names.
pub(crate) fn guard_owner(item: &Item) -> Result<Uuid, StoreError> {
    item.uuid("owner")
}

/// The guard item of an App's token hash, carrying a copy of the App: the lookup of an App
/// by token (every request with an App token) is one read. Every write of the App writes
/// it again in the same transaction.
pub(crate) fn token_guard(a: &App) -> Item {
    app_attributes(guard(key::app_token(&a.token_hash), a.app_id), a)
}

/// The App's own attributes (those `App::try_from` reads) on `item`.
fn app_attributes(item: Item, a: &App) -> Item {
    item.with_s("app_id", a.app_id.to_string())
        .with_s("tenant_id", &a.tenant_id)
        .with_s("name", &a.name)
        .with_opt_s("webhook_url", a.webhook_url.as_deref())
        .with_s("token_hash", &a.token_hash)
        .with_s("webhook_secret", &a.webhook_secret)
        .with_s("created_at", time::format(a.created_at))
        .with_s("updated_at", time::format(a.updated_at))
}

impl From<&App> for Item {
    fn from(a: &App) -> Item {
        app_attributes(key::app(a.app_id).with_s("kind", "app"), a).in_index(
            Index::Gsi1,
            list::tenant_apps(&a.tenant_id),
            a.app_id.to_string(),
        )
    }
}

impl TryFrom<&Item> for App {
    type Error = StoreError;

    fn try_from(i: &Item) -> Result<App, StoreError> {
        Ok(App {
            app_id: i.uuid("app_id")?,
            tenant_id: i.s("tenant_id")?.to_owned(),
            name: i.s("name")?.to_owned(),
            webhook_url: i.opt_s("webhook_url")?.map(str::to_owned),
            token_hash: i.s("token_hash")?.to_owned(),
            webhook_secret: i.s("webhook_secret")?.to_owned(),
            created_at: i.time("created_at")?,
            updated_at: i.time("updated_at")?,
        })
    }
}

impl From<&Device> for Item {
    fn from(d: &Device) -> Item {
        key::device(d.device_id)
            .with_s("kind", "device")
            .with_s("device_id", d.device_id.to_string())
            .with_s("app_id", d.app_id.to_string())
            .with_s("tenant_id", &d.tenant_id)
            .with_s("device_name", &d.device_name)
            .with_s(STATUS, d.status.as_str())
            .with_json("qr", &d.qr)
            .with_json("pair_code", &d.pair_code)
            .with_opt_s("wa_number", d.wa_number.as_deref())
            .with_opt_s("wa_device_jid", d.wa_device_jid.as_deref())
            .with_opt_s("linked_at", d.linked_at.map(time::format))
            .with_json("last_error", &d.last_error)
            .with_s("created_at", time::format(d.created_at))
            .with_s("updated_at", time::format(d.updated_at))
            .in_index(
                Index::Gsi1,
                list::app_devices(d.app_id),
                d.device_id.to_string(),
            )
            .in_index(
                Index::Gsi2,
                list::devices_with_status(d.status.as_str()),
                d.device_id.to_string(),
            )
    }
}

impl TryFrom<&Item> for Device {
    type Error = StoreError;

    fn try_from(i: &Item) -> Result<Device, StoreError> {
        let status = i.s(STATUS)?;
        Ok(Device {
            device_id: i.uuid("device_id")?,
            app_id: i.uuid("app_id")?,
            tenant_id: i.s("tenant_id")?.to_owned(),
            device_name: i.s("device_name")?.to_owned(),
            status: DeviceStatus::parse(status)
                .ok_or_else(|| i.corrupt(STATUS, format!("unknown device status {status}")))?,
            qr: i.opt_json("qr")?,
            pair_code: i.opt_json("pair_code")?,
            wa_number: i.opt_s("wa_number")?.map(str::to_owned),
            wa_device_jid: i.opt_s("wa_device_jid")?.map(str::to_owned),
            linked_at: i.opt_time("linked_at")?,
            last_error: i.opt_json("last_error")?,
            created_at: i.time("created_at")?,
            updated_at: i.time("updated_at")?,
        })
    }
}

/// A peer's presence as seen by one device.
pub(crate) struct SeenPresence<'a> {
    pub(crate) device_id: Uuid,
    pub(crate) presence: &'a Presence,
}

impl From<SeenPresence<'_>> for Item {
    fn from(p: SeenPresence<'_>) -> Item {
        let v = p.presence;
        key::presence(p.device_id, &v.jid)
            .with_s("kind", "presence")
            .with_s("jid", &v.jid)
            .with_s("presence", &v.presence)
            .with_opt_s("chat_state", v.chat_state.as_deref())
            .with_opt_s("last_seen", v.last_seen.map(time::format))
            .with_s("updated_at", time::format(v.updated_at))
    }
}

impl TryFrom<&Item> for Presence {
    type Error = StoreError;

    fn try_from(i: &Item) -> Result<Presence, StoreError> {
        Ok(Presence {
            jid: i.s("jid")?.to_owned(),
            presence: i.s("presence")?.to_owned(),
            chat_state: i.opt_s("chat_state")?.map(str::to_owned),
            last_seen: i.opt_time("last_seen")?,
            updated_at: i.time("updated_at")?,
        })
    }
}

/// Whether a message is waiting to be sent (in the pending lists).
pub(crate) fn is_pending(status: MessageStatus) -> bool {
    matches!(status, MessageStatus::Queued | MessageStatus::Sending)
}

/// The range key of a message in time order: creation time, then id.
pub(crate) fn message_order(created_ms: i64, message_id: &str) -> String {
    format!("{}#{message_id}", sortable(created_ms))
}

impl From<&Message> for Item {
    /// The record is kept whole as JSON in `body` (as SQLite does); the attributes beside it
    /// are the ones keys and conditions need.
    fn from(m: &Message) -> Item {
        let order = message_order(ms(m.created_at), &m.message_id);
        let item = key::message(m.device_id, &m.message_id)
            .with_s("kind", "message")
            .with_s("device_id", m.device_id.to_string())
            .with_s("message_id", &m.message_id)
            .with_s(STATUS, m.status.as_str())
            .with_n("created_ms", ms(m.created_at))
            .with_s(
                "body",
                serde_json::to_string(m).expect("messages serialize"),
            )
            .in_index(
                Index::Gsi1,
                list::device_messages(m.device_id),
                order.clone(),
            );
        if is_pending(m.status) {
            item.in_index(
                Index::Gsi2,
                list::device_pending_messages(m.device_id),
                order.clone(),
            )
            .in_index(
                Index::Gsi3,
                shards::of_device(list::PENDING_MESSAGES, m.device_id),
                format!("{order}#{}", m.device_id),
            )
        } else {
            item
        }
    }
}

impl TryFrom<&Item> for Message {
    type Error = StoreError;

    fn try_from(i: &Item) -> Result<Message, StoreError> {
        i.json("body")
    }
}

/// The inline media of an outbound message, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoredMedia {
    /// Small enough to sit in the media item itself.
    Inline(Vec<u8>),
    /// Split into `chunks` items under one upload id, written before the message.
    Chunked {
        upload: Uuid,
        chunks: u32,
        size: u64,
    },
}

/// The media item of a message: the bytes, or where its chunks are.
pub(crate) struct MediaItem {
    pub(crate) device_id: Uuid,
    pub(crate) message_id: String,
    pub(crate) media: StoredMedia,
}

impl From<&MediaItem> for Item {
    fn from(m: &MediaItem) -> Item {
        let item = key::media(m.device_id, &m.message_id).with_s("kind", "media");
        match &m.media {
            StoredMedia::Inline(bytes) => item.with_b("bytes", bytes.clone()),
            StoredMedia::Chunked {
                upload,
                chunks,
                size,
            } => item
                .with_s("upload", upload.to_string())
                .with_n("chunks", chunks)
                .with_n("size", size),
        }
    }
}

impl TryFrom<&Item> for StoredMedia {
    type Error = StoreError;

    fn try_from(i: &Item) -> Result<StoredMedia, StoreError> {
        Ok(match i.opt_b("bytes")? {
            Some(bytes) => StoredMedia::Inline(bytes.to_vec()),
            None => StoredMedia::Chunked {
                upload: i.uuid("upload")?,
                chunks: i.n("chunks")?,
                size: i.n("size")?,
            },
        })
    }
}

/// One chunk of a large media file.
pub(crate) struct MediaChunk<'a> {
    pub(crate) device_id: Uuid,
    pub(crate) message_id: &'a str,
    pub(crate) upload: Uuid,
    pub(crate) index: u32,
    pub(crate) bytes: &'a [u8],
}

impl From<MediaChunk<'_>> for Item {
    fn from(c: MediaChunk<'_>) -> Item {
        key::media_chunk(c.device_id, c.message_id, c.upload, c.index)
            .with_s("kind", "media_chunk")
            .with_b("bytes", c.bytes.to_vec())
    }
}

/// The bytes of a chunk item.
pub(crate) fn chunk_bytes(i: &Item) -> Result<&[u8], StoreError> {
    i.opt_b("bytes")?
        .ok_or_else(|| i.corrupt("bytes", "missing"))
}

impl From<&IdempotencyRecord> for Item {
    fn from(r: &IdempotencyRecord) -> Item {
        let expires_ms = ms(r.expires_at);
        key::idempotency(r.app_id, &r.key)
            .with_s("kind", "idempotency")
            .with_s("app_id", r.app_id.to_string())
            .with_s("key", &r.key)
            .with_s("request_hash", &r.request_hash)
            .with_s("device_id", r.device_id.to_string())
            .with_s("message_id", &r.message_id)
            .with_opt_n(RESPONSE_STATUS, r.response.as_ref().map(|(s, _)| *s))
            .with_opt_s(RESPONSE_BODY, r.response.as_ref().map(|(_, b)| b.as_str()))
            .with_n(EXPIRES_MS, expires_ms)
            // DynamoDB's TTL wants whole seconds; round up so it never deletes early.
            .with_n(EXPIRES_AT, expires_ms.div_euclid(1000) + 1)
            .in_index(
                Index::Gsi3,
                shards::of_device(list::IDEMPOTENCY_BY_EXPIRY, r.device_id),
                sortable(expires_ms),
            )
    }
}

impl TryFrom<&Item> for IdempotencyRecord {
    type Error = StoreError;

    fn try_from(i: &Item) -> Result<IdempotencyRecord, StoreError> {
        let status: Option<u16> = i.opt_n(RESPONSE_STATUS)?;
        let body = i.opt_s(RESPONSE_BODY)?;
        Ok(IdempotencyRecord {
            app_id: i.uuid("app_id")?,
            key: i.s("key")?.to_owned(),
            request_hash: i.s("request_hash")?.to_owned(),
            device_id: i.uuid("device_id")?,
            message_id: i.s("message_id")?.to_owned(),
            response: status.zip(body).map(|(s, b)| (s, b.to_owned())),
            expires_at: from_ms(i.n(EXPIRES_MS)?),
        })
    }
}

impl From<&Delivery> for Item {
    fn from(d: &Delivery) -> Item {
        let e = &d.event;
        key::delivery(&e.request_id)
            .with_s("kind", "delivery")
            .with_s("request_id", &e.request_id)
            .with_s("app_id", e.app_id.to_string())
            .with_s("device_id", e.device_id.to_string())
            .with_n("seq", d.seq)
            .with_s("body", e.body())
            .with_s(STATUS, d.status.as_str())
            .with_n("attempts", d.attempts)
            .with_n("next_attempt_ms", ms(d.next_attempt_at))
            .with_opt_s("last_error", d.last_error.as_deref())
            .with_opt_n("last_status", d.last_status_code)
            .with_n("updated_ms", ms(d.updated_at))
            .in_index(Index::Gsi1, list::app_deliveries(e.app_id), sortable(d.seq))
            .in_index(
                Index::Gsi2,
                list::app_deliveries_with_status(e.app_id, d.status.as_str()),
                sortable(d.seq),
            )
    }
}

impl TryFrom<&Item> for Delivery {
    type Error = StoreError;

    fn try_from(i: &Item) -> Result<Delivery, StoreError> {
        let status = i.s(STATUS)?;
        Ok(Delivery {
            seq: i.n("seq")?,
            event: i.json("body")?,
            status: DeliveryStatus::parse(status)
                .ok_or_else(|| i.corrupt(STATUS, format!("unknown delivery status {status}")))?,
            attempts: i.n("attempts")?,
            next_attempt_at: from_ms(i.n("next_attempt_ms")?),
            last_error: i.opt_s("last_error")?.map(str::to_owned),
            last_status_code: i.opt_n("last_status")?,
            updated_at: from_ms(i.n("updated_ms")?),
        })
    }
}

/// A pending delivery's place in its device's queue. It exists exactly while the delivery
/// is pending and carries its next attempt time and attempts (written and deleted in the same
/// transactions as the delivery), so a queue head that is not due needs no second read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueueEntry {
    pub(crate) device_id: Uuid,
    pub(crate) seq: i64,
    pub(crate) request_id: String,
    pub(crate) next_attempt_ms: i64,
    /// The delivery's attempts so far (1 for an entry written without them: a wait is
    /// taken for a retry's).
    pub(crate) attempts: u32,
}

impl From<&Delivery> for QueueEntry {
    fn from(d: &Delivery) -> QueueEntry {
        QueueEntry {
            device_id: d.event.device_id,
            seq: d.seq,
            request_id: d.event.request_id.clone(),
            next_attempt_ms: ms(d.next_attempt_at),
            attempts: d.attempts,
        }
    }
}

impl From<&QueueEntry> for Item {
    fn from(q: &QueueEntry) -> Item {
        key::queue_entry(q.device_id, q.seq)
            .with_s("kind", "queue_entry")
            .with_s("device_id", q.device_id.to_string())
            .with_n("seq", q.seq)
            .with_s("request_id", &q.request_id)
            .with_n("next_attempt_ms", q.next_attempt_ms)
            .with_n("attempts", q.attempts)
            .in_index(
                Index::Gsi3,
                shards::of_device(list::DELIVERY_QUEUE, q.device_id),
                sortable(q.seq),
            )
    }
}

impl TryFrom<&Item> for QueueEntry {
    type Error = StoreError;

    fn try_from(i: &Item) -> Result<QueueEntry, StoreError> {
        Ok(QueueEntry {
            device_id: i.uuid("device_id")?,
            seq: i.n("seq")?,
            request_id: i.s("request_id")?.to_owned(),
            next_attempt_ms: i.n("next_attempt_ms")?,
            attempts: i.opt_n("attempts")?.unwrap_or(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sortable_numbers_sort_like_numbers() {
        let ns = [i64::MIN, -5, -1, 0, 1, 9, 10, 1_700_000_000_000, i64::MAX];
        let texts: Vec<_> = ns.iter().map(|n| sortable(*n)).collect();
        assert!(texts.windows(2).all(|w| w[0] < w[1]), "{texts:?}");
        assert!(texts.iter().all(|t| t.len() == 20));
    }

    #[test]
    fn message_order_breaks_ties_by_id() {
        assert!(message_order(5, "A") < message_order(5, "B"));
        assert!(message_order(5, "ZZZ") < message_order(6, "A"));
        // The cursor form with an empty id is before every message of that millisecond.
        assert!(message_order(5, "") < message_order(5, "A"));
    }

    #[test]
    fn idempotency_ttl_never_precedes_expiry() {
        let r = IdempotencyRecord {
            app_id: Uuid::now_v7(),
            key: "k".into(),
            request_hash: "h".into(),
            device_id: Uuid::now_v7(),
            message_id: "m".into(),
            response: Some((201, "{}".into())),
            expires_at: from_ms(1_700_000_000_999),
        };
        let item = Item::from(&r);
        assert_eq!(item.n::<i64>(EXPIRES_AT).unwrap(), 1_700_000_001);
        assert_eq!(IdempotencyRecord::try_from(&item).unwrap(), r);
    }
}
