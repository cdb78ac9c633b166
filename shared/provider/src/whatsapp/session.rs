//! Session lifecycle: starting, stopping and wiping one device's whatsapp-rust `Bot`.
//!
//! Owns, per device: the `Bot` (its `BotHandle` and `Arc<Client>`), its SQLite store
//! file `<sessions_dir>/<device_id>.db` (opened by [`super::store`]: one process at a
//! time, rollback journal), the state its pump and its transport share ([`SessionShared`]) and the door to the
//! provider's event channel ([`Emitter`]). The provider's `link`, `resume`,
//! `has_credentials`, `disconnect` and `destroy` are carried out here.
//!
//! Invariants:
//! - Never two Bots on one store file: every lifecycle operation of a device (link,
//!   resume, disconnect, destroy, and the pump's own terminal handling) runs under that
//!   device's lifecycle lock, and stops the old Bot before starting a new one.
//! - Nothing is emitted for a session after `disconnect`/`destroy` returns: each
//!   session's [`Emitter`] is closed (under its own lock) before the Bot is stopped.
//! - Nothing here waits on the network without a bound.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use uuid::Uuid;
use wa_core::provider::{EventSender, InboundSender, ProviderFailure, SessionEvent};
use wa_core::time::OffsetDateTime;
use wa_errors::ErrorCode;
use whatsapp_rust::Client;
use whatsapp_rust::async_channel;
use whatsapp_rust::bot::{Bot, BotHandle};
use whatsapp_rust::pair_code::PairCodeOptions;
use whatsapp_rust::store::traits::DeviceStore;
use whatsapp_rust::transport::{
    TokioWebSocketTransportFactory, Transport, TransportEvent, TransportFactory,
};
use whatsapp_rust::wacore::pair_code::PairCodeUtils;
use whatsapp_rust::wacore::store::DevicePropsOverride;

use super::WhatsAppOptions;
use super::acks::AckTable;
use super::classify::classify_pair_error;
use super::group_events::OwnChanges;
use super::inbound::InboundHook;
use super::mapping;
use super::pump::{Forwarder, Pump};
use super::store::{self, OpenError};

/// How long a graceful Bot shutdown may take before the Bot is aborted. A Bot stuck in
/// a connect attempt only notices the shutdown when that attempt ends (up to the
/// library's 20 s transport timeout), so this bound is what keeps `disconnect` prompt.
pub(super) const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `destroy` waits for the unlink IQ before tearing down anyway.
const LOGOUT_TIMEOUT: Duration = Duration::from_secs(10);

/// Shared state of the provider (the pumps hold it weakly).
pub(super) struct Inner {
    sessions_dir: PathBuf,
    events: EventSender,
    /// Where incoming messages go (through each session's durability hook).
    inbound: InboundSender,
    pub(super) options: WhatsAppOptions,
    /// Running sessions. Held only briefly (never across a Bot start or stop).
    pub(super) sessions: Mutex<HashMap<Uuid, Session>>,
    /// Per-device lifecycle locks: serialize link/resume/disconnect/destroy and the
    /// pump's terminal handling of one device, so two Bots never share a store.
    device_locks: StdMutex<HashMap<Uuid, Arc<Mutex<()>>>>,
    /// Tells a session from its successor, so a late pump cannot stop a newer Bot.
    generations: AtomicU64,
}

/// One running Bot and what belongs to it.
pub(super) struct Session {
    pub(super) generation: u64,
    pub(super) client: Arc<Client>,
    pub(super) handle: BotHandle,
    pub(super) emitter: Emitter,
    pub(super) shared: Arc<SessionShared>,
    pub(super) pump: JoinHandle<()>,
}

/// State shared between a session's pump, its transport and the provider.
#[derive(Default)]
pub(super) struct SessionShared {
    /// Set once the session showed life (a QR, a pair code, pairing, a login): from
    /// then on the connect watchdog has nothing to report.
    pub(super) progressed: AtomicBool,
    /// The last transport (WebSocket) connect error, for "could not reach WhatsApp".
    transport_error: StdMutex<Option<String>>,
    /// The pair code in use: the phone number it was asked for, and when it expires
    /// (`None` once WhatsApp declared it dead). QR exhaustion does not end a linking
    /// session before that expiry.
    pair_code: StdMutex<Option<(String, Option<Instant>)>>,
    /// Sends waiting for their server ack (filled by the pump, closed when the
    /// session ends).
    pub(super) acks: Arc<AckTable>,
    /// The group changes this session made, so each is reported once.
    pub(super) own_group_changes: OwnChanges,
}

impl SessionShared {
    pub(super) fn transport_error(&self) -> Option<String> {
        self.transport_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_transport_error(&self, error: Option<String>) {
        *self
            .transport_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = error;
    }

    fn pair_code(&self) -> std::sync::MutexGuard<'_, Option<(String, Option<Instant>)>> {
        self.pair_code
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// When the pair code in use expires, if there is one.
    pub(super) fn pair_code_expires(&self) -> Option<Instant> {
        self.pair_code().as_ref().and_then(|(_, at)| *at)
    }

    /// The phone number a pair code was asked for on this session, if any.
    pub(super) fn pair_phone(&self) -> Option<String> {
        self.pair_code().as_ref().map(|(phone, _)| phone.clone())
    }

    /// WhatsApp declared the pair code dead: nothing to wait for until a new one.
    pub(super) fn expire_pair_code(&self) {
        if let Some((_, at)) = self.pair_code().as_mut() {
            *at = None;
        }
    }

    fn set_pair_code(&self, phone: &str, expires: Instant) {
        *self.pair_code() = Some((phone.to_string(), Some(expires)));
    }
}

/// Why a session was started: decides what the connect watchdog does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Fresh store, pairing: no QR/connection in time → stop.
    Link,
    /// Stored credentials: no connection in time → report and keep retrying.
    Resume,
}

/// The session's door to the provider's event channel. Closing it is final and
/// synchronous, which is what makes "no event after disconnect returns" hold even
/// while a pump is mid-emit.
#[derive(Clone)]
pub(crate) struct Emitter {
    device_id: Uuid,
    tx: EventSender,
    open: Arc<StdMutex<bool>>,
}

impl Emitter {
    fn new(device_id: Uuid, tx: EventSender) -> Self {
        Emitter {
            device_id,
            tx,
            open: Arc::new(StdMutex::new(true)),
        }
    }

    /// Sends `event` unless the emitter is closed (the lock is held across the send,
    /// which never blocks: the channel is unbounded).
    pub(crate) fn emit(&self, event: SessionEvent) {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if !*open {
            debug!(device_id = %self.device_id, "session closed; event dropped");
            return;
        }
        if self.tx.send((self.device_id, event)).is_err() {
            debug!(device_id = %self.device_id, "event receiver gone; event dropped");
        }
    }

    pub(super) fn close(&self) {
        *self.open.lock().unwrap_or_else(PoisonError::into_inner) = false;
    }

    /// Whether the session still reports (not disconnected, destroyed or replaced).
    pub(crate) fn is_open(&self) -> bool {
        *self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The WebSocket transport on the configured endpoint, remembering its last connect
/// error: the library's run loop only logs failed connects, and "could not reach
/// WhatsApp" needs a reason.
struct RecordingTransportFactory {
    inner: TokioWebSocketTransportFactory,
    shared: Arc<SessionShared>,
}

#[async_trait]
impl TransportFactory for RecordingTransportFactory {
    async fn create_transport(
        &self,
    ) -> Result<
        (Arc<dyn Transport>, async_channel::Receiver<TransportEvent>),
        whatsapp_rust::anyhow::Error,
    > {
        match self.inner.create_transport().await {
            Ok(transport) => {
                self.shared.set_transport_error(None);
                Ok(transport)
            }
            Err(e) => {
                self.shared.set_transport_error(Some(format!("{e:#}")));
                Err(e)
            }
        }
    }
}

impl Inner {
    pub(super) fn new(
        sessions_dir: PathBuf,
        events: EventSender,
        inbound: InboundSender,
        options: WhatsAppOptions,
    ) -> Self {
        Inner {
            sessions_dir,
            events,
            inbound,
            options,
            sessions: Mutex::new(HashMap::new()),
            device_locks: StdMutex::new(HashMap::new()),
            generations: AtomicU64::new(1),
        }
    }

    fn store_path(&self, device_id: Uuid) -> PathBuf {
        self.sessions_dir.join(format!("{device_id}.db"))
    }

    pub(super) fn device_lock(&self, device_id: Uuid) -> Arc<Mutex<()>> {
        self.device_locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(device_id)
            .or_default()
            .clone()
    }

    /// Removes the device's session from the map (caller holds the device lock).
    async fn take_session(&self, device_id: Uuid) -> Option<Session> {
        self.sessions.lock().await.remove(&device_id)
    }

    /// The client of a live (connected and logged-in) session.
    pub(super) async fn live_client(
        &self,
        device_id: Uuid,
    ) -> Result<Arc<Client>, ProviderFailure> {
        self.live_session(device_id).await.map(|(client, _)| client)
    }

    /// The client and shared state of a live (connected and logged-in) session;
    /// `device_not_connected` otherwise.
    pub(super) async fn live_session(
        &self,
        device_id: Uuid,
    ) -> Result<(Arc<Client>, Arc<SessionShared>), ProviderFailure> {
        let sessions = self.sessions.lock().await;
        match sessions.get(&device_id) {
            Some(s) if s.client.is_connected() && s.client.is_logged_in() => {
                Ok((s.client.clone(), s.shared.clone()))
            }
            _ => Err(ProviderFailure::new(
                ErrorCode::DeviceNotConnected,
                "the device has no live WhatsApp connection",
            )),
        }
    }

    /// The emitter of the device's running session, if one runs.
    pub(super) async fn emitter(&self, device_id: Uuid) -> Option<Emitter> {
        let sessions = self.sessions.lock().await;
        sessions.get(&device_id).map(|s| s.emitter.clone())
    }

    /// Deletes `<id>.db` and its journal and WAL files. Missing files are fine; other
    /// failures are logged (the next link starts from whatever is left, which a fresh
    /// pairing overwrites anyway).
    pub(super) fn wipe_store(&self, device_id: Uuid) {
        for path in store::files(&self.store_path(device_id)) {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    warn!(device_id = %device_id, path = %path.display(), error = %e, "could not delete a session store file");
                }
            }
        }
    }

    /// Builds and spawns a Bot on the device's store, with its pump. The caller holds
    /// the device lock and has stopped any previous session.
    async fn start_session(
        self: &Arc<Self>,
        device_id: Uuid,
        mode: Mode,
    ) -> Result<(Arc<Client>, Arc<SessionShared>), ProviderFailure> {
        wa_core::private_fs::create_dir_all(&self.sessions_dir).map_err(|e| {
            ProviderFailure::new(
                ErrorCode::InternalError,
                format!("could not create the sessions directory: {e}"),
            )
        })?;
        let path = self.store_path(device_id);
        // The session's keys: created 0600 before SQLite opens it (its journal too).
        wa_core::private_fs::sqlite_database(&path).map_err(|e| {
            ProviderFailure::new(
                ErrorCode::InternalError,
                format!("could not create the session store: {e}"),
            )
        })?;
        let store = store::open(&path, store::LOCK_WAIT)
            .await
            .map_err(OpenError::into_failure)?;

        let shared = Arc::new(SessionShared::default());
        // Created before the Bot: its durability hook checks it, so a closed
        // session stops handing messages to the worker.
        let emitter = Emitter::new(device_id, self.events.clone());
        let (lib_tx, lib_rx) = mpsc::unbounded_channel();
        let mut builder = Bot::builder()
            .with_backend(store)
            .with_transport_factory(RecordingTransportFactory {
                inner: TokioWebSocketTransportFactory::new().with_url(&self.options.ws_url),
                shared: shared.clone(),
            })
            .skip_history_sync()
            .with_device_props(
                DevicePropsOverride::new().with_os(self.options.device_os_name.clone()),
            )
            .with_event_handler(Forwarder::new(lib_tx))
            .with_inbound_durability_hook(InboundHook {
                device_id,
                inbound: self.inbound.clone(),
                emitter: emitter.clone(),
            });
        if let Some(version) = self.options.version {
            // A pinned version: the library does not fetch WhatsApp Web's.
            builder = builder.with_version(version);
        }
        if let Some(name) = &self.options.push_name {
            builder = builder.with_push_name(name.clone());
        }
        let bot = builder.build().await.map_err(|e| {
            ProviderFailure::new(
                ErrorCode::InternalError,
                format!("could not start the WhatsApp client: {e}"),
            )
        })?;
        let client = bot.client();

        if mode == Mode::Resume && client.pn().is_none() {
            // Never paired (or wiped): running it would start a QR flow nobody asked for.
            drop(bot);
            if tokio::time::timeout(STOP_TIMEOUT, client.disconnect())
                .await
                .is_err()
            {
                client.signal_shutdown_sync();
            }
            return Err(no_credentials());
        }

        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        let handle = bot.spawn();
        let pump = Pump {
            inner: Arc::downgrade(self),
            device_id,
            generation,
            mode,
            client: Arc::downgrade(&client),
            emitter: emitter.clone(),
            shared: shared.clone(),
            inbound: self.inbound.clone(),
            connect_timeout: self.options.connect_timeout,
            reject_calls: self.options.reject_calls,
        };
        let pump = tokio::spawn(pump.run(lib_rx));
        self.sessions.lock().await.insert(
            device_id,
            Session {
                generation,
                client: client.clone(),
                handle,
                emitter,
                shared: shared.clone(),
                pump,
            },
        );
        info!(device_id = %device_id, ?mode, "WhatsApp session started");
        Ok((client, shared))
    }

    /// `Provider::link`: stops any session of the device, wipes its store and starts a
    /// fresh linking session; with `pair_phone`, requests a pair code on it (on failure
    /// the session is stopped silently and its store wiped).
    pub(super) async fn link(
        self: &Arc<Self>,
        device_id: Uuid,
        pair_phone: Option<&str>,
    ) -> Result<Option<(String, OffsetDateTime)>, ProviderFailure> {
        let lock = self.device_lock(device_id);
        let _guard = lock.lock().await;
        if let Some(old) = self.take_session(device_id).await {
            stop_silently(device_id, old).await;
        }
        self.wipe_store(device_id);
        let (client, shared) = self.start_session(device_id, Mode::Link).await?;
        let Some(phone) = pair_phone else {
            return Ok(None);
        };
        let timeout = self.options.connect_timeout;
        match request_pair_code(device_id, &client, &shared, phone, timeout).await {
            Ok(code) => Ok(Some(code)),
            Err(failure) => {
                drop(client);
                if let Some(session) = self.take_session(device_id).await {
                    stop_silently(device_id, session).await;
                }
                self.wipe_store(device_id);
                Err(failure)
            }
        }
    }

    /// `Provider::resume`: starts a session on the stored credentials.
    pub(super) async fn resume(self: &Arc<Self>, device_id: Uuid) -> Result<(), ProviderFailure> {
        let lock = self.device_lock(device_id);
        let _guard = lock.lock().await;
        if let Some(old) = self.take_session(device_id).await {
            stop_silently(device_id, old).await;
        }
        if !self.store_path(device_id).exists() {
            return Err(no_credentials());
        }
        self.start_session(device_id, Mode::Resume).await?;
        Ok(())
    }

    /// `Provider::has_credentials`: from the running session's client, else from the
    /// store's device row (unreadable stores count as no credentials).
    pub(super) async fn has_credentials(&self, device_id: Uuid) -> bool {
        let lock = self.device_lock(device_id);
        let _guard = lock.lock().await;
        if let Some(session) = self.sessions.lock().await.get(&device_id) {
            return session.client.pn().is_some();
        }
        let path = self.store_path(device_id);
        if !path.exists() {
            return false;
        }
        let store = match store::open(&path, store::LOCK_WAIT).await {
            Ok(store) => store,
            // Held by the process that runs the session: its keys are there.
            Err(OpenError::Locked) => {
                info!(device_id = %device_id, "the session store is in use by another process");
                return true;
            }
            Err(OpenError::Failed(e)) => {
                warn!(device_id = %device_id, error = %e, "could not open the session store");
                return false;
            }
        };
        match store.load().await {
            Ok(Some(device)) => device.pn.is_some(),
            Ok(None) => false,
            Err(e) => {
                warn!(device_id = %device_id, error = %e, "could not read the session store");
                false
            }
        }
    }

    /// `Provider::disconnect`: stops the session, keeps the store.
    pub(super) async fn disconnect(&self, device_id: Uuid) {
        let lock = self.device_lock(device_id);
        let _guard = lock.lock().await;
        if let Some(session) = self.take_session(device_id).await {
            stop_silently(device_id, session).await;
            info!(device_id = %device_id, "WhatsApp session disconnected");
        }
    }

    /// `Provider::destroy`: unlinks (bounded, best effort), stops, wipes.
    pub(super) async fn destroy(&self, device_id: Uuid) {
        let lock = self.device_lock(device_id);
        let _guard = lock.lock().await;
        if let Some(session) = self.take_session(device_id).await {
            // Closed before logout, whose own `LoggedOut` event must not reach the worker.
            session.emitter.close();
            session.shared.acks.close();
            session.pump.abort();
            if session.client.is_connected()
                && tokio::time::timeout(LOGOUT_TIMEOUT, session.client.logout())
                    .await
                    .is_err()
            {
                warn!(device_id = %device_id, "unlink request timed out; wiping anyway");
            }
            stop_silently(device_id, session).await;
        }
        self.wipe_store(device_id);
        info!(device_id = %device_id, "WhatsApp session destroyed");
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The provider is gone: nobody can stop these sessions any more. Abort them
        // (the BotHandles abort their run loops when the map drops them).
        for session in self.sessions.get_mut().values() {
            session.emitter.close();
            session.shared.acks.close();
            session.pump.abort();
            session.client.signal_shutdown_sync();
        }
    }
}

fn no_credentials() -> ProviderFailure {
    ProviderFailure::new(
        ErrorCode::LoggedOut,
        "no stored WhatsApp credentials for this device; link it again",
    )
}

/// Requests a pair code for `phone` on a linking session: waits (up to `timeout`) for
/// the socket, then asks WhatsApp (again up to `timeout`). Returns the code and its
/// expiry, which the session remembers (with the phone number, for a refresh).
///
/// Failures: `whatsapp_connection_lost` when the socket does not come up, the
/// classification of [`classify_pair_error`] for a refusal, `upstream_timeout` when
/// WhatsApp does not answer.
pub(super) async fn request_pair_code(
    device_id: Uuid,
    client: &Arc<Client>,
    shared: &SessionShared,
    phone: &str,
    timeout: Duration,
) -> Result<(String, OffsetDateTime), ProviderFailure> {
    if client.wait_for_socket(timeout).await.is_err() {
        return Err(unreachable_failure(client, shared, timeout));
    }
    // WhatsApp is reachable: the connect watchdog has nothing to report any more.
    shared.progressed.store(true, Ordering::Relaxed);
    let options = PairCodeOptions {
        phone_number: phone.chars().filter(char::is_ascii_digit).collect(),
        ..Default::default()
    };
    let code = match tokio::time::timeout(timeout, client.pair_with_code(options)).await {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            let failure = classify_pair_error(&e);
            warn!(device_id = %device_id, code = %failure.code, error = %e, "pair-code request failed");
            return Err(failure);
        }
        Err(_) => {
            return Err(ProviderFailure::new(
                ErrorCode::UpstreamTimeout,
                format!(
                    "WhatsApp did not answer the pair-code request within {} s",
                    timeout.as_secs()
                ),
            ));
        }
    };
    let validity = PairCodeUtils::code_validity();
    shared.set_pair_code(phone, Instant::now() + validity);
    Ok((code, mapping::expires_in(validity)))
}

/// Stops a Bot: graceful shutdown (disconnect + flush + wait for the run loop), bounded
/// by [`STOP_TIMEOUT`]; past that the Bot is aborted (dropping the timed-out shutdown
/// future drops the handle, which aborts the run task) and the client's background
/// tasks are told to stop.
pub(super) async fn stop_bot(device_id: Uuid, client: &Arc<Client>, handle: BotHandle) {
    if tokio::time::timeout(STOP_TIMEOUT, handle.shutdown())
        .await
        .is_err()
    {
        warn!(device_id = %device_id, "WhatsApp client did not stop in time; aborted");
        client.signal_shutdown_sync();
    }
}

/// Stops a session without emitting anything (disconnect, destroy, link, resume).
async fn stop_silently(device_id: Uuid, session: Session) {
    let Session {
        client,
        handle,
        emitter,
        shared,
        pump,
        ..
    } = session;
    emitter.close();
    // Sends waiting for an ack learn now that none will come.
    shared.acks.close();
    pump.abort();
    stop_bot(device_id, &client, handle).await;
}

/// The failure for a session that did not reach WhatsApp within `timeout`.
pub(super) fn unreachable_failure(
    client: &Client,
    shared: &SessionShared,
    timeout: Duration,
) -> ProviderFailure {
    let reason = match shared.transport_error() {
        Some(error) => error,
        None if client.is_connected() => format!(
            "the connection opened but WhatsApp did not start the session within {} s",
            timeout.as_secs()
        ),
        None => format!("no answer from WhatsApp within {} s", timeout.as_secs()),
    };
    ProviderFailure::new(
        ErrorCode::WhatsappConnectionLost,
        format!("could not reach WhatsApp: {reason}"),
    )
}
