//! The leases this worker holds, and what it does with them: claiming a device before its
//! session opens, renewing every held lease every third of the period, closing a session
//! whose lease is lost or whose local deadline passed, the balance pass (membership
//! heartbeat, fair share, claiming unowned devices, giving back the excess), the staggered
//! session starts, and the hand-over at a stop (close every session, then release). The
//! rules are `wa_core::lease` and [`crate::balance`]; this module carries them out.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::{Semaphore, watch};
use uuid::Uuid;
use wa_core::devices::{Device, DeviceStatus as S, DeviceUpdate};
use wa_core::lease::{self, Claim, Fence, Hold, Member, Owner, Renewal, Timing, Watch};
use wa_core::provider::{ProviderFailure, SessionEvent};
use wa_core::store::{PageRequest, Store, StoreError};
use wa_core::time::{self, OffsetDateTime};
use wa_core::webhooks::payload;
use wa_errors::ErrorCode;

use wa_core::queue::{COMMANDS, enqueue_batch};

use crate::Worker;
use crate::balance::{self, Holding, Pick, Route};
use crate::restore::send_command;
use crate::session::stopped_or_logged_out;

/// Renewals (and releases) in flight at once.
const RENEWALS_AT_ONCE: usize = 16;

/// Devices read per page by a balance pass.
const BALANCE_PAGE: u32 = 200;

/// A lease this worker holds.
#[derive(Clone)]
struct Held {
    epoch: u64,
    /// When the last successful acquire or renewal was sent (monotonic).
    sent: Instant,
    /// The store with every write conditioned on this lease.
    store: Arc<dyn Store>,
    /// The link request whose linking session this worker opened under this lease.
    linking: Option<LinkRequest>,
    /// The device as read last under this lease, for the sends that follow
    /// ([`Leases::known_device`]).
    device: Option<Device>,
}

/// A request to link a device, as its record shows it while `initializing`: every request
/// (create, new QR, pair code) writes a new `updated_at`, so two commands of one request
/// (a command queued again, or delivered twice) show the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkRequest {
    pub asked_at: wa_core::time::OffsetDateTime,
    pub pair_phone: Option<String>,
}

/// This worker's leases: who it is, the lease period, what it holds, what it watches of
/// other workers' leases, and the gate of session starts.
pub struct Leases {
    pub owner: Owner,
    pub timing: Timing,
    held: Mutex<HashMap<Uuid, Held>>,
    watches: Mutex<HashMap<Uuid, Watch>>,
    /// Devices a command is being handled for (kept when the share is over).
    busy: Mutex<HashMap<Uuid, usize>>,
    /// `WA_RECONNECT_CONCURRENCY` permits: session starts at once.
    starts: Arc<Semaphore>,
    /// Whether the commands left in flight by the fleet's last run were taken back.
    took_back: std::sync::atomic::AtomicBool,
    /// Whether the store is this process's alone ([`Leases::set_exclusive`]).
    exclusive: std::sync::atomic::AtomicBool,
    /// This worker's inbox, and the live workers' (`crate::forward`).
    pub inboxes: crate::forward::Inboxes,
}

impl Leases {
    /// The leases of `owner`, renewed with `ttl`, opening at most `starts` sessions at once.
    pub fn new(owner: Owner, ttl: Duration, starts: usize) -> Leases {
        Leases {
            owner,
            timing: Timing { ttl },
            held: Mutex::default(),
            watches: Mutex::default(),
            busy: Mutex::default(),
            starts: Arc::new(Semaphore::new(starts.max(1))),
            took_back: std::sync::atomic::AtomicBool::new(false),
            exclusive: std::sync::atomic::AtomicBool::new(false),
            inboxes: crate::forward::Inboxes::default(),
        }
    }

    /// The store is this process's alone (the embedded server's SQLite file, which it keeps
    /// locked): every lease another owner holds was left by an earlier run of this process,
    /// and is taken at once ([`balance::approach_exclusive`]) instead of after a full period.
    pub fn set_exclusive(&self) {
        self.exclusive
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub(crate) fn is_exclusive(&self) -> bool {
        self.exclusive.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The fenced view of a held device's lease; `None` when this worker does not hold it.
    pub fn store_for(&self, device_id: Uuid) -> Option<Arc<dyn Store>> {
        self.held
            .lock()
            .expect("leases lock")
            .get(&device_id)
            .map(|h| h.store.clone())
    }

    /// Whether this worker holds the device's lease.
    pub fn holds(&self, device_id: Uuid) -> bool {
        self.held
            .lock()
            .expect("leases lock")
            .contains_key(&device_id)
    }

    /// The device as this worker read it last under its lease, while nothing since can
    /// have changed its status: a device's status changes only by its session (whose
    /// events this worker applies, `wa_core::lifecycle::changes_device`) or by a request
    /// that queues a command for it behind the ones already queued
    /// ([`crate::commands::uses_known_device`]). `None` when it must be read.
    pub(crate) fn known_device(&self, device_id: Uuid) -> Option<Device> {
        let held = self.held.lock().expect("leases lock");
        held.get(&device_id).and_then(|h| h.device.clone())
    }

    /// Keeps `device` as the device known under its lease (`None` forgets it); nothing
    /// when the lease is not held.
    pub(crate) fn know_device(&self, device_id: Uuid, device: Option<&Device>) {
        if let Some(h) = self.held.lock().expect("leases lock").get_mut(&device_id) {
            h.device = device.cloned();
        }
    }

    /// The devices whose leases this worker holds, in device id order.
    pub fn held(&self) -> Vec<Uuid> {
        let mut ids: Vec<_> = self
            .held
            .lock()
            .expect("leases lock")
            .keys()
            .copied()
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Whether this worker is to open a linking session for `request` of a held device:
    /// not when it opened one for that very request already, whose QR may not be stored
    /// yet ([`crate::commands::opens_link`]); the request is remembered when it is.
    pub(crate) fn start_link(&self, device_id: Uuid, request: LinkRequest) -> bool {
        let mut held = self.held.lock().expect("leases lock");
        let Some(h) = held.get_mut(&device_id) else {
            return true;
        };
        let opens = crate::commands::opens_link(h.linking.as_ref(), &request);
        if opens {
            h.linking = Some(request);
        }
        opens
    }

    /// Forgets the link request of a device whose link did not complete here (it is
    /// tried again).
    pub(crate) fn forget_link(&self, device_id: Uuid) {
        if let Some(h) = self.held.lock().expect("leases lock").get_mut(&device_id) {
            h.linking = None;
        }
    }

    fn take(&self, device_id: Uuid) -> Option<Held> {
        self.held.lock().expect("leases lock").remove(&device_id)
    }

    /// Marks a command of the device as being handled until the guard drops.
    pub(crate) fn busy(self: &Arc<Self>, device_id: Uuid) -> BusyGuard {
        *self
            .busy
            .lock()
            .expect("busy lock")
            .entry(device_id)
            .or_default() += 1;
        BusyGuard {
            leases: self.clone(),
            device_id,
        }
    }

    fn is_busy(&self, device_id: Uuid) -> bool {
        self.busy
            .lock()
            .expect("busy lock")
            .contains_key(&device_id)
    }

    fn approach(&self, seen: Option<&lease::Lease>) -> lease::Approach {
        if self.is_exclusive() {
            return balance::approach_exclusive(seen);
        }
        let now = Instant::now();
        let watch = seen.map(|l| {
            let mut watches = self.watches.lock().expect("watches lock");
            let w = lease::observe(watches.get(&l.device_id).copied(), l, now);
            watches.insert(l.device_id, w);
            w
        });
        lease::approach(seen, watch.as_ref(), &self.owner, now)
    }
}

/// The sandbox records each session it opens under the lease this worker holds.
impl wa_core::provider::SessionHolder for Leases {
    fn worker_id(&self) -> String {
        self.owner.worker_id.clone()
    }

    fn epoch(&self, device_id: Uuid) -> Option<u64> {
        self.held
            .lock()
            .expect("leases lock")
            .get(&device_id)
            .map(|h| h.epoch)
    }
}

/// Holds a device "busy" (a command of it in hand) while alive.
pub(crate) struct BusyGuard {
    leases: Arc<Leases>,
    device_id: Uuid,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let mut busy = self.leases.busy.lock().expect("busy lock");
        if let Some(n) = busy.get_mut(&self.device_id) {
            *n -= 1;
            if *n == 0 {
                busy.remove(&self.device_id);
            }
        }
    }
}

impl Worker {
    /// The store for writes made on behalf of the device's session: the fenced view of its
    /// lease. `Fenced` when this worker does not hold the lease (nothing may be written for
    /// the device from here).
    pub fn session_store(&self, device_id: Uuid) -> Result<Arc<dyn Store>, StoreError> {
        self.leases.store_for(device_id).ok_or(StoreError::Fenced)
    }

    /// Where a command for the device goes ([`balance::route`]), from this worker's
    /// holdings and the stored lease, with the lease's holder when it is another.
    pub(crate) async fn route(
        &self,
        device_id: Uuid,
    ) -> Result<(Route, Option<Owner>), StoreError> {
        if self.leases.holds(device_id) {
            return Ok((Route::Here, None));
        }
        let seen = self.store.get_lease(device_id).await?;
        let route = balance::route(false, self.leases.approach(seen.as_ref()));
        Ok((route, seen.and_then(|l| l.owner)))
    }

    /// Claims the device's lease (`unchanged`: the version watched for a full period, for
    /// another owner's lease). Returns the fenced view, or `None` when another worker
    /// holds it (the claim lost a race, or the lease was renewed meanwhile).
    pub(crate) async fn claim(
        &self,
        device_id: Uuid,
        unchanged: Option<u64>,
    ) -> Result<Option<Arc<dyn Store>>, StoreError> {
        if let Some(store) = self.leases.store_for(device_id) {
            return Ok(Some(store));
        }
        let sent = Instant::now();
        let claim = Claim {
            device_id,
            owner: self.leases.owner.clone(),
            ttl: self.leases.timing.ttl,
            now: time::now(),
            unchanged,
        };
        let lease = match self.store.acquire_lease(&claim).await {
            Ok(l) => l,
            Err(StoreError::Conflict("lease")) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(fence) = Fence::of(&lease) else {
            return Ok(None);
        };
        let store = self.store.fenced(fence);
        tracing::info!(%device_id, epoch = lease.epoch, "lease taken");
        self.leases.held.lock().expect("leases lock").insert(
            device_id,
            Held {
                epoch: lease.epoch,
                sent,
                store: store.clone(),
                linking: None,
                device: None,
            },
        );
        Ok(Some(store))
    }

    /// The lease is gone (lost, past its local deadline, or a write was fenced): closes
    /// the session and stops writing for the device. Nothing is written to the store.
    pub(crate) async fn lose(&self, device_id: Uuid, why: &str) {
        if self.leases.take(device_id).is_some() {
            tracing::warn!(%device_id, why, "lease lost; closing the session");
            self.provider.disconnect(device_id).await;
        }
    }

    /// Hands the device over: closes its session, then releases its lease (free for any
    /// worker at once).
    pub(crate) async fn give_back(&self, device_id: Uuid) {
        let Some(held) = self.leases.take(device_id) else {
            return;
        };
        self.provider.disconnect(device_id).await;
        match self
            .store
            .release_lease(device_id, &self.leases.owner, held.epoch)
            .await
        {
            Ok(_) => tracing::info!(%device_id, epoch = held.epoch, "lease released"),
            // Taken over meanwhile, or the store is away: it expires on its own.
            Err(e) => tracing::warn!(%device_id, error = %e, "could not release a lease"),
        }
    }

    /// Renews every held lease that is due ([`lease::hold`]); closes the sessions whose
    /// lease is lost or whose local deadline passed.
    pub(crate) async fn renew_due(&self) {
        let now = Instant::now();
        let due: Vec<(Uuid, Held)> = {
            let held = self.leases.held.lock().expect("leases lock");
            held.iter().map(|(id, h)| (*id, h.clone())).collect()
        };
        let timing = self.leases.timing;
        futures_util::stream::iter(due)
            .for_each_concurrent(RENEWALS_AT_ONCE, |(id, h)| async move {
                match lease::hold(timing, h.sent, now) {
                    Hold::RenewAt(_) => {}
                    Hold::Close => self.lose(id, "the lease could not be renewed in time").await,
                    Hold::RenewNow => {
                        let sent = Instant::now();
                        let outcome = self
                            .store
                            .renew_lease(id, &self.leases.owner, h.epoch, time::now(), timing.ttl)
                            .await;
                        match lease::renewal(&outcome) {
                            Renewal::Renewed => {
                                if let Some(held) =
                                    self.leases.held.lock().expect("leases lock").get_mut(&id)
                                    && held.epoch == h.epoch
                                {
                                    held.sent = sent;
                                }
                            }
                            Renewal::Lost => self.lose(id, "another worker has the lease").await,
                            Renewal::Failed => {
                                if let Err(e) = outcome {
                                    tracing::warn!(device_id = %id, error = %e, "lease renewal failed; will retry");
                                }
                            }
                        }
                    }
                }
            })
            .await;
    }

    /// This worker's membership record as of now.
    fn member(&self) -> Member {
        Member {
            owner: self.leases.owner.clone(),
            inbox: self.leases.inboxes.own().unwrap_or_default(),
            expires_at: time::now() + self.leases.timing.ttl,
            sessions: self.leases.held().len() as u32,
            capacity: match self.capacity.room() {
                crate::capacity::Room::Sessions(n) => n.min(u64::from(u32::MAX)) as u32,
                _ => u32::MAX,
            },
        }
    }

    /// Writes this worker's membership record (taking over its id from an earlier run).
    pub(crate) async fn join(&self) -> Result<(), StoreError> {
        self.store.register_worker(&self.member()).await
    }

    /// One balance pass: the membership heartbeat, then the fair share of the devices
    /// that want a session: held devices that no longer want one and the excess over the
    /// share are given back; unowned ones are claimed (and their sessions started) up to
    /// the share, their pending sends queued again when `redrive` (the restore queues
    /// them itself, in pages).
    pub(crate) async fn balance(self: &Arc<Self>, redrive: bool) -> Result<(), StoreError> {
        match self.store.heartbeat_worker(&self.member()).await {
            Err(StoreError::NotFound) => self.join().await?,
            r => r?,
        }
        // Every record, in the same one read: the long-gone workers' inboxes are deleted.
        let now = time::now();
        let mut members = self.store.live_workers(OffsetDateTime::UNIX_EPOCH).await?;
        self.sweep_inboxes(&members, now).await;
        members.retain(|m| m.is_live(now));
        self.leases.inboxes.know(&members);
        self.take_back_if_alone(&members).await;
        let live = balance::fleet_size(members.len(), self.leases.is_exclusive());
        let mut wanted: Vec<Device> = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .devices_with_status(
                    &[S::Connected, S::Connecting],
                    PageRequest {
                        limit: BALANCE_PAGE,
                        after,
                    },
                )
                .await?;
            wanted.extend(page.items);
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let share = balance::fair_share(wanted.len(), live);
        let wanted_ids: HashSet<Uuid> = wanted.iter().map(|d| d.device_id).collect();
        for id in self.leases.held() {
            if wanted_ids.contains(&id) || self.leases.is_busy(id) {
                continue;
            }
            // Not listed: stopped, logged out, linking, or connected since the listing; its
            // status now decides, so a device whose link just completed keeps its session.
            let now = self.store.get_device(id).await?.map(|d| d.status);
            if !balance::keeps_unlisted(now) {
                self.give_back(id).await;
            }
        }
        let holdings: Vec<Holding> = self
            .leases
            .held()
            .into_iter()
            .filter(|id| wanted_ids.contains(id))
            .map(|device_id| Holding {
                device_id,
                busy: self.leases.is_busy(device_id),
            })
            .collect();
        for id in balance::to_release(&holdings, share) {
            tracing::info!(device_id = %id, share, "over the fair share: handing a device over");
            self.give_back(id).await;
        }
        for d in wanted {
            if self.leases.holds(d.device_id) {
                continue;
            }
            let held = self
                .leases
                .held()
                .iter()
                .filter(|id| wanted_ids.contains(id))
                .count();
            let seen = self.store.get_lease(d.device_id).await?;
            let Pick::Claim { unchanged } =
                balance::pick(self.leases.approach(seen.as_ref()), held, share)
            else {
                continue;
            };
            if self.has_no_room_for(d.device_id) {
                continue;
            }
            if let Some(store) = self.claim(d.device_id, unchanged).await? {
                // Until its start, the device says it is not connected here.
                self.mark_connecting(&*store, &d).await?;
                self.start_session(d.device_id);
                if redrive {
                    self.redrive(d.device_id).await?;
                }
            }
        }
        Ok(())
    }

    /// Once this worker is the only live member, it is the commands queue's only consumer:
    /// what was in flight died with the workers before it, and is made visible again at
    /// once instead of after its visibility timeout. Done once per run.
    async fn take_back_if_alone(&self, members: &[Member]) {
        use std::sync::atomic::Ordering;
        let alone = self.leases.is_exclusive()
            || balance::alone(members.iter().map(|m| &m.owner), &self.leases.owner);
        if self.leases.took_back.load(Ordering::SeqCst) || !alone {
            return;
        }
        self.leases.took_back.store(true, Ordering::SeqCst);
        match self.queue.release_in_flight(COMMANDS).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                commands = n,
                "took back commands left in flight by the last run"
            ),
            Err(e) => tracing::error!(error = %e, "could not take back in-flight commands"),
        }
    }

    /// Queues again the send commands of a device just claimed whose sends are pending (a
    /// page of them; the periodic re-drive finds any beyond): their commands may have
    /// died in flight with the device's last worker. A duplicate is harmless: the send
    /// checks the message's status first.
    async fn redrive(&self, device_id: Uuid) -> Result<(), StoreError> {
        let pending = self
            .store
            .pending_messages(Some(device_id), self.restore_page)
            .await?;
        if pending.is_empty() {
            return Ok(());
        }
        tracing::info!(%device_id, messages = pending.len(), "queued a taken-over device's pending sends again");
        enqueue_batch(&*self.queue, pending.iter().map(send_command).collect())
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))
    }

    /// Opens the session of a device just claimed, behind the start gate
    /// (`WA_RECONNECT_CONCURRENCY` at once, each after [`balance::start_jitter`]).
    pub(crate) fn start_session(self: &Arc<Self>, device_id: Uuid) {
        let this = self.clone();
        tokio::spawn(async move {
            let Ok(_permit) = this.leases.starts.clone().acquire_owned().await else {
                return;
            };
            let wait = balance::start_jitter(this.leases.timing.ttl, rand::random::<f64>());
            tokio::time::sleep(wait).await;
            if let Err(e) = this.resume_held(device_id).await {
                tracing::error!(%device_id, error = %e, "could not start a session");
                if matches!(e, StoreError::Fenced) {
                    this.lose(device_id, "a write was fenced").await;
                }
            }
        });
    }

    /// Records a `connected` device (as the last session left it) as `connecting`: its
    /// session is not open here yet.
    async fn mark_connecting(&self, store: &dyn Store, d: &Device) -> Result<(), StoreError> {
        if d.status != S::Connected {
            return Ok(());
        }
        let mut u = DeviceUpdate::status(S::Connecting);
        u.updated_at = Some(time::now());
        let mut next = d.clone();
        u.apply_to(&mut next);
        let events: Vec<_> = payload::device(d.status, &next).into_iter().collect();
        match store
            .update_device(d.device_id, &u, &[S::Connected], &events)
            .await
        {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Resumes the session of a held device that wants one: `connected` is recorded as
    /// `connecting` first; a device without keys is logged out.
    pub(crate) async fn resume_held(&self, id: Uuid) -> Result<(), StoreError> {
        let store = self.session_store(id)?;
        let Some(d) = store.get_device(id).await? else {
            return Ok(());
        };
        if !balance::wants_session(d.status) {
            return Ok(());
        }
        self.mark_connecting(&*store, &d).await?;
        if !self.provider.has_credentials(id).await {
            let error = ProviderFailure::new(
                ErrorCode::LoggedOut,
                "the session's keys are gone; link the device again",
            );
            return self
                .apply_event(id, &SessionEvent::LoggedOut { error })
                .await;
        }
        tracing::info!(device_id = %id, "resuming session");
        if let Err(error) = self.provider.resume(id).await {
            self.apply_event(id, &stopped_or_logged_out(error)).await?;
        }
        Ok(())
    }

    /// Keeps the leases until `stop`: renewals every [`Timing::retry_pause`] check, a
    /// balance pass every third of the period.
    pub(crate) async fn keep_leases(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let timing = self.leases.timing;
        let tick = timing.retry_pause().max(Duration::from_millis(100));
        let mut renew = tokio::time::interval(tick);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pass = tokio::time::interval(timing.renew_every());
        pass.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The restore just made the first pass.
        pass.tick().await;
        loop {
            tokio::select! {
                _ = renew.tick() => self.renew_due().await,
                _ = pass.tick() => {
                    if let Err(e) = self.balance(true).await {
                        tracing::warn!(error = %e, "balance pass failed");
                    }
                }
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return;
                    }
                }
            }
        }
    }

    /// The hand-over at a stop: every session closed, then its lease released; then the
    /// membership record deleted.
    pub(crate) async fn hand_over(&self) {
        let held = self.leases.held();
        tracing::info!(devices = held.len(), "handing devices over");
        futures_util::stream::iter(held)
            .for_each_concurrent(
                RENEWALS_AT_ONCE,
                |id| async move { self.give_back(id).await },
            )
            .await;
        if let Err(e) = self.store.deregister_worker(&self.leases.owner).await {
            tracing::warn!(error = %e, "could not delete the membership record");
        }
    }
}
