//! The event pump: one task per session that receives whatsapp-rust's events in
//! order (through the [`Forwarder`] registered on the Bot), asks [`map_event`] what
//! each one means and carries that out: emitting [`SessionEvent`]s, resolving acks,
//! requesting a fresh pair code, ending the session. It also runs the session's
//! timers: the connect watchdog, the end of a linking session whose QR codes ran out
//! while a pair code was pending, and the grace given to a connection the server
//! recycled.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use uuid::Uuid;
use wa_core::provider::{InboundSender, ProviderFailure, SessionEvent};
use whatsapp_rust::types::events::{Event, EventHandler, EventInterest, EventKind};
use whatsapp_rust::{Client, Jid};

use super::acks::AckTable;
use super::events::{Context, Step, Terminal, map_event};
use super::group_events::Source;
use super::session::{
    Emitter, Inner, Mode, Session, SessionShared, request_pair_code, stop_bot, unreachable_failure,
};
use super::{calls, inbound};

/// The event kinds the pump handles. `ServerAck` must be among them: a send resolves
/// only on its ack, so without it every send would time out.
const INTEREST: [EventKind; 22] = [
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
    EventKind::IncomingCall,
    EventKind::MissedCall,
    EventKind::GroupUpdate,
];

/// The library's event handler: runs inline on the library's dispatch path, so it only
/// forwards (in order) to the session pump.
pub(super) struct Forwarder {
    tx: mpsc::UnboundedSender<Arc<Event>>,
}

impl Forwarder {
    pub(super) fn new(tx: mpsc::UnboundedSender<Arc<Event>>) -> Self {
        Forwarder { tx }
    }
}

impl EventHandler for Forwarder {
    fn handle_event(&self, event: Arc<Event>) {
        // A closed pump means the session is being stopped; nothing to do.
        let _ = self.tx.send(event);
    }

    fn interest(&self) -> EventInterest {
        EventInterest::of(&INTEREST)
    }
}

/// A session's event pump (see the module docs).
pub(super) struct Pump {
    pub(super) inner: Weak<Inner>,
    pub(super) device_id: Uuid,
    pub(super) generation: u64,
    pub(super) mode: Mode,
    pub(super) client: Weak<Client>,
    pub(super) emitter: Emitter,
    pub(super) shared: Arc<SessionShared>,
    pub(super) inbound: InboundSender,
    pub(super) connect_timeout: Duration,
    /// Whether incoming calls are rejected as they ring.
    pub(super) reject_calls: bool,
}

/// Closes a session's ack table when its pump ends, however it ends (returns, or is
/// aborted with the session): no ack can be correlated any more.
struct CloseAcksOnDrop(Arc<AckTable>);

impl Drop for CloseAcksOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The pump's pending deadlines besides the connect watchdog. Pure bookkeeping: the
/// pump sleeps on them and says what happened; each rule has a unit test.
#[derive(Debug, Default)]
struct Timers {
    /// The QR codes ran out while a pair code is valid: the session ends then.
    end_at: Option<Instant>,
    /// The server recycled the connection: unless a login follows by then, report
    /// this failure (`Reconnecting`) and fail the sends still waiting for acks.
    recycle: Option<(Instant, ProviderFailure)>,
}

impl Timers {
    /// Updates the deadlines for `step`, taken at `now`; `grace` is how long a
    /// recycled connection may take to log in again.
    fn on_step(&mut self, step: &Step, now: Instant, grace: Duration) {
        match step {
            // Pairing went ahead: the session no longer ends with the pair code.
            Step::Paired => self.end_at = None,
            Step::Connected(_) => {
                self.end_at = None;
                self.recycle = None;
            }
            Step::AwaitPairCode(at) => self.end_at = Some(*at),
            Step::Recycled { error } => {
                // A recycle during a recycle keeps the first deadline.
                self.recycle.get_or_insert((now + grace, error.clone()));
            }
            // Reported already: the recycle has nothing left to report.
            Step::ConnectionLost(_) | Step::Emit(SessionEvent::Reconnecting { .. }) => {
                self.recycle = None;
            }
            _ => {}
        }
    }

    /// A new pair code (its expiry), or none (`None`): a session waiting for the pair
    /// code after its QR codes ran out waits for the new one, or ends `now`.
    fn on_pair_code_refresh(&mut self, new_expiry: Option<Instant>, now: Instant) {
        if self.end_at.is_some() {
            self.end_at = Some(new_expiry.unwrap_or(now));
        }
    }

    /// The recycle deadline passed: the failure to report, once.
    fn recycle_due(&mut self) -> Option<ProviderFailure> {
        self.recycle.take().map(|(_, error)| error)
    }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending::<()>().await,
    }
}

impl Pump {
    pub(super) async fn run(self, mut rx: mpsc::UnboundedReceiver<Arc<Event>>) {
        let _close_acks = CloseAcksOnDrop(self.shared.acks.clone());
        let watchdog = tokio::time::sleep(self.connect_timeout);
        tokio::pin!(watchdog);
        let mut watching = true;
        let mut timers = Timers::default();
        loop {
            let end = sleep_until(timers.end_at);
            let recycle = sleep_until(timers.recycle.as_ref().map(|(at, _)| *at));
            tokio::select! {
                event = rx.recv() => {
                    let Some(event) = event else { return };
                    if self.handle(&event, &mut timers).await {
                        return;
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
                () = recycle => {
                    if let Some(error) = timers.recycle_due() {
                        warn!(device_id = %self.device_id, reason = %error.message, "the recycled connection did not come back in time");
                        self.shared.acks.fail_all();
                        self.emitter.emit(SessionEvent::Reconnecting { error: Some(error) });
                    }
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

    /// What the session knows now, for [`map_event`].
    fn context(&self) -> Context {
        let client = self.client.upgrade();
        Context {
            pn: client.as_ref().and_then(|c| c.pn()),
            lid: client.as_ref().and_then(|c| c.lid()),
            pair_code_expires: self.shared.pair_code_expires(),
            now: Some(Instant::now()),
            reject_calls: self.reject_calls,
        }
    }

    /// Carries out one library event. Returns whether the session ended.
    async fn handle(&self, event: &Event, timers: &mut Timers) -> bool {
        let device_id = self.device_id;
        let step = map_event(event, &self.context());
        if step.shows_life() {
            self.shared.progressed.store(true, Ordering::Relaxed);
        }
        if step.fails_pending_acks() {
            self.shared.acks.fail_all();
        }
        timers.on_step(&step, Instant::now(), self.connect_timeout);
        match step {
            Step::Ignore => {}
            Step::Emit(event) => {
                if let SessionEvent::Reconnecting { error } = &event {
                    info!(device_id = %device_id, reason = ?error.as_ref().map(|e| &e.message), "the client reconnects");
                }
                self.emitter.emit(event);
            }
            Step::Paired => info!(device_id = %device_id, "paired; waiting for login"),
            Step::Connected(event) => {
                info!(device_id = %device_id, "connected to WhatsApp");
                self.emitter.emit(event);
            }
            Step::AwaitPairCode(_) => {
                info!(device_id = %device_id, "QR codes exhausted; waiting for the pair code");
            }
            Step::RefreshPairCode { force_manual } => {
                self.refresh_pair_code(force_manual, timers).await;
            }
            Step::Recycled { error } => {
                info!(device_id = %device_id, reason = %error.message, "connection recycled by WhatsApp; the client reconnects");
            }
            Step::ConnectionLost(event) => {
                info!(device_id = %device_id, "connection lost; the client reconnects");
                self.emitter.emit(event);
            }
            Step::End(terminal) => {
                match &terminal {
                    Terminal::Emit(SessionEvent::QrExhausted) => {
                        info!(device_id = %device_id, "QR codes exhausted; linking session ended")
                    }
                    other => {
                        warn!(device_id = %device_id, kind = ?event.kind(), end = ?other, "session ended by WhatsApp")
                    }
                }
                self.terminate(terminal).await;
                return true;
            }
            Step::Ack { id, nack } => {
                if self.shared.acks.resolve(&id, nack.as_deref()) {
                    debug!(device_id = %device_id, message_id = %id, ?nack, "server ack");
                }
            }
            Step::Presence {
                mut presence,
                lookup,
            } => {
                if let Some(lid) = lookup
                    && let Some(pn) = self.phone_jid(&lid).await
                {
                    presence.jid = pn;
                }
                self.emitter.emit(SessionEvent::Presence(presence));
            }
            Step::RejectCall(rejected) => {
                let event = match (event, self.client.upgrade()) {
                    (Event::IncomingCall(call), Some(client)) => {
                        calls::reject(&client, call, rejected).await
                    }
                    _ => rejected,
                };
                info!(device_id = %device_id, ?event, "incoming call");
                self.emitter.emit(event);
            }
            Step::OwnGroupUpdate(update) => {
                let own = &self.shared.own_group_changes;
                if let Some(update) =
                    own.first_report(Source::Notification, &update, Instant::now())
                {
                    self.emitter.emit(SessionEvent::GroupUpdate(update));
                } else {
                    debug!(device_id = %device_id, "a group change this device reported already");
                }
            }
            Step::Messages { actions, deliver } => {
                for event in actions {
                    debug!(device_id = %device_id, "a revoke, reaction, edit or vote");
                    self.emitter.emit(event);
                }
                // Off the pump: downloads must not hold up acks, receipts and
                // lifecycle events.
                if let Some(messages) = deliver
                    && let Some(client) = self.client.upgrade()
                {
                    tokio::spawn(inbound::deliver_unacked(
                        device_id,
                        client,
                        self.inbound.clone(),
                        self.emitter.clone(),
                        messages,
                    ));
                }
            }
        }
        false
    }

    /// WhatsApp declared the pair code dead: asks for a new one with the same phone
    /// number and reports it (`PairCode`). Inline on the pump, bounded by twice the
    /// connect timeout: a linking session carries no sends whose acks could wait.
    /// When no new code comes, the old one is still dead: a session waiting for it
    /// after its QR codes ran out ends now.
    async fn refresh_pair_code(&self, force_manual: bool, timers: &mut Timers) {
        let device_id = self.device_id;
        self.shared.expire_pair_code();
        let (Some(phone), Some(client)) = (self.shared.pair_phone(), self.client.upgrade()) else {
            debug!(device_id = %device_id, "pair-code refresh without a pair code; ignored");
            return;
        };
        info!(device_id = %device_id, force_manual, "WhatsApp asked for a new pair code");
        let refreshed = request_pair_code(
            device_id,
            &client,
            &self.shared,
            &phone,
            self.connect_timeout,
        )
        .await;
        drop(client);
        let new_expiry = match refreshed {
            Ok((code, expires_at)) => {
                self.emitter
                    .emit(SessionEvent::PairCode { code, expires_at });
                self.shared.pair_code_expires()
            }
            Err(failure) => {
                warn!(device_id = %device_id, code = %failure.code, reason = %failure.message, "no new pair code");
                None
            }
        };
        timers.on_pair_code_refresh(new_expiry, Instant::now());
    }

    /// The phone-number JID of a LID, when the client knows the mapping.
    async fn phone_jid(&self, lid: &Jid) -> Option<String> {
        let client = self.client.upgrade()?;
        let entry = client.get_lid_pn_entry(lid).await.ok().flatten()?;
        Some(Jid::pn(&*entry.phone_number).to_string())
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

#[cfg(test)]
mod tests {
    use super::*;
    use wa_errors::ErrorCode;

    const GRACE: Duration = Duration::from_secs(30);

    fn lost(why: &str) -> ProviderFailure {
        ProviderFailure::new(ErrorCode::WhatsappConnectionLost, why)
    }

    /// The server recycled the connection at `at`.
    fn recycle(timers: &mut Timers, why: &str, at: Instant) {
        timers.on_step(&Step::Recycled { error: lost(why) }, at, GRACE);
    }

    fn connected() -> Step {
        Step::Connected(SessionEvent::Connected {
            wa_number: "15550001111".into(),
            wa_device_jid: "15550001111:7@s.whatsapp.net".into(),
        })
    }

    #[test]
    fn a_recycle_waits_for_the_login_then_reports_once() {
        let now = Instant::now();
        let mut timers = Timers::default();
        recycle(&mut timers, "first", now);
        // A second recycle before the login keeps the first deadline and reason.
        let later = now + Duration::from_secs(5);
        recycle(&mut timers, "second", later);
        assert_eq!(
            timers.recycle.as_ref().map(|(at, _)| *at),
            Some(now + GRACE)
        );
        assert_eq!(
            timers.recycle_due().map(|e| e.message),
            Some("first".into())
        );
        assert!(timers.recycle_due().is_none(), "reported once");
    }

    #[test]
    fn a_login_after_a_recycle_calls_the_report_off() {
        let now = Instant::now();
        let mut timers = Timers::default();
        recycle(&mut timers, "recycle", now);
        timers.on_step(&connected(), now, GRACE);
        assert!(timers.recycle_due().is_none());
    }

    #[test]
    fn a_reported_drop_after_a_recycle_replaces_its_report() {
        let now = Instant::now();
        for reported in [
            Step::ConnectionLost(SessionEvent::Reconnecting {
                error: Some(lost("reset")),
            }),
            Step::Emit(SessionEvent::Reconnecting {
                error: Some(lost("503")),
            }),
        ] {
            let mut timers = Timers::default();
            recycle(&mut timers, "recycle", now);
            timers.on_step(&reported, now, GRACE);
            assert!(timers.recycle_due().is_none(), "{reported:?}");
        }
    }

    #[test]
    fn a_pending_end_follows_the_pair_code() {
        let now = Instant::now();
        let first = now + Duration::from_secs(60);
        let mut timers = Timers::default();
        // While the QR codes rotate there is no end to move.
        timers.on_pair_code_refresh(Some(first), now);
        assert_eq!(timers.end_at, None);

        timers.on_step(&Step::AwaitPairCode(first), now, GRACE);
        assert_eq!(timers.end_at, Some(first));
        let renewed = now + Duration::from_secs(180);
        timers.on_pair_code_refresh(Some(renewed), now);
        assert_eq!(timers.end_at, Some(renewed), "waits for the new code");
        timers.on_pair_code_refresh(None, now);
        assert_eq!(timers.end_at, Some(now), "no new code: ends now");

        // Pairing, or the login, calls the end off.
        for step in [Step::Paired, connected()] {
            let mut timers = Timers::default();
            timers.on_step(&Step::AwaitPairCode(first), now, GRACE);
            timers.on_step(&step, now, GRACE);
            assert_eq!(timers.end_at, None, "{step:?}");
        }
    }

    #[test]
    fn the_forwarder_wants_server_acks() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let interest = Forwarder::new(tx).interest();
        // Without it every send would wait for an ack that never reaches the pump.
        assert!(interest.wants(EventKind::ServerAck));
        for kind in [
            EventKind::Connected,
            EventKind::Disconnected,
            EventKind::PairingQrCode,
            EventKind::PairingCodeRefresh,
            EventKind::LoggedOut,
            EventKind::Receipt,
            EventKind::Messages,
            EventKind::IncomingCall,
            EventKind::MissedCall,
        ] {
            assert!(interest.wants(kind), "{kind:?}");
        }
        // Narrowed: the library does not dispatch what the pump ignores.
        assert!(!interest.wants(EventKind::HistorySync));
        assert!(!interest.wants(EventKind::OfflineSyncCompleted));
    }
}
