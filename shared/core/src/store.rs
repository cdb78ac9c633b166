//! The store port: what the use cases need from storage, as small async traits.
//! Adapters (SQLite, DynamoDB) implement them and pass the conformance suite of the
//! test-support crate (`wa_testkit::conformance`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use crate::apps::App;
use crate::devices::{Device, DeviceStatus, DeviceUpdate};
use crate::lease::{Claim, Fence, Lease, Member, Owner};
use crate::messages::{Message, MessageStatus, MessageUpdate};
use crate::provider::Presence;
use crate::queue::{Command, Queue, Received, enqueue};
use crate::session::Reply;
use crate::time::OffsetDateTime;
use crate::webhooks::Event;
use serde::{Deserialize, Serialize};

/// Storage failures. These are not HTTP errors: use cases map them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The record to change does not exist.
    NotFound,
    /// A uniqueness rule refused the write; the string names the rule (`app_name`, ...).
    Conflict(&'static str),
    /// The backend throttled the request; retrying later may succeed.
    Throttled,
    /// The record is larger than the backend can hold in one item (DynamoDB: 400 KB);
    /// retrying cannot succeed. The caller sent too much (a text, a caption).
    TooLarge,
    /// A write made through a fenced view (`LeaseStore::fenced`) was refused: the device's
    /// lease is no longer held by the view's owner at its epoch (another worker took it
    /// over, or it was released). Nothing was written; the session the view was made for
    /// must close now.
    Fenced,
    /// Anything else; the text is for logs only.
    Backend(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::NotFound => f.write_str("record not found"),
            StoreError::Conflict(rule) => write!(f, "uniqueness conflict on {rule}"),
            StoreError::Throttled => f.write_str("store throttled"),
            StoreError::TooLarge => f.write_str("record too large for the store"),
            StoreError::Fenced => f.write_str("the device's lease has another owner or epoch"),
            StoreError::Backend(e) => write!(f, "store backend error: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<StoreError> for wa_errors::ApiError {
    /// The default mapping; call sites that know better (a conflict on a name) map themselves.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => wa_errors::ApiError::not_found("resource not found"),
            StoreError::Conflict(_) => wa_errors::ApiError::conflict("resource already exists"),
            StoreError::TooLarge => wa_errors::ApiError::new(
                wa_errors::ErrorCode::RequestTooLarge,
                "the request is too large to store; send less text, or media by `url`",
            ),
            StoreError::Throttled | StoreError::Fenced | StoreError::Backend(_) => {
                wa_errors::ApiError::internal(e)
            }
        }
    }
}

/// One page of a listing request: at most `limit` items after the cursor `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub after: Option<Uuid>,
}

/// One page of results, in ascending id order (ids are UUID v7, so creation order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The cursor of the next page, if there may be one.
    pub next: Option<Uuid>,
}

/// A partial update of an App; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppUpdate {
    pub name: Option<String>,
    /// `Some(None)` clears the webhook URL.
    pub webhook_url: Option<Option<String>>,
    pub token_hash: Option<String>,
    pub webhook_secret: Option<String>,
    pub updated_at: Option<OffsetDateTime>,
}

/// Writes the store ports from their methods, listed once by [`store_ports`]: each trait is
/// `#[async_trait]`, `Send + Sync`; a listed method `fn name(args) -> T;` is
/// `async fn name(&self, args) -> Result<T, StoreError>`; a `provided` one also has a default
/// body, `= |store| body`: `body` with `store` the store itself; `verbatim` items are written
/// as they stand. The marks after `=>` are for layers (`crate::layer`).
macro_rules! declare_ports {
    ($(
        $(#[$port_attr:meta])*
        pub trait $port:ident {
            $(
                $(#[$attr:meta])*
                fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ok:ty
                    $(=> $mark:ident($($marked:ident),*))?;
            )*
        }
        $(provided {
            $(
                $(#[$p_attr:meta])*
                fn $p_name:ident($($p_arg:ident: $p_ty:ty),* $(,)?) -> $p_ok:ty
                    $(=> $p_mark:ident($($p_marked:ident),*))? = |$store:ident| $default:expr;
            )*
        })?
        $(verbatim { $($verbatim:tt)* })?
    )*) => {
        $(
            $(#[$port_attr])*
            #[async_trait]
            pub trait $port: Send + Sync {
                $(
                    $(#[$attr])*
                    async fn $name(&self, $($arg: $ty),*) -> Result<$ok, StoreError>;
                )*
                $($(
                    $(#[$p_attr])*
                    async fn $p_name(&self, $($p_arg: $p_ty),*) -> Result<$p_ok, StoreError> {
                        let $store = self;
                        $default
                    }
                )*)?
                $($($verbatim)*)?
            }
        )*
    };
}

/// The store ports, every method listed once: `store_ports!(then)` hands them to the macro
/// `then` (`declare_ports` here, `Layered`'s forwarding in `crate::layer`). A method marked
/// `=> commits(events)` is a write that commits its argument `events` when it succeeds;
/// `=> creates(events)` commits them only when it answers `Created::Created` (an existing
/// key writes nothing); `=> redelivers()` commits again the event of the delivery it
/// answers.
macro_rules! store_ports {
    ($then:ident) => {
        $then! {
            /// Apps: per tenant, unique names, looked up by id or by the hash of their token.
            pub trait AppStore {
                /// Inserts a new App. `Conflict("app_name")` when the tenant already has an
                /// App of that name, `Conflict("token_hash")` when the token hash is taken.
                /// Atomic: of two racing inserts with one name, exactly one succeeds.
                fn insert_app(app: &App) -> ();

                /// The App with this id, whatever its tenant.
                fn get_app(app_id: Uuid) -> Option<App>;

                /// The App whose token hashes to `token_hash`.
                fn app_by_token_hash(token_hash: &str) -> Option<App>;

                /// `app_by_token_hash`, and the device `device_id` read with it (in one
                /// request where the store can): the caller of a route on a device's path
                /// and that device. The device is anyone's: the caller checks it is the
                /// App's.
                fn app_by_token_hash_with_device(token_hash: &str, device_id: Uuid)
                    -> (Option<App>, Option<Device>);

                /// The tenant's Apps in id order.
                fn list_apps(tenant_id: &str, page: PageRequest) -> Page<App>;

                /// Applies `update` atomically and returns the new record. `NotFound` if the
                /// App is gone, `Conflict("app_name")` if the new name is taken in the tenant.
                fn update_app(app_id: Uuid, update: &AppUpdate) -> App;

                /// Deletes the App; `NotFound` if it does not exist.
                fn delete_app(app_id: Uuid) -> ();

                /// Closes the App to new devices: from the moment this is answered,
                /// `insert_device` of a device of the App fails with `NotFound`, before and
                /// after the App's deletion. The App itself is unchanged (its token works
                /// until `delete_app`). Idempotent; the first step of deleting an App, so
                /// that no device is created under it while its devices are destroyed.
                fn close_app(app_id: Uuid) -> ();

                /// Cheap liveness check for /health.
                fn ping() -> ();
            }

            /// Devices: per App, names unique among live (not destroyed) devices.
            pub trait DeviceStore {
                /// Inserts a device. `Conflict("device_name")` when a live device of the App
                /// has the name; `NotFound` when the App is closed (`AppStore::close_app`).
                fn insert_device(device: &Device) -> ();

                fn get_device(device_id: Uuid) -> Option<Device>;

                /// The App's devices in id order, optionally only those with `status`.
                fn list_devices(app_id: Uuid, status: Option<DeviceStatus>, page: PageRequest)
                    -> Page<Device>;

                /// Every device of the App (destroyed ones included) in id order, with every
                /// insert and update answered before the call: unlike `list_devices`
                /// (eventually consistent on DynamoDB), this listing reads its own writes.
                /// Deleting an App relies on it.
                fn devices_of_app(app_id: Uuid) -> Vec<Device>;

                /// Devices of every App whose status is one of `statuses` (the worker's
                /// restore).
                fn devices_with_status(statuses: &[DeviceStatus], page: PageRequest)
                    -> Page<Device>;

                /// Applies `update` atomically if the current status is one of `expect` (any
                /// when empty). `NotFound`; `Conflict("status")` when the status moved on
                /// meanwhile; `Conflict("device_name")` never (names do not change).
                fn update_device(device_id: Uuid, update: &DeviceUpdate, expect: &[DeviceStatus],
                    events: &[Event]) -> Device => commits(events);

                /// Stores a peer's presence as seen by a device (replacing the previous one).
                fn put_presence(device_id: Uuid, presence: &Presence, events: &[Event]) -> ()
                    => commits(events);

                /// The last presence of `jid` seen by the device.
                fn get_presence(device_id: Uuid, jid: &str) -> Option<Presence>;
            }

            /// Messages of devices, both directions; inline media of pending sends;
            /// idempotency keys.
            pub trait MessageStore {
                /// Writes a new message (with its inline media) and, when given, reserves its
                /// Idempotency-Key, atomically: of concurrent creates with one key exactly one
                /// writes, the others get `Existing`. An expired key is replaced.
                /// `Conflict("message_id")` if the device already has a message with this id.
                fn create_message(message: &Message, media: Option<&[u8]>,
                    idempotency: Option<&IdempotencyRecord>, events: &[Event]) -> Created
                    => creates(events);

                fn get_message(device_id: Uuid, message_id: &str) -> Option<Message>;

                /// The id to store an inbound message under, for the message WhatsApp
                /// identifies by `message_id` sent by `from` in `chat`; `None` when that
                /// message is stored already (a redelivery: store nothing). WhatsApp's ids
                /// are unique per chat and sender only: when the device has another message
                /// under `message_id` (of another chat or sender, or an outbound one), the
                /// answer is an id of the message's own, derived from its chat and sender
                /// (`<message_id>-<12 hex digits>`, the same at every redelivery), so both
                /// are kept. Sees every write answered before the call.
                fn inbound_message_id(device_id: Uuid, chat: &str, from: &str, message_id: &str)
                    -> Option<String>;

                /// The device's messages, newest first, `limit` per page.
                fn list_messages(device_id: Uuid, limit: u32, before: Option<&MessageCursor>)
                    -> (Vec<Message>, Option<MessageCursor>);

                /// Applies `update` if the status is one of `expect` (any when empty):
                /// `NotFound`, `Conflict("status")`.
                fn update_message(device_id: Uuid, message_id: &str, update: &MessageUpdate,
                    expect: &[MessageStatus], events: &[Event]) -> Message => commits(events);

                /// The inline media of an outbound message.
                fn outbound_media(device_id: Uuid, message_id: &str) -> Option<Vec<u8>>;

                fn delete_outbound_media(device_id: Uuid, message_id: &str) -> ();

                /// Outbound messages still `queued` or `sending`: of one device when given,
                /// else of all.
                fn pending_messages(device_id: Option<Uuid>, limit: u32) -> Vec<Message>;

                /// One page of every device's outbound messages still `queued` or `sending`:
                /// at most `limit` after `after` (from the start when `None`), and the cursor
                /// of the next page when there may be one. Paging on from each cursor lists
                /// every message that stays pending meanwhile once; one whose status changes
                /// during the listing may be missing or listed twice.
                fn pending_page(after: Option<&PendingCursor>, limit: u32)
                    -> (Vec<Message>, Option<PendingCursor>);

                /// The record of an unexpired key.
                fn get_idempotency(app_id: Uuid, key: &str) -> Option<IdempotencyRecord>;

                /// Stores the first final answer of a key (later calls do not replace it).
                fn set_idempotency_response(app_id: Uuid, key: &str, status: u16, body: &str)
                    -> ();

                /// Forgets the answer of a key (a retryable failure: the next request with
                /// the key sends the same message again).
                fn clear_idempotency_response(app_id: Uuid, key: &str) -> ();

                /// Deletes expired keys; returns how many.
                fn purge_expired_idempotency(now: OffsetDateTime) -> u64;
            }
            provided {
                /// `create_message` (no events), then, when the message was created,
                /// `command` on the commands queue `queue`. An adapter that keeps the
                /// commands queue in its own database does both in one commit (one wait for
                /// the disk instead of two) and uses its own queue; the default does one
                /// after the other. Either way the message is stored before its command can
                /// be received. A failure to queue the command is an error although the
                /// message stays stored and queued: the worker queues the commands of
                /// queued messages again when it starts.
                fn create_message_and_enqueue(message: &Message, media: Option<&[u8]>,
                    idempotency: Option<&IdempotencyRecord>, queue: &dyn Queue,
                    command: Command) -> Created = |store| {
                        create_then_enqueue(store, message, media, idempotency, queue, command)
                            .await
                    };

                /// `update_message` of a message its send request handed on as `created`
                /// (`Command::Send::queued`), started from that copy instead of a read:
                /// applied only while the stored message is still exactly `created`,
                /// `Conflict("changed")` (nothing written) once anything changed it or it is
                /// gone, so that the caller reads it and decides again. An adapter
                /// whose every record carries a revision conditions the write on the
                /// revision of a create and reads nothing; the default reads and compares.
                fn update_created_message(created: &Message, update: &MessageUpdate,
                    events: &[Event]) -> Message => commits(events) = |store| {
                        update_created_by_reading(store, created, update, events).await
                    };

                /// `update_message` recording the outcome of the send command `done`
                /// (received from the commands queue), and, by an adapter that keeps that
                /// queue in its own database, the command settled in the same commit:
                /// deleted, with its group's next visible command taken, hidden for
                /// `visibility` (`Queue::delete_and_take_next`). The deletion is then exactly
                /// as durable as the update. `Settled::No` when the command was left to the
                /// caller (the default, and when its receipt is stale); on `Err` nothing was
                /// written.
                // `update_message`'s arguments, with the command and its follow-on's
                // visibility.
                #[allow(clippy::too_many_arguments)]
                fn update_message_settling(device_id: Uuid, message_id: &str,
                    update: &MessageUpdate, expect: &[MessageStatus], events: &[Event],
                    done: &Received, visibility: Duration) -> (Message, Settled)
                    => commits(events) = |store| {
                        let _ = (done, visibility);
                        let m = store
                            .update_message(device_id, message_id, update, expect, events)
                            .await?;
                        Ok((m, Settled::No))
                    };
            }

            /// The event outbox: events written with the changes that caused them, and their
            /// delivery.
            pub trait EventStore {
                /// Stores events that come with no other change.
                fn append_events(events: &[Event]) -> () => commits(events);

                /// The oldest pending delivery of every device whose turn it is
                /// (`next_attempt_at` has come), oldest first: one per device, so a device's
                /// events go out in order.
                fn due_deliveries(now: OffsetDateTime, limit: u32) -> Vec<Delivery>;

                /// The oldest pending delivery of one device, if it is due (else the one it
                /// waits for), and whether another pending one waits behind it (in one
                /// read).
                fn next_delivery_of_device(device_id: Uuid, now: OffsetDateTime)
                    -> DeviceHead;

                /// Makes a pending delivery that no one attempted yet due now: its
                /// committer, which held it to deliver it itself, leaves it to the events
                /// queue's consumer. Nothing changes for a delivery attempted already or no
                /// longer pending; `NotFound` when there is none.
                fn release_delivery(request_id: &str) -> ();

                /// Records an attempt (only on a pending delivery; `Conflict("status")`
                /// otherwise).
                fn record_attempt(request_id: &str, attempt: &Attempt) -> Delivery;

                /// The App's deliveries, newest first, optionally with one status.
                fn list_deliveries(app_id: Uuid, status: Option<DeliveryStatus>, limit: u32,
                    before_seq: Option<i64>) -> (Vec<Delivery>, Option<i64>);

                fn get_delivery(request_id: &str) -> Option<Delivery>;

                /// Makes a failed (or skipped) delivery pending again, due now, attempts
                /// reset. `Conflict("status")` when it is pending or delivered.
                fn redeliver(request_id: &str) -> Delivery => redelivers();
            }

            /// Device leases, worker membership, and the fenced views of a session. The
            /// rules are `crate::lease`'s; the adapters apply them to the record they read
            /// and write the result conditioned on it, so that of racing writers exactly one
            /// commits. Times are the caller's (`now`): the store keeps no clock of its own.
            ///
            /// Reads of a lease or a membership record by its key see every write answered
            /// before them; the listings are eventually consistent on DynamoDB (they read
            /// an index).
            pub trait LeaseStore {
                /// Takes the device's lease for `claim.owner` until `claim.now + claim.ttl`
                /// when `lease::grant` allows it (free, released, held by the same owner, or
                /// another owner's still at the version `claim.unchanged` the claimant
                /// watched for a full period), with the epoch of `lease::next_epoch`; returns
                /// the stored lease. `Conflict("lease")` while another owner holds it (the
                /// stored expiry is not compared with `claim.now`). Of concurrent claims of
                /// one lease exactly one new owner wins.
                fn acquire_lease(claim: &Claim) -> Lease;

                /// Extends the lease `owner` holds at `epoch` until `now + ttl` (same epoch,
                /// new version); `Conflict("lease")` when it is not (or no longer) so held:
                /// the lease is lost.
                fn renew_lease(device_id: Uuid, owner: &Owner, epoch: u64, now: OffsetDateTime,
                    ttl: Duration) -> Lease;

                /// Releases the lease `owner` holds at `epoch`: no owner, the same epoch (the
                /// next owner gets one more), free for anyone at once. `Conflict("lease")`
                /// when `owner` does not hold it at `epoch` (a second release included).
                fn release_lease(device_id: Uuid, owner: &Owner, epoch: u64) -> Lease;

                /// The device's lease, if it ever had one.
                fn get_lease(device_id: Uuid) -> Option<Lease>;

                /// Leases in device id order, `page.limit` per page: of every device
                /// (released and expired ones included) when `owner` is `None`, else those
                /// whose record names `owner` (expired ones included).
                fn list_leases(owner: Option<&Owner>, page: PageRequest) -> Page<Lease>;

                /// Registers a worker, replacing any record of its worker id (a new run of
                /// the worker takes the id over).
                fn register_worker(member: &Member) -> ();

                /// Replaces the worker's record (expiry, sessions, capacity, inbox) if it
                /// belongs to the same run (`lease::heartbeat`): `NotFound` when it is gone,
                /// `Conflict("worker")` when another process registered the same worker id
                /// since.
                fn heartbeat_worker(member: &Member) -> ();

                /// Deletes the worker's record if it belongs to `owner`'s run
                /// (`lease::deregister`): nothing when there is none, `Conflict("worker")`
                /// (and the record stays) when it is another run's.
                fn deregister_worker(owner: &Owner) -> ();

                /// Every worker live at `now` (`Member::is_live`), in worker id order.
                fn live_workers(now: OffsetDateTime) -> Vec<Member>;
            }
            verbatim {
                /// The same store, with every write conditioned on `fence`: it commits only
                /// while the device's lease is held by `fence.owner` at `fence.epoch`, in the
                /// same transaction as the write, and otherwise fails with `Fenced` having
                /// written nothing. All writes are fenced (devices, presences, messages,
                /// media, idempotency keys, events, deliveries), whatever device they are
                /// for; the lease and membership methods and all reads are not.
                fn fenced(&self, fence: Fence) -> Arc<dyn Store>;
            }

            /// The replies of devices' workers to session requests (`crate::session`), each
            /// kept until its expiry.
            pub trait ReplyStore {
                /// Stores the reply to the ask `ask_id` until `expires_at`, replacing an
                /// earlier reply to it (an ask redelivered and answered again). `TooLarge`
                /// when the backend cannot hold it in one item.
                fn put_reply(ask_id: Uuid, reply: &Reply, expires_at: OffsetDateTime) -> ();

                /// The reply to `ask_id`, unless none was stored or it has expired. Sees every
                /// `put_reply` answered before the call, from any process.
                fn get_reply(ask_id: Uuid) -> Option<Reply>;
            }
        }
    };
}
pub(crate) use store_ports;

store_ports!(declare_ports);

/// A stored answer to an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub app_id: Uuid,
    pub key: String,
    /// SHA-256 of the canonical request (device and body).
    pub request_hash: String,
    pub device_id: Uuid,
    pub message_id: String,
    /// The first final answer `(status, body)`, once there is one.
    pub response: Option<(u16, String)>,
    pub expires_at: OffsetDateTime,
}

/// The outcome of `create_message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    Created,
    /// The Idempotency-Key was taken (and not expired): nothing was written.
    Existing(IdempotencyRecord),
}

/// `create_message_and_enqueue` in two steps, for adapters that cannot do it in one commit.
pub async fn create_then_enqueue<S: MessageStore + ?Sized>(
    store: &S,
    message: &Message,
    media: Option<&[u8]>,
    idempotency: Option<&IdempotencyRecord>,
    queue: &dyn Queue,
    command: Command,
) -> Result<Created, StoreError> {
    let created = store
        .create_message(message, media, idempotency, &[])
        .await?;
    if created == Created::Created {
        enqueue(queue, command)
            .await
            .map_err(|e| StoreError::Backend(format!("queueing the command failed: {e}")))?;
    }
    Ok(created)
}

/// `update_created_message` by reading the message first: updated (from `queued`) only
/// when it reads as `created`.
pub async fn update_created_by_reading<S: MessageStore + ?Sized>(
    store: &S,
    created: &Message,
    update: &MessageUpdate,
    events: &[Event],
) -> Result<Message, StoreError> {
    let (device_id, id) = (created.device_id, created.message_id.as_str());
    match store.get_message(device_id, id).await? {
        Some(m) if m == *created => {
            store
                .update_message(device_id, id, update, &[MessageStatus::Queued], events)
                .await
        }
        _ => Err(StoreError::Conflict(CHANGED)),
    }
}

/// The rule of `update_created_message`'s refusal: the message changed since its create.
pub const CHANGED: &str = "changed";

/// Whether `update_message_settling` settled the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Not settled: the caller deletes it.
    No,
    /// Deleted; `next` is its group's next command, received.
    Deleted { next: Option<Received> },
}

/// Position in a message listing (newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageCursor {
    pub created_ms: i64,
    pub message_id: String,
}

impl MessageCursor {
    /// The position of `m`: a listing from it goes on with the messages older than `m`.
    pub fn of(m: &Message) -> MessageCursor {
        MessageCursor {
            created_ms: (m.created_at.unix_timestamp_nanos() / 1_000_000) as i64,
            message_id: m.message_id.clone(),
        }
    }
}

/// A position in the listing of every pending message ([`MessageStore::pending_page`]);
/// what it holds is the adapter's business.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCursor(pub String);

/// Where a webhook delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt.
    Pending,
    Delivered,
    /// Every attempt of the retry schedule failed; replayable.
    Failed,
    /// The App had no webhook URL when its turn came.
    Skipped,
}

impl DeliveryStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        [
            DeliveryStatus::Pending,
            DeliveryStatus::Delivered,
            DeliveryStatus::Failed,
            DeliveryStatus::Skipped,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// One event and the state of its delivery to the App's webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Order of the events (per store).
    pub seq: i64,
    pub event: Event,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: OffsetDateTime,
    pub last_error: Option<String>,
    pub last_status_code: Option<u16>,
    pub updated_at: OffsetDateTime,
}

/// The head of a device's delivery queue: its oldest pending delivery when it is due, the
/// one it waits for when it is not, and whether another pending delivery follows it. A
/// consumer that finds none following stops after the head: an event committed later is
/// nudged after its commit.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeviceHead {
    pub due: Option<Delivery>,
    /// The oldest pending delivery when it is not due yet.
    pub waiting: Option<Waiting>,
    pub more: bool,
}

impl DeviceHead {
    /// The head of a device's queue whose oldest pending delivery is `oldest` (read at
    /// `now`), with `more` pending behind it.
    pub fn of(oldest: Option<Delivery>, now: OffsetDateTime, more: bool) -> DeviceHead {
        match oldest {
            Some(d) if d.next_attempt_at <= now => DeviceHead {
                due: Some(d),
                waiting: None,
                more,
            },
            Some(d) => DeviceHead {
                due: None,
                waiting: Some(Waiting {
                    request_id: d.event.request_id,
                    attempts: d.attempts,
                    until: d.next_attempt_at,
                }),
                more,
            },
            None => DeviceHead {
                more,
                ..DeviceHead::default()
            },
        }
    }
}

/// A pending delivery at the head of its device's queue that is not due yet: a retry
/// (`attempts` 1 or more), or one its committer is delivering itself (`attempts` 0, held
/// until `until` so that no one else posts it; [`EventStore::release_delivery`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    pub request_id: String,
    pub attempts: u32,
    pub until: OffsetDateTime,
}

impl Waiting {
    /// Whether its committer holds it (no attempt yet), rather than a retry's wait.
    pub fn held_by_committer(&self) -> bool {
        self.attempts == 0
    }
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    Delivered {
        status_code: u16,
    },
    /// Failed; try again at `next`.
    Retry {
        next: OffsetDateTime,
        error: String,
        status_code: Option<u16>,
    },
    /// Failed for the last time.
    Failed {
        error: String,
        status_code: Option<u16>,
    },
    Skipped,
}

/// Everything the use cases store.
pub trait Store:
    AppStore + DeviceStore + MessageStore + EventStore + LeaseStore + ReplyStore
{
}

impl<T: AppStore + DeviceStore + MessageStore + EventStore + LeaseStore + ReplyStore> Store for T {}

#[cfg(test)]
mod tests {
    use super::*;
    use wa_errors::{ApiError, ErrorCode};

    #[test]
    fn a_device_head_is_due_or_waits() {
        let now = crate::time::now();
        let event = Event::new(
            crate::webhooks::EventType::Message,
            Uuid::nil(),
            Uuid::nil(),
            serde_json::json!({}),
        );
        let at = |next: OffsetDateTime, attempts: u32| Delivery {
            seq: 1,
            event: event.clone(),
            status: DeliveryStatus::Pending,
            attempts,
            next_attempt_at: next,
            last_error: None,
            last_status_code: None,
            updated_at: now,
        };
        let later = now + Duration::from_secs(5);
        let due = DeviceHead::of(Some(at(now, 2)), now, true);
        assert_eq!(
            (due.due, due.waiting, due.more),
            (Some(at(now, 2)), None, true)
        );
        let held = DeviceHead::of(Some(at(later, 0)), now, false);
        assert_eq!(held.due, None);
        let w = held.waiting.unwrap();
        assert_eq!(
            (w.until, w.attempts, w.held_by_committer()),
            (later, 0, true)
        );
        let retry = DeviceHead::of(Some(at(later, 1)), now, false);
        assert!(!retry.waiting.unwrap().held_by_committer());
        assert_eq!(DeviceHead::of(None, now, false), DeviceHead::default());
    }

    #[test]
    fn store_errors_map_to_the_api() {
        let code = |e: StoreError| ApiError::from(e).code();
        assert_eq!(code(StoreError::NotFound), ErrorCode::NotFound);
        assert_eq!(code(StoreError::Conflict("app_name")), ErrorCode::Conflict);
        assert_eq!(code(StoreError::TooLarge), ErrorCode::RequestTooLarge);
        assert_eq!(code(StoreError::Throttled), ErrorCode::InternalError);
        assert_eq!(code(StoreError::Fenced), ErrorCode::InternalError);
        assert_eq!(
            code(StoreError::Backend("x".into())),
            ErrorCode::InternalError
        );
    }
}
