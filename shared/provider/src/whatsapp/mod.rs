//! The real WhatsApp provider, on whatsapp-rust 0.7.
//!
//! Owns, per device: one whatsapp-rust `Bot` (its `BotHandle` and `Arc<Client>`), its
//! SQLite store file `<sessions_dir>/<device_id>.db` (plus the `-wal`/`-shm` files of
//! WAL mode), and one *session pump* task that turns library events into
//! [`SessionEvent`]s on the provider's channel. It also owns the error classification
//! ([`classify_send_error`], [`classify_nack`], ...), which the send path uses.
//!
//! Messaging:
//! - Sending (`outbound`): the message goes out under the worker's id and `send`
//!   resolves on the server's ack, correlated by id through the session's ack table
//!   (`acks`), which the pump fills from `Event::ServerAck`.
//! - Receiving (`inbound`): a durability hook hands each incoming message to the
//!   worker's inbound channel and defers WhatsApp's ack until the worker stored it;
//!   the pump turns revokes and receipts into `SessionEvent`s.
//!
//! Invariants:
//! - Never two Bots on one store file: every lifecycle operation of a device (link,
//!   resume, disconnect, destroy, and the pump's own terminal handling) runs under that
//!   device's lifecycle lock, and stops the old Bot before starting a new one.
//! - Nothing is emitted for a session after `disconnect`/`destroy` returns: each
//!   session's [`Emitter`] is closed (under its own lock) before the Bot is stopped.
//! - Nothing here waits on the network without a bound: a session that cannot reach
//!   WhatsApp is reported after `connect_timeout` (the library itself retries forever
//!   and only logs connect failures).

mod acks;
mod classify;
mod inbound;
mod mapping;
mod outbound;

pub use classify::{
    classify_error, classify_nack, classify_pair_error, classify_pair_failure, classify_send_error,
};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use uuid::Uuid;
use wa_core::provider::{
    EventSender, Group, InboundSender, OutboundMessage, Profile, Provider, ProviderFailure,
    SessionEvent,
};
use wa_core::time::OffsetDateTime;
use wa_errors::ErrorCode;
use whatsapp_rust::async_channel;
use whatsapp_rust::bot::{Bot, BotHandle};
use whatsapp_rust::pair_code::PairCodeOptions;
use whatsapp_rust::store::SqliteStore;
use whatsapp_rust::store::traits::DeviceStore;
use whatsapp_rust::transport::{
    TokioWebSocketTransportFactory, Transport, TransportEvent, TransportFactory,
};
use whatsapp_rust::types::events::{Event, EventHandler, EventInterest, EventKind};
use whatsapp_rust::wacore::pair_code::PairCodeUtils;
use whatsapp_rust::wacore::store::DevicePropsOverride;
use whatsapp_rust::{Client, Jid};

use acks::AckTable;
use inbound::InboundHook;

/// How long a graceful Bot shutdown may take before the Bot is aborted. A Bot stuck in
/// a connect attempt only notices the shutdown when that attempt ends (up to the
/// library's 20 s transport timeout), so this bound is what keeps `disconnect` prompt.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `destroy` waits for the unlink IQ before tearing down anyway.
const LOGOUT_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of the WhatsApp provider.
#[derive(Debug, Clone)]
pub struct WhatsAppOptions {
    /// How long a session may try to reach WhatsApp before a failure is reported:
    /// a linking session with neither a QR nor a connection by then is stopped
    /// (`Stopped { whatsapp_connection_lost }`); a resumed session reports
    /// `Reconnecting { whatsapp_connection_lost }` and keeps retrying. Also bounds how
    /// long `link` waits for a socket when a pair code is requested. Default 30 s.
    pub connect_timeout: Duration,
    /// Push name set on the device before connecting (`None` keeps the stored one).
    pub push_name: Option<String>,
    /// The OS name shown in the phone's "Linked devices" list (applied at pairing).
    /// Default `wa-server`.
    pub device_os_name: String,
}

impl Default for WhatsAppOptions {
    fn default() -> Self {
        WhatsAppOptions {
            connect_timeout: Duration::from_secs(30),
            push_name: None,
            device_os_name: "wa-server".to_string(),
        }
    }
}

/// The whatsapp-rust provider: real WhatsApp sessions, one per device.
///
/// Cheap to share behind an `Arc<dyn Provider>`. Dropping it aborts every running
/// session without flushing (call `disconnect` first for a clean stop).
pub struct WhatsAppProvider {
    inner: Arc<Inner>,
}

impl WhatsAppProvider {
    /// A provider keeping its session stores in `sessions_dir` (created on first use),
    /// reporting session events on `events` and handing incoming messages to the worker
    /// on `inbound` (WhatsApp is acknowledged only once the worker answered `stored`
    /// with `Ok`). Starts nothing by itself.
    pub fn new(
        sessions_dir: PathBuf,
        events: EventSender,
        inbound: InboundSender,
        options: WhatsAppOptions,
    ) -> Self {
        WhatsAppProvider {
            inner: Arc::new(Inner {
                sessions_dir,
                events,
                inbound,
                options,
                sessions: Mutex::new(HashMap::new()),
                device_locks: StdMutex::new(HashMap::new()),
                generations: AtomicU64::new(1),
            }),
        }
    }
}

/// Shared state of the provider (the pumps hold it weakly).
struct Inner {
    sessions_dir: PathBuf,
    events: EventSender,
    /// Where incoming messages go (through each session's durability hook).
    inbound: InboundSender,
    options: WhatsAppOptions,
    /// Running sessions. Held only briefly (never across a Bot start or stop).
    sessions: Mutex<HashMap<Uuid, Session>>,
    /// Per-device lifecycle locks: serialize link/resume/disconnect/destroy and the
    /// pump's terminal handling of one device, so two Bots never share a store.
    device_locks: StdMutex<HashMap<Uuid, Arc<Mutex<()>>>>,
    /// Tells a session from its successor, so a late pump cannot stop a newer Bot.
    generations: AtomicU64,
}

/// One running Bot and what belongs to it.
struct Session {
    generation: u64,
    client: Arc<Client>,
    handle: BotHandle,
    emitter: Emitter,
    shared: Arc<SessionShared>,
    pump: JoinHandle<()>,
}

/// State shared between a session's pump, its transport and the provider.
#[derive(Default)]
struct SessionShared {
    /// Set once the session showed life (a QR, a pair code, pairing, a login): from
    /// then on the connect watchdog has nothing to report.
    progressed: AtomicBool,
    /// The last transport (WebSocket) connect error, for "could not reach WhatsApp".
    transport_error: StdMutex<Option<String>>,
    /// When the pair code handed out by `link` expires: QR exhaustion does not end a
    /// linking session before that.
    pair_code_expires: StdMutex<Option<Instant>>,
    /// Sends waiting for their server ack (filled by the pump, closed when the
    /// session ends).
    acks: Arc<AckTable>,
}

impl SessionShared {
    fn transport_error(&self) -> Option<String> {
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

    fn pair_code_expires(&self) -> Option<Instant> {
        *self
            .pair_code_expires
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn set_pair_code_expires(&self, at: Instant) {
        *self
            .pair_code_expires
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(at);
    }
}

/// Why a session was started: decides what the connect watchdog does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Fresh store, pairing: no QR/connection in time → stop.
    Link,
    /// Stored credentials: no connection in time → report and keep retrying.
    Resume,
}

/// The session's door to the provider's event channel. Closing it is final and
/// synchronous, which is what makes "no event after disconnect returns" hold even
/// while a pump is mid-emit.
#[derive(Clone)]
struct Emitter {
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
    fn emit(&self, event: SessionEvent) {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if !*open {
            debug!(device_id = %self.device_id, "session closed; event dropped");
            return;
        }
        if self.tx.send((self.device_id, event)).is_err() {
            debug!(device_id = %self.device_id, "event receiver gone; event dropped");
        }
    }

    fn close(&self) {
        *self.open.lock().unwrap_or_else(PoisonError::into_inner) = false;
    }

    /// Whether the session still reports (not disconnected, destroyed or replaced).
    fn is_open(&self) -> bool {
        *self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The library's event handler: runs inline on the library's dispatch path, so it only
/// forwards (in order) to the session pump.
struct Forwarder {
    tx: mpsc::UnboundedSender<Arc<Event>>,
}

impl EventHandler for Forwarder {
    fn handle_event(&self, event: Arc<Event>) {
        // A closed pump means the session is being stopped; nothing to do.
        let _ = self.tx.send(event);
    }

    fn interest(&self) -> EventInterest {
        EventInterest::of(&[
            EventKind::Connected,
            EventKind::Disconnected,
            EventKind::PairSuccess,
            EventKind::PairError,
            EventKind::LoggedOut,
            EventKind::PairingQrCode,
            EventKind::PairingQrCodesExhausted,
            EventKind::PairingCode,
            EventKind::PairingCodeError,
            EventKind::PairingCodeRefresh,
            EventKind::ClientOutdated,
            EventKind::StreamReplaced,
            EventKind::TemporaryBan,
            EventKind::ConnectFailure,
            EventKind::Presence,
            EventKind::ChatPresence,
            EventKind::Messages,
            EventKind::Receipt,
            EventKind::ServerAck,
        ])
    }
}

/// The default WebSocket transport, remembering its last connect error: the library's
/// run loop only logs failed connects, and "could not reach WhatsApp" needs a reason.
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

/// What ends a session from inside (library event or watchdog).
enum Terminal {
    /// Emit this event, then stop the Bot (credentials kept).
    Emit(SessionEvent),
    /// Stop the Bot, wipe its store, then emit `LoggedOut` with this failure.
    LoggedOut(ProviderFailure),
    /// The connect watchdog of a linking session: like `Emit(Stopped)`, unless the
    /// session showed life meanwhile (checked under the device lock, because `link`
    /// may hand out a pair code while the watchdog waits for that lock).
    Unreachable(ProviderFailure),
}

/// What the pump does after handling one library event.
enum Flow {
    Continue,
    /// The session ended; the pump exits.
    Finished,
    /// The QR codes ran out while a pair code is still valid: end the session when
    /// the pair code expires (`Some`), or pairing went ahead: never mind (`None`).
    EndAt(Option<Instant>),
}

impl Inner {
    fn store_path(&self, device_id: Uuid) -> PathBuf {
        self.sessions_dir.join(format!("{device_id}.db"))
    }

    fn device_lock(&self, device_id: Uuid) -> Arc<Mutex<()>> {
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
    async fn live_client(&self, device_id: Uuid) -> Result<Arc<Client>, ProviderFailure> {
        self.live_session(device_id).await.map(|(client, _)| client)
    }

    /// The client and shared state of a live (connected and logged-in) session;
    /// `device_not_connected` otherwise.
    async fn live_session(
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

    /// Deletes `<id>.db`, `-wal` and `-shm`. Missing files are fine; other failures
    /// are logged (the next link starts from whatever is left, which a fresh pairing
    /// overwrites anyway).
    fn wipe_store(&self, device_id: Uuid) {
        let db = self.store_path(device_id);
        let mut paths = vec![db.clone()];
        for suffix in ["-wal", "-shm"] {
            let mut name = db.clone().into_os_string();
            name.push(suffix);
            paths.push(PathBuf::from(name));
        }
        for path in paths {
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
        let url = path.to_str().ok_or_else(|| {
            ProviderFailure::new(
                ErrorCode::InternalError,
                "the sessions directory path is not valid UTF-8",
            )
        })?;
        // The session's keys: created 0600 before SQLite opens it (its -wal and -shm too).
        wa_core::private_fs::sqlite_database(&path).map_err(|e| {
            ProviderFailure::new(
                ErrorCode::InternalError,
                format!("could not create the session store: {e}"),
            )
        })?;
        let store = SqliteStore::new(url).await.map_err(|e| {
            ProviderFailure::new(
                ErrorCode::InternalError,
                format!("could not open the session store: {e}"),
            )
        })?;

        let shared = Arc::new(SessionShared::default());
        // Created before the Bot: its durability hook checks it, so a closed
        // session stops handing messages to the worker.
        let emitter = Emitter::new(device_id, self.events.clone());
        let (lib_tx, lib_rx) = mpsc::unbounded_channel();
        let mut builder = Bot::builder()
            .with_backend(store)
            .with_transport_factory(RecordingTransportFactory {
                inner: TokioWebSocketTransportFactory::new(),
                shared: shared.clone(),
            })
            .skip_history_sync()
            .with_device_props(
                DevicePropsOverride::new().with_os(self.options.device_os_name.clone()),
            )
            .with_event_handler(Forwarder { tx: lib_tx })
            .with_inbound_durability_hook(InboundHook {
                device_id,
                inbound: self.inbound.clone(),
                emitter: emitter.clone(),
            });
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
            return Err(ProviderFailure::new(
                ErrorCode::LoggedOut,
                "no stored WhatsApp credentials for this device; link it again",
            ));
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

    /// Requests a pair code on the device's fresh session: waits (bounded) for the
    /// socket, then asks WhatsApp. Returns the code and its expiry.
    async fn request_pair_code(
        &self,
        device_id: Uuid,
        client: &Arc<Client>,
        shared: &SessionShared,
        phone: &str,
    ) -> Result<(String, OffsetDateTime), ProviderFailure> {
        let timeout = self.options.connect_timeout;
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
        shared.set_pair_code_expires(Instant::now() + validity);
        Ok((code, mapping::expires_in(validity)))
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

/// Stops a Bot: graceful shutdown (disconnect + flush + wait for the run loop), bounded
/// by [`STOP_TIMEOUT`]; past that the Bot is aborted (dropping the timed-out shutdown
/// future drops the handle, which aborts the run task) and the client's background
/// tasks are told to stop.
async fn stop_bot(device_id: Uuid, client: &Arc<Client>, handle: BotHandle) {
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
fn unreachable_failure(
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

/// A session's event pump: receives the library's events in order and turns them into
/// `SessionEvent`s; also runs the connect watchdog.
struct Pump {
    inner: Weak<Inner>,
    device_id: Uuid,
    generation: u64,
    mode: Mode,
    client: Weak<Client>,
    emitter: Emitter,
    shared: Arc<SessionShared>,
    inbound: InboundSender,
    connect_timeout: Duration,
}

/// Closes a session's ack table when its pump ends, however it ends (returns, or is
/// aborted with the session): no ack can be correlated any more.
struct CloseAcksOnDrop(Arc<AckTable>);

impl Drop for CloseAcksOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl Pump {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Arc<Event>>) {
        let _close_acks = CloseAcksOnDrop(self.shared.acks.clone());
        let watchdog = tokio::time::sleep(self.connect_timeout);
        tokio::pin!(watchdog);
        let mut watching = true;
        let mut end_at: Option<Instant> = None;
        loop {
            let end = async {
                match end_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                event = rx.recv() => {
                    let Some(event) = event else { return };
                    match self.handle(&event).await {
                        Flow::Continue => {}
                        Flow::Finished => return,
                        Flow::EndAt(at) => end_at = at,
                    }
                }
                () = &mut watchdog, if watching => {
                    watching = false;
                    if !self.shared.progressed.load(Ordering::Relaxed) && self.on_connect_timeout().await {
                        return;
                    }
                }
                () = end => {
                    info!(device_id = %self.device_id, "pair code expired after the QR codes; linking session ended");
                    self.terminate(Terminal::Emit(SessionEvent::QrExhausted)).await;
                    return;
                }
            }
        }
    }

    /// The session showed no sign of life within `connect_timeout`. Returns whether
    /// the session ended.
    async fn on_connect_timeout(&self) -> bool {
        let Some(client) = self.client.upgrade() else {
            return true;
        };
        let failure = unreachable_failure(&client, &self.shared, self.connect_timeout);
        drop(client);
        warn!(device_id = %self.device_id, mode = ?self.mode, reason = %failure.message, "WhatsApp not reachable");
        match self.mode {
            Mode::Link => self.terminate(Terminal::Unreachable(failure)).await,
            Mode::Resume => {
                // The library keeps retrying with its backoff: that is the reconnect.
                self.emitter.emit(SessionEvent::Reconnecting {
                    error: Some(ProviderFailure::new(
                        failure.code,
                        format!("{}; retrying", failure.message),
                    )),
                });
                false
            }
        }
    }

    async fn handle(&self, event: &Event) -> Flow {
        let device_id = self.device_id;
        match event {
            Event::PairingQrCode(qr) => {
                self.shared.progressed.store(true, Ordering::Relaxed);
                debug!(device_id = %device_id, ttl_s = qr.timeout.as_secs(), "new QR code");
                self.emitter.emit(SessionEvent::Qr {
                    code: qr.code.clone(),
                    expires_at: mapping::expires_in(qr.timeout),
                });
            }
            Event::PairingQrCodesExhausted(ev) => {
                // With a pair code still pending the library keeps the socket up
                // (`disconnected == false`): the user may still type the code.
                if !ev.disconnected
                    && let Some(at) = self.shared.pair_code_expires()
                    && at > Instant::now()
                {
                    info!(device_id = %device_id, "QR codes exhausted; waiting for the pair code");
                    return Flow::EndAt(Some(at));
                }
                info!(device_id = %device_id, "QR codes exhausted; linking session ended");
                self.terminate(Terminal::Emit(SessionEvent::QrExhausted))
                    .await;
                return Flow::Finished;
            }
            Event::PairingCode(_) | Event::PairingCodeRefresh(_) => {
                // The code itself is returned by `link`; a refresh request from the
                // server would need a new code the port has no event for.
                debug!(device_id = %device_id, "pair-code event");
            }
            Event::PairingCodeError(e) => {
                // `link` returns this failure to its caller; QR linking continues.
                debug!(device_id = %device_id, rejection = ?e.rejection, "pair-code request failed");
            }
            Event::PairSuccess(_) => {
                self.shared.progressed.store(true, Ordering::Relaxed);
                info!(device_id = %device_id, "paired; waiting for login");
                // Paired by pair code after the QR codes ran out: the session lives on.
                return Flow::EndAt(None);
            }
            Event::PairError(e) => {
                let error = classify_pair_failure(&e.error);
                warn!(device_id = %device_id, code = %error.code, "pairing failed");
                self.terminate(Terminal::Emit(SessionEvent::Stopped { error }))
                    .await;
                return Flow::Finished;
            }
            Event::Connected(_) => {
                self.shared.progressed.store(true, Ordering::Relaxed);
                let Some(client) = self.client.upgrade() else {
                    return Flow::Continue;
                };
                // The store's own JID is the full device JID (`<number>:<device>@...`).
                let (wa_number, wa_device_jid) = match (client.pn(), client.lid()) {
                    (Some(pn), _) => (mapping::digits(&pn.user), pn.to_string()),
                    (None, Some(lid)) => (String::new(), lid.to_string()),
                    (None, None) => (String::new(), String::new()),
                };
                info!(device_id = %device_id, "connected to WhatsApp");
                self.emitter.emit(SessionEvent::Connected {
                    wa_number,
                    wa_device_jid,
                });
                return Flow::EndAt(None);
            }
            Event::Disconnected(d) => {
                info!(device_id = %device_id, reason = %d.reason, "connection lost; the client reconnects");
                // Acks of stanzas written on the dead socket will never arrive.
                self.shared.acks.fail_all();
                self.emitter.emit(SessionEvent::Reconnecting {
                    error: Some(mapping::disconnected_failure(&d.reason)),
                });
            }
            Event::LoggedOut(ev) => {
                let error = mapping::logged_out_failure(ev);
                warn!(device_id = %device_id, reason = ?ev.reason, "logged out by WhatsApp");
                self.terminate(Terminal::LoggedOut(error)).await;
                return Flow::Finished;
            }
            Event::StreamReplaced(_) => {
                warn!(device_id = %device_id, "session replaced by another connection");
                let error = ProviderFailure::new(
                    ErrorCode::ProviderError,
                    "another connection replaced this session",
                );
                self.terminate(Terminal::Emit(SessionEvent::Stopped { error }))
                    .await;
                return Flow::Finished;
            }
            Event::ClientOutdated(_) => {
                warn!(device_id = %device_id, "WhatsApp rejected the client version");
                let error = ProviderFailure::new(
                    ErrorCode::ClientOutdated,
                    "WhatsApp rejected this client version as outdated (405); update the server",
                );
                self.terminate(Terminal::Emit(SessionEvent::Stopped { error }))
                    .await;
                return Flow::Finished;
            }
            Event::TemporaryBan(ban) => {
                let error = mapping::temporary_ban_failure(ban);
                warn!(device_id = %device_id, reason = %ban.code, "account temporarily banned");
                self.terminate(Terminal::Emit(SessionEvent::Stopped { error }))
                    .await;
                return Flow::Finished;
            }
            Event::ConnectFailure(f) => {
                let error = mapping::connect_failure(f);
                if f.reason.should_reconnect() {
                    // 500/503: the library reconnects by itself.
                    info!(device_id = %device_id, reason = ?f.reason, "connect failure; the client reconnects");
                    self.emitter
                        .emit(SessionEvent::Reconnecting { error: Some(error) });
                } else {
                    warn!(device_id = %device_id, reason = ?f.reason, "connect failure; session stopped");
                    self.terminate(Terminal::Emit(SessionEvent::Stopped { error }))
                        .await;
                    return Flow::Finished;
                }
            }
            Event::Presence(p) => {
                let jid = self.peer_jid(&p.from, None).await;
                self.emitter
                    .emit(SessionEvent::Presence(mapping::presence(p, jid)));
            }
            Event::ChatPresence(c) => {
                let jid = self
                    .peer_jid(&c.source.sender, c.source.sender_alt.as_ref())
                    .await;
                self.emitter
                    .emit(SessionEvent::Presence(mapping::chat_presence(c, jid)));
            }
            Event::ServerAck(ack) => self.on_server_ack(ack),
            Event::Receipt(r) => self.on_receipt(r),
            Event::Messages(batch) => self.on_messages(batch),
            _ => {}
        }
        Flow::Continue
    }

    /// A server ack: resolves the send waiting for it, if any.
    fn on_server_ack(&self, ack: &whatsapp_rust::types::events::ServerAck) {
        // Acks also cover receipts and notifications we send; only message acks (or
        // unlabeled ones) can answer a send.
        if ack.class.as_deref().is_some_and(|c| c != "message") {
            return;
        }
        if self.shared.acks.resolve(&ack.id, ack.error.as_deref()) {
            debug!(device_id = %self.device_id, message_id = %ack.id, nack = ?ack.error, "server ack");
        }
    }

    /// Delivered/read/played receipts of messages this device sent.
    fn on_receipt(&self, r: &whatsapp_rust::types::events::Receipt) {
        let Some(status) = inbound::receipt_status(&r.r#type) else {
            return;
        };
        // Our own other devices confirm our sends too; those are not the peer's.
        if self.is_own(&r.source.sender) || r.message_ids.is_empty() {
            return;
        }
        debug!(device_id = %self.device_id, count = r.message_ids.len(), status = status.as_str(), "receipt");
        self.emitter.emit(SessionEvent::Receipt {
            message_ids: r.message_ids.clone(),
            status,
            from: r.source.sender.to_non_ad().to_string(),
            chat: r.source.chat.to_non_ad().to_string(),
        });
    }

    /// A committed batch of incoming messages: revokes become events; messages the
    /// durability hook did not see (already acked by the library) are delivered here.
    fn on_messages(&self, batch: &whatsapp_rust::types::events::MessageBatch) {
        for item in batch.iter() {
            let source = &item.info.source;
            if source.is_from_me || !inbound::is_conversation(&source.chat) {
                continue;
            }
            if let inbound::Classified::Revoke { message_id } = inbound::classify(&item.message) {
                debug!(device_id = %self.device_id, message_id = %message_id, "message revoked");
                self.emitter.emit(SessionEvent::Revoked {
                    message_id,
                    chat: source.chat.to_non_ad().to_string(),
                    from: source.sender.to_non_ad().to_string(),
                });
            }
        }
        if batch.hook_committed {
            return;
        }
        // Off the pump: downloads must not hold up acks, receipts and lifecycle events.
        if let Some(client) = self.client.upgrade() {
            tokio::spawn(inbound::deliver_unacked(
                self.device_id,
                client,
                self.inbound.clone(),
                self.emitter.clone(),
                batch.messages.clone(),
            ));
        }
    }

    /// Whether `jid` is this account (any of its devices, phone number or LID).
    fn is_own(&self, jid: &Jid) -> bool {
        let Some(client) = self.client.upgrade() else {
            return false;
        };
        [client.pn(), client.lid()]
            .into_iter()
            .flatten()
            .any(|own| own.user == jid.user && own.server == jid.server)
    }

    /// The peer as the API shows it: its phone-number JID when the library knows the
    /// LID↔PN mapping, else the JID as received (device part stripped).
    async fn peer_jid(&self, jid: &Jid, alt: Option<&Jid>) -> String {
        let base = jid.to_non_ad();
        if base.is_lid() {
            if let Some(alt) = alt.filter(|a| a.is_pn()) {
                return alt.to_non_ad().to_string();
            }
            if let Some(client) = self.client.upgrade()
                && let Ok(Some(entry)) = client.get_lid_pn_entry(&base).await
            {
                return Jid::pn(&*entry.phone_number).to_string();
            }
        }
        base.to_string()
    }

    /// Ends this session from inside: under the device lock, and only if the session
    /// in the map is still this one (a newer link/resume or a disconnect already
    /// closed our emitter, and owns the device now).
    ///
    /// Returns whether the session is over for this pump (false only when an
    /// `Unreachable` verdict was overtaken by progress).
    async fn terminate(&self, terminal: Terminal) -> bool {
        let Some(inner) = self.inner.upgrade() else {
            return true;
        };
        let lock = inner.device_lock(self.device_id);
        let _guard = lock.lock().await;
        if matches!(terminal, Terminal::Unreachable(_))
            && self.shared.progressed.load(Ordering::Relaxed)
        {
            return false;
        }
        let session = {
            let mut sessions = inner.sessions.lock().await;
            match sessions.get(&self.device_id) {
                Some(s) if s.generation == self.generation => sessions.remove(&self.device_id),
                _ => None,
            }
        };
        let Some(session) = session else {
            return true;
        };
        // Not aborting `session.pump`: that is the task running this.
        let Session {
            client,
            handle,
            emitter,
            shared,
            ..
        } = session;
        shared.acks.close();
        match terminal {
            Terminal::Unreachable(error) => {
                emitter.emit(SessionEvent::Stopped { error });
                emitter.close();
                stop_bot(self.device_id, &client, handle).await;
            }
            Terminal::Emit(event) => {
                // Emit first so the worker learns promptly; a new link/resume for this
                // device waits on the device lock until the Bot is down.
                emitter.emit(event);
                emitter.close();
                stop_bot(self.device_id, &client, handle).await;
            }
            Terminal::LoggedOut(error) => {
                stop_bot(self.device_id, &client, handle).await;
                drop(client);
                inner.wipe_store(self.device_id);
                emitter.emit(SessionEvent::LoggedOut { error });
                emitter.close();
            }
        }
        true
    }
}

#[async_trait]
impl Provider for WhatsAppProvider {
    fn name(&self) -> &'static str {
        "whatsapp"
    }

    /// Stops any session of the device, wipes its store and starts a fresh linking
    /// session; QR codes follow as events. Returns at once unless `pair_phone` is
    /// given: then it waits up to `connect_timeout` for the socket, and again up to
    /// `connect_timeout` for WhatsApp's answer, and returns the pair code, or `Err`
    /// (`whatsapp_connection_lost` when WhatsApp is unreachable, `provider_rate_limit`
    /// when throttled, `upstream_timeout` when unanswered, `validation_error` for a
    /// phone number the library rejects) after stopping the session silently and
    /// wiping its store.
    async fn link(
        &self,
        device_id: Uuid,
        pair_phone: Option<&str>,
    ) -> Result<Option<(String, OffsetDateTime)>, ProviderFailure> {
        let inner = &self.inner;
        let lock = inner.device_lock(device_id);
        let _guard = lock.lock().await;
        if let Some(old) = inner.take_session(device_id).await {
            stop_silently(device_id, old).await;
        }
        inner.wipe_store(device_id);
        let (client, shared) = inner.start_session(device_id, Mode::Link).await?;
        let Some(phone) = pair_phone else {
            return Ok(None);
        };
        match inner
            .request_pair_code(device_id, &client, &shared, phone)
            .await
        {
            Ok(code) => Ok(Some(code)),
            Err(failure) => {
                drop(client);
                if let Some(session) = inner.take_session(device_id).await {
                    stop_silently(device_id, session).await;
                }
                inner.wipe_store(device_id);
                Err(failure)
            }
        }
    }

    /// Starts a session on the stored credentials and returns at once; `Connected`
    /// follows, or `Reconnecting` (WhatsApp unreachable within `connect_timeout`, the
    /// library keeps retrying), `Stopped` or `LoggedOut`. `Err(logged_out)` when there
    /// are no stored credentials.
    async fn resume(&self, device_id: Uuid) -> Result<(), ProviderFailure> {
        let inner = &self.inner;
        let lock = inner.device_lock(device_id);
        let _guard = lock.lock().await;
        if let Some(old) = inner.take_session(device_id).await {
            stop_silently(device_id, old).await;
        }
        if !inner.store_path(device_id).exists() {
            return Err(ProviderFailure::new(
                ErrorCode::LoggedOut,
                "no stored WhatsApp credentials for this device; link it again",
            ));
        }
        inner.start_session(device_id, Mode::Resume).await?;
        Ok(())
    }

    /// Whether the device's store holds a paired identity (a phone-number JID). A
    /// store file that exists but was never paired is not credentials. With a running
    /// session the answer comes from its client; otherwise the store is opened and its
    /// device row read (a few milliseconds). Unreadable stores count as no credentials.
    async fn has_credentials(&self, device_id: Uuid) -> bool {
        let inner = &self.inner;
        let lock = inner.device_lock(device_id);
        let _guard = lock.lock().await;
        if let Some(session) = inner.sessions.lock().await.get(&device_id) {
            return session.client.pn().is_some();
        }
        let path = inner.store_path(device_id);
        if !path.exists() {
            return false;
        }
        let Some(url) = path.to_str() else {
            return false;
        };
        let store = match SqliteStore::new(url).await {
            Ok(store) => store,
            Err(e) => {
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

    /// Stops the session (bounded graceful shutdown, then abort) and keeps the store.
    /// Emits nothing for the session once it returns.
    async fn disconnect(&self, device_id: Uuid) {
        let inner = &self.inner;
        let lock = inner.device_lock(device_id);
        let _guard = lock.lock().await;
        if let Some(session) = inner.take_session(device_id).await {
            stop_silently(device_id, session).await;
            info!(device_id = %device_id, "WhatsApp session disconnected");
        }
    }

    /// Unlinks the device from WhatsApp when connected (bounded by a timeout; best
    /// effort), stops the session and deletes its store files. Emits nothing for the
    /// session once it returns.
    async fn destroy(&self, device_id: Uuid) {
        let inner = &self.inner;
        let lock = inner.device_lock(device_id);
        let _guard = lock.lock().await;
        if let Some(session) = inner.take_session(device_id).await {
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
        inner.wipe_store(device_id);
        info!(device_id = %device_id, "WhatsApp session destroyed");
    }

    /// A contact's or group's profile (`@g.us` = group), best effort: fields WhatsApp
    /// hides (privacy) are `None`. Needs a live session (`device_not_connected`);
    /// library failures are classified by [`classify_error`]; a malformed JID is a
    /// `validation_error`.
    async fn profile(&self, device_id: Uuid, jid: &str) -> Result<Profile, ProviderFailure> {
        let client = self.inner.live_client(device_id).await?;
        let target = parse_jid(jid)?;
        if target.to_string().ends_with("@g.us") {
            group_profile(&client, &target).await
        } else {
            contact_profile(&client, &target).await
        }
    }

    /// The groups the account participates in, sorted by JID. Needs a live session.
    async fn groups(&self, device_id: Uuid) -> Result<Vec<Group>, ProviderFailure> {
        let client = self.inner.live_client(device_id).await?;
        let groups = client
            .groups()
            .get_participating()
            .await
            .map_err(|e| classify_error(&e, false))?;
        let mut out: Vec<Group> = groups
            .into_values()
            .map(|g| {
                let participant_count = g
                    .size
                    .unwrap_or_else(|| u32::try_from(g.participants.len()).unwrap_or(u32::MAX));
                Group {
                    jid: g.id.to_string(),
                    name: g.subject.clone(),
                    subject: g.subject,
                    description: g.description,
                    participant_count,
                    is_announce: g.is_announcement,
                    is_locked: g.is_locked,
                    is_ephemeral: g
                        .ephemeral
                        .as_ref()
                        .and_then(|e| e.expiration)
                        .is_some_and(|secs| secs > 0),
                    is_join_approval_required: g.membership_approval,
                }
            })
            .collect();
        out.sort_by(|a, b| a.jid.cmp(&b.jid));
        Ok(out)
    }

    /// Sends a message under its fixed `message_id` and returns once WhatsApp acked it.
    ///
    /// Needs a live session (`device_not_connected` at once otherwise). Media types
    /// are uploaded first (their bytes must be in `message.media`, else
    /// `provider_error`). Failures: a malformed `to` is a `validation_error`; upload
    /// and send errors are classified by [`classify_error`] / [`classify_send_error`];
    /// a server nack by [`classify_nack`] (`provider_rate_limit`,
    /// `group_posting_restricted`, ...); the connection dropping or the session ending
    /// before the ack is `whatsapp_connection_lost`; no ack within 30 s is
    /// `upstream_timeout` (`group_prekey_timeout` for groups). After any failure,
    /// resending under the same id is safe: WhatsApp drops duplicates.
    async fn send(
        &self,
        device_id: Uuid,
        message: &OutboundMessage,
    ) -> Result<(), ProviderFailure> {
        let (client, shared) = self.inner.live_session(device_id).await?;
        let to = parse_jid(&message.to)?;
        outbound::send(device_id, &client, &shared.acks, to, message).await
    }

    /// Subscribes to a peer's presence; updates arrive as `SessionEvent::Presence` (the
    /// library re-subscribes after reconnects). Needs a live session.
    async fn subscribe_presence(&self, device_id: Uuid, jid: &str) -> Result<(), ProviderFailure> {
        let client = self.inner.live_client(device_id).await?;
        let target = parse_jid(jid)?;
        client
            .presence()
            .subscribe(target)
            .await
            .map_err(|e| classify_error(&e, false))
    }
}

/// Parses a JID; bare digits (optionally `+`-prefixed) are taken as a phone number.
fn parse_jid(jid: &str) -> Result<Jid, ProviderFailure> {
    let jid = jid.trim();
    let invalid = |why: String| {
        ProviderFailure::new(
            ErrorCode::ValidationError,
            format!("invalid WhatsApp JID `{jid}`: {why}"),
        )
    };
    match jid.split_once('@') {
        None => {
            let digits = jid.trim_start_matches('+');
            if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
                Ok(Jid::pn(digits))
            } else {
                Err(invalid("expected `user@server` or a phone number".into()))
            }
        }
        Some(("", _)) => Err(invalid("the user part is empty".into())),
        Some(_) => jid.parse::<Jid>().map_err(|e| invalid(e.to_string())),
    }
}

/// A group's profile: metadata (required) and picture (best effort).
async fn group_profile(client: &Client, jid: &Jid) -> Result<Profile, ProviderFailure> {
    let meta = client
        .groups()
        .get_metadata(jid)
        .await
        .map_err(|e| classify_error(&e, false))?;
    let picture_url = picture_url(client, jid).await;
    let participant_count = meta
        .size
        .unwrap_or_else(|| u32::try_from(meta.participants.len()).unwrap_or(u32::MAX));
    Ok(Profile {
        jid: jid.to_non_ad().to_string(),
        kind: "group".to_string(),
        name: Some(meta.subject.clone()).filter(|s| !s.is_empty()),
        phone_number: None,
        lid: None,
        status: None,
        picture_url,
        subject: Some(meta.subject),
        description: meta.description,
        participant_count: Some(participant_count),
    })
}

/// A contact's profile: usync user info (required: it is the "does WhatsApp answer"
/// part), LID↔PN mapping and picture (best effort).
async fn contact_profile(client: &Client, jid: &Jid) -> Result<Profile, ProviderFailure> {
    let jid = jid.to_non_ad();
    let mut info = client
        .contacts()
        .get_user_info(std::slice::from_ref(&jid))
        .await
        .map_err(|e| classify_error(&e, false))?;
    let info = info.remove(&jid).or_else(|| info.into_values().next());
    let mapping = client.get_lid_pn_entry(&jid).await.ok().flatten();

    let phone_number = if jid.is_pn() {
        Some(mapping::digits(&jid.user))
    } else {
        mapping.as_ref().map(|m| m.phone_number.to_string())
    };
    let lid = if jid.is_lid() {
        Some(jid.to_string())
    } else {
        info.as_ref()
            .and_then(|i| i.lid.as_ref())
            .map(|l| l.to_non_ad().to_string())
            .or_else(|| mapping.as_ref().map(|m| Jid::lid(&*m.lid).to_string()))
    };
    let name = info
        .as_ref()
        .and_then(|i| i.verified_name.as_ref())
        .and_then(|v| v.name.clone())
        .filter(|n| !n.is_empty());
    let status = info
        .as_ref()
        .and_then(|i| i.status.clone())
        .filter(|s| !s.is_empty());
    let picture_url = picture_url(client, &jid).await;
    Ok(Profile {
        jid: jid.to_string(),
        kind: "contact".to_string(),
        name,
        phone_number,
        lid,
        status,
        picture_url,
        subject: None,
        description: None,
        participant_count: None,
    })
}

/// The profile picture URL, best effort: hidden, missing or failing pictures are `None`.
async fn picture_url(client: &Client, jid: &Jid) -> Option<String> {
    match client.contacts().get_profile_picture(jid, false).await {
        Ok(picture) => picture.map(|p| p.url).filter(|u| !u.is_empty()),
        Err(e) => {
            debug!(error = %e, "profile picture unavailable");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use tokio::sync::mpsc::UnboundedReceiver;

    /// The three files of a device's store.
    fn store_files(dir: &Path, device_id: Uuid) -> Vec<PathBuf> {
        ["", "-wal", "-shm"]
            .iter()
            .map(|suffix| dir.join(format!("{device_id}.db{suffix}")))
            .collect()
    }

    const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// Margin over `connect_timeout` for the Stopped/Reconnecting event: the watchdog
    /// fires at the timeout; stopping the Bot comes after the emit.
    const MARGIN: Duration = Duration::from_secs(10);

    fn provider(dir: &Path) -> (WhatsAppProvider, UnboundedReceiver<(Uuid, SessionEvent)>) {
        let (tx, rx) = mpsc::unbounded_channel();
        // Nothing arrives offline; the receiver may go.
        let (inbound, _) = mpsc::unbounded_channel();
        let options = WhatsAppOptions {
            connect_timeout: CONNECT_TIMEOUT,
            ..Default::default()
        };
        (
            WhatsAppProvider::new(dir.to_path_buf(), tx, inbound, options),
            rx,
        )
    }

    fn text_message(to: &str) -> OutboundMessage {
        OutboundMessage {
            message_id: wa_core::messages::new_message_id(),
            to: to.to_string(),
            content: wa_core::messages::Content::Text {
                text: "hello".to_string(),
            },
            media: None,
        }
    }

    /// Waits for the first event of `device_id` matching `pick`.
    async fn wait_for<T>(
        rx: &mut UnboundedReceiver<(Uuid, SessionEvent)>,
        device_id: Uuid,
        within: Duration,
        mut pick: impl FnMut(SessionEvent) -> Option<T>,
    ) -> T {
        let found = tokio::time::timeout(within, async {
            while let Some((id, event)) = rx.recv().await {
                if id != device_id {
                    continue;
                }
                if let Some(found) = pick(event) {
                    return Some(found);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(found)) => found,
            Ok(None) => panic!("event channel closed"),
            Err(_) => panic!("no matching event within {within:?}"),
        }
    }

    #[test]
    fn options_default() {
        let o = WhatsAppOptions::default();
        assert_eq!(o.connect_timeout, Duration::from_secs(30));
        assert_eq!(o.device_os_name, "wa-server");
        assert!(o.push_name.is_none());
    }

    #[test]
    fn jids_parse_with_phone_number_shorthand() {
        assert_eq!(
            parse_jid("+15551234567").map(|j| j.to_string()),
            Ok("15551234567@s.whatsapp.net".to_string())
        );
        assert_eq!(
            parse_jid("120363025246125486@g.us").map(|j| j.to_string()),
            Ok("120363025246125486@g.us".to_string())
        );
        assert_eq!(
            parse_jid("not a jid").map_err(|f| f.code),
            Err(ErrorCode::ValidationError)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn offline_link_stops_cleanly_and_destroy_wipes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (provider, mut rx) = provider(dir.path());
        assert_eq!(provider.name(), "whatsapp");
        let id = Uuid::new_v4();

        let started = std::time::Instant::now();
        let linked = provider.link(id, None).await;
        assert_eq!(linked, Ok(None));
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "link must not wait for the network"
        );

        let error = wait_for(&mut rx, id, CONNECT_TIMEOUT + MARGIN, |event| match event {
            SessionEvent::Stopped { error } => Some(error),
            _ => None,
        })
        .await;
        assert!(
            matches!(
                error.code,
                ErrorCode::WhatsappConnectionLost | ErrorCode::ProviderError
            ),
            "{error:?}"
        );
        assert!(
            error.message.starts_with("could not reach WhatsApp"),
            "{error:?}"
        );
        assert!(dir.path().join(format!("{id}.db")).exists());
        // The store exists but was never paired: not credentials.
        assert!(!provider.has_credentials(id).await);
        // Stopped: nothing live to query.
        assert_eq!(
            provider.groups(id).await.map_err(|f| f.code),
            Err(ErrorCode::DeviceNotConnected)
        );

        let started = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(5), provider.destroy(id))
            .await
            .expect("destroy returns promptly");
        assert!(started.elapsed() < Duration::from_secs(5));
        for path in store_files(dir.path(), id) {
            assert!(!path.exists(), "{} still exists", path.display());
        }
        assert!(!provider.has_credentials(id).await);
        // Nothing more for this device after destroy.
        tokio::time::sleep(Duration::from_millis(200)).await;
        while let Ok((other, event)) = rx.try_recv() {
            assert_ne!(other, id, "event after destroy: {event:?}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn send_without_a_session_is_device_not_connected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (provider, _rx) = provider(dir.path());
        let started = std::time::Instant::now();
        let result = provider
            .send(Uuid::new_v4(), &text_message("15551234567@s.whatsapp.net"))
            .await;
        assert_eq!(
            result.map_err(|f| f.code),
            Err(ErrorCode::DeviceNotConnected)
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        // The default: the provider cannot tell.
        assert_eq!(provider.was_sent(Uuid::new_v4(), "3EB0X").await, None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn offline_pair_code_link_fails_with_connection_lost() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (provider, mut rx) = provider(dir.path());
        let id = Uuid::new_v4();
        let started = std::time::Instant::now();
        let failure = provider
            .link(id, Some("15551234567"))
            .await
            .expect_err("no pair code offline");
        assert_eq!(
            failure.code,
            ErrorCode::WhatsappConnectionLost,
            "{failure:?}"
        );
        assert!(started.elapsed() < CONNECT_TIMEOUT + MARGIN);
        for path in store_files(dir.path(), id) {
            assert!(!path.exists(), "{} still exists", path.display());
        }
        // The failed link emits nothing: the caller got the error.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn resume_without_credentials_is_logged_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (provider, _rx) = provider(dir.path());
        let id = Uuid::new_v4();
        assert!(!provider.has_credentials(id).await);
        assert_eq!(
            provider.resume(id).await.map_err(|f| f.code),
            Err(ErrorCode::LoggedOut)
        );
        assert!(!dir.path().join(format!("{id}.db")).exists());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn offline_resume_reports_reconnecting_and_disconnect_keeps_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (provider, mut rx) = provider(dir.path());
        let id = Uuid::new_v4();

        // Fake a paired store: a device row with a phone-number identity.
        {
            let path = dir.path().join(format!("{id}.db"));
            let store = SqliteStore::new(path.to_str().expect("utf-8 path"))
                .await
                .expect("open store");
            let mut device = whatsapp_rust::wacore::store::Device::new();
            device.pn = Some(Jid::pn("15550001111"));
            store.save(&device).await.expect("save device");
        }
        assert!(provider.has_credentials(id).await);

        let started = std::time::Instant::now();
        provider.resume(id).await.expect("resume starts");
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(provider.has_credentials(id).await);

        let error = wait_for(&mut rx, id, CONNECT_TIMEOUT + MARGIN, |event| match event {
            SessionEvent::Reconnecting { error } => error,
            SessionEvent::Stopped { error } | SessionEvent::LoggedOut { error } => {
                panic!("offline resume must keep retrying: {error:?}")
            }
            _ => None,
        })
        .await;
        assert_eq!(error.code, ErrorCode::WhatsappConnectionLost, "{error:?}");
        // A session that never connected cannot send.
        assert_eq!(
            provider
                .send(id, &text_message("15551234567@s.whatsapp.net"))
                .await
                .map_err(|f| f.code),
            Err(ErrorCode::DeviceNotConnected)
        );

        let started = std::time::Instant::now();
        provider.disconnect(id).await;
        assert!(started.elapsed() <= STOP_TIMEOUT + Duration::from_secs(1));
        assert!(dir.path().join(format!("{id}.db")).exists());
        assert!(provider.has_credentials(id).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
        while let Ok((other, event)) = rx.try_recv() {
            assert_ne!(other, id, "event after disconnect: {event:?}");
        }
    }
}
