//! The worker: it owns the provider sessions, applies the commands of the commands queue
//! and turns every provider event into a stored status change. It runs inside `wa-server`
//! and as its own `wa-worker` binary.
//!
//! Crash safety: a command is deleted from the queue only after it was applied; one that
//! was in flight when the process died comes back after its visibility timeout. Commands
//! are idempotent: each checks the device's current status first.
//!
//! Where things are: [`consumer`] runs everything (the commands loop, the session-event and
//! inbound loops, the periodic upkeep); [`commands`] applies one command; [`send`] carries a
//! send through the provider, as [`decide`] rules; [`session`] records session events;
//! [`inbound`] stores received messages; [`restore`] brings sessions and queued sends back
//! after a start; [`upkeep`] purges expired idempotency keys and re-drives stale sends;
//! [`ask`] answers session requests (`wa_core::session`); [`forward`] hands a command of
//! another worker's device to that worker's inbox.

mod ask;
pub mod balance;
pub mod capacity;
mod commands;
mod config;
mod consumer;
pub mod decide;
pub mod forward;
pub mod health;
mod inbound;
pub mod leases;
pub mod media;
mod pacing;
mod restore;
mod send;
pub mod session;
mod upkeep;
mod votes;
pub use wa_fn_webhooks as webhooks;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pacing::Pacing;

use wa_core::devices::Device;
use wa_core::media::MediaStore;
use wa_core::notify::Notifier;
use wa_core::provider::{Provider, SandboxControl};
use wa_core::queue::{Queue, Received};
use wa_core::store::Store;

pub use config::{
    Backends, ProviderKind, WorkerConfig, build_provider, media_backend, open_backends,
};
pub use decide::rate_limit_backoff;
pub use upkeep::Upkeep;

/// Called with a device whenever a new QR is stored (the embedded server draws it).
pub type QrHook = Arc<dyn Fn(&Device) + Send + Sync>;

/// How long a received command stays invisible to other consumers; extended every third
/// of it while the command runs.
pub const VISIBILITY: Duration = Duration::from_secs(120);
/// Commands handled at once (one per device at most: the queue is FIFO per device). Sends
/// of different devices in flight together share the store's commits (and their fsyncs),
/// so this is more than the devices a worker usually sends for at once.
const CONCURRENCY: usize = 64;

/// How many pending messages the restore at start reads per page.
const RESTORE_PAGE: u32 = 1000;

/// The worker's parts.
pub struct Worker {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub provider: Arc<dyn Provider>,
    /// The sandbox's control surface, when the provider is the sandbox: session requests
    /// of the sandbox's control routes are answered with it.
    pub sandbox: Option<Arc<dyn SandboxControl>>,
    pub notifier: Arc<Notifier>,
    pub on_qr: Option<QrHook>,
    /// Where inbound media are stored (the data directory unless set otherwise).
    pub media: Arc<dyn MediaStore>,
    /// Allow media URLs on private addresses (`WA_ALLOW_PRIVATE_URLS`).
    pub allow_private_urls: bool,
    /// How long a received command stays invisible ([`VISIBILITY`]).
    pub visibility: Duration,
    /// The periodic upkeep's schedule.
    pub upkeep: Upkeep,
    /// Pending messages read per page by the restore at start.
    pub restore_page: u32,
    /// The first wait before a session event that failed to store is tried again
    /// ([`session::EVENT_RETRY_FIRST`]).
    pub event_retry: Duration,
    /// How many more sessions the open-files limit leaves (set from the provider).
    pub capacity: capacity::Capacity,
    /// The leases this worker holds (its owner id, the lease period, the start gate).
    pub leases: Arc<leases::Leases>,
    pacing: Pacing,
}

/// What to do with a handled command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Applied: delete it from the queue.
    Done,
    /// Applied and deleted already, in the commit of its outcome; with the device's next
    /// command, taken in that commit (`Store::update_message_settling`).
    Settled(Option<Received>),
    /// Not yet: make it visible again after this delay (pacing, backoff).
    RetryIn(Duration),
    /// Its device is held by this other live worker: forward it there
    /// ([`forward`]).
    Elsewhere(wa_core::lease::Owner),
}

/// Deliveries of one command before it moves to the dead letters.
pub const MAX_RECEIVES: u32 = 20;

impl Worker {
    /// A worker storing inbound media under `data_dir` (set [`Worker::media`] to store them
    /// elsewhere).
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
            capacity: capacity::Capacity::for_provider(provider.name()),
            provider,
            sandbox: None,
            notifier,
            on_qr: None,
            media: Arc::new(wa_media::DirMedia::new(data_dir)),
            allow_private_urls: false,
            visibility: VISIBILITY,
            upkeep: Upkeep::default(),
            restore_page: RESTORE_PAGE,
            event_retry: session::EVENT_RETRY_FIRST,
            leases: Arc::new(leases::Leases::new(
                wa_core::lease::Owner::new(format!("worker-{}", uuid::Uuid::new_v4().simple())),
                wa_core::lease::DEFAULT_TTL,
                balance::DEFAULT_RECONNECT_CONCURRENCY,
            )),
            pacing: Pacing::new(0.0, 1),
        }
    }

    /// The worker of the sandbox `sandbox` (also its provider).
    pub fn with_sandbox(mut self, sandbox: Option<Arc<dyn SandboxControl>>) -> Self {
        self.sandbox = sandbox;
        self
    }

    /// The same worker as `owner`, with leases of `ttl` and at most `starts` session
    /// starts at once.
    pub fn with_leases(
        mut self,
        owner: wa_core::lease::Owner,
        ttl: Duration,
        starts: usize,
    ) -> Self {
        let exclusive = self.leases.is_exclusive();
        self.leases = Arc::new(leases::Leases::new(owner, ttl, starts));
        if exclusive {
            self.leases.set_exclusive();
        }
        self
    }

    /// The same worker on a store that is its process's alone
    /// ([`leases::Leases::set_exclusive`]): the leases of its earlier runs are taken at once.
    pub fn with_exclusive_store(self, exclusive: bool) -> Self {
        if exclusive {
            self.leases.set_exclusive();
        }
        self
    }

    /// Per-device send pacing: `rate` sends per second with bursts of `burst` (0 = unpaced).
    pub fn with_pacing(mut self, rate: f64, burst: u32) -> Self {
        self.pacing = Pacing::new(rate, burst);
        self
    }
}

#[cfg(test)]
mod tests;
