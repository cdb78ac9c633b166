//! Device leases and worker membership: the records, and every rule about them as pure
//! functions. A linked device is served by one worker at a time: the one holding its
//! lease (owner, epoch, expiry, a version changed at every write). The rules follow the
//! AWS DynamoDB Lock Client and the Kinesis Client Library's lease table:
//!
//! - **In the store** ([`acquire`], [`renew`], [`release`], [`fence_holds`]): both adapters
//!   read the record, apply these functions and write the result conditioned on what they
//!   read, so of racing claimants exactly one wins.
//! - **The claimant** ([`observe`], [`approach`]): a lease held by another worker is
//!   taken only once the claimant has seen the same version for a full lease period on its
//!   own monotonic clock (the Lock Client's rule). The stored expiry is the holder's word,
//!   never compared with the claimant's clock: no host trusts another host's clock, so a
//!   skewed clock can neither steal a live lease nor keep a dead one.
//! - **The holder** ([`Timing`], [`hold`], [`renewal`]): renew every third of the lease
//!   period; close the session at the local deadline (two thirds of the period after the
//!   last successful renewal was sent) when renewals keep failing, so the session is closed
//!   before anyone may take the lease; a renewal refused by the store means the lease is
//!   lost: close at once.
//! - **Epochs** ([`next_epoch`]): raised at every change of owner, never lowered; the
//!   fencing token of every write made for a session ([`Fence`], `LeaseStore::fenced`).
//! - **Membership** ([`Member`], [`heartbeat`], [`deregister`]): each worker's record
//!   (inbox, heartbeat expiry, sessions held, capacity left).

use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::settings::whole_number;
use crate::store::StoreError;
use crate::time::{self, OffsetDateTime};

/// The environment variable of the lease period.
pub const TTL_VAR: &str = "WA_LEASE_TTL_SECS";

/// The lease period when `WA_LEASE_TTL_SECS` is unset.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

/// The shortest and longest lease periods `WA_LEASE_TTL_SECS` accepts: three renewals of a
/// second at least, an hour at most.
const TTL_SECS: std::ops::RangeInclusive<u64> = 3..=3600;

/// The lease period a `WA_LEASE_TTL_SECS` value sets: [`DEFAULT_TTL`] when unset or blank;
/// an error naming the accepted range for anything but whole seconds from 3 to 3600.
pub fn ttl_setting(value: Option<&str>) -> Result<Duration, String> {
    let problem = format!(
        "must be a number of seconds between {} and {}",
        TTL_SECS.start(),
        TTL_SECS.end()
    );
    whole_number(value, DEFAULT_TTL.as_secs(), TTL_SECS, &problem).map(Duration::from_secs)
}

/// The environment variable of the worker's name.
pub const WORKER_ID_VAR: &str = "WA_WORKER_ID";

/// The longest worker id `WA_WORKER_ID` accepts: with a prefix and `.fifo` it still names
/// an SQS queue (80 characters at most).
const WORKER_ID_MAX: usize = 64;

/// The worker id a `WA_WORKER_ID` value sets: `worker-` and a new random id when unset or
/// blank (unique per process start); an error for anything but 1 to 64 ASCII letters,
/// digits, `-` or `_` (the characters an SQS queue name allows).
pub fn worker_id_setting(value: Option<&str>) -> Result<String, String> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(format!("worker-{}", Uuid::new_v4().simple())),
        Some(v)
            if v.len() <= WORKER_ID_MAX
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Ok(v.to_owned())
        }
        Some(_) => Err(format!(
            "must be 1 to {WORKER_ID_MAX} ASCII letters, digits, '-' or '_'"
        )),
    }
}

/// Who holds a lease: a worker (`WA_WORKER_ID`) in one run of its process. Two runs of a
/// worker with one id are two owners: a restarted worker waits for its previous run's
/// leases like any other claimant, since it cannot know that run has stopped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    pub worker_id: String,
    /// New at every process start.
    pub incarnation: Uuid,
}

impl Owner {
    /// The owner `worker_id` in a new run (a fresh incarnation).
    pub fn new(worker_id: impl Into<String>) -> Owner {
        Owner {
            worker_id: worker_id.into(),
            incarnation: Uuid::now_v7(),
        }
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.worker_id, self.incarnation)
    }
}

/// The lease of one linked device, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub device_id: Uuid,
    /// `None` once released: anyone may take it at once.
    pub owner: Option<Owner>,
    /// Raised at every change of owner (the fencing token); kept by renewals and releases.
    pub epoch: u64,
    /// When the lease ends unless renewed, by the clock of the worker that last wrote it:
    /// for people and listings; no rule compares it with another host's clock.
    pub expires_at: OffsetDateTime,
    /// The lease period its holder renews it with.
    pub ttl: Duration,
    /// Changed at every write (acquire, renew, release): a claimant that sees the same
    /// version for a full `ttl` knows the holder stopped renewing.
    pub version: u64,
}

/// A request to take (or keep) a device's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub device_id: Uuid,
    pub owner: Owner,
    pub ttl: Duration,
    /// The claimant's clock: the new expiry is `now + ttl`. It never decides whether
    /// another owner's lease is over.
    pub now: OffsetDateTime,
    /// The version the claimant has watched unchanged for a full lease period on its own
    /// monotonic clock ([`approach`]): another owner's lease is taken only while it still
    /// has this version.
    pub unchanged: Option<u64>,
}

/// Why a claim may take a lease: one row of [`grant`]'s table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// No lease yet.
    Free,
    /// Its owner released it.
    Released,
    /// The claimant holds it already (it is renewed, same epoch).
    Own,
    /// Another owner's, still at the version the claimant watched unchanged for a full
    /// lease period: its holder stopped renewing, and has closed its session.
    Expired,
}

/// Whether `claim` may take the lease `seen` (the stored record, `None` when there is
/// none), and by which rule; `None` while another owner holds it.
pub fn grant(seen: Option<&Lease>, claim: &Claim) -> Option<Grant> {
    let Some(lease) = seen else {
        return Some(Grant::Free);
    };
    match &lease.owner {
        None => Some(Grant::Released),
        Some(o) if *o == claim.owner => Some(Grant::Own),
        Some(_) if claim.unchanged == Some(lease.version) => Some(Grant::Expired),
        Some(_) => None,
    }
}

/// The epoch of a lease taken by `grant` from `seen`: 1 for a new lease, the same for its
/// own holder, one more for a new owner.
pub fn next_epoch(seen: Option<&Lease>, grant: Grant) -> u64 {
    match (seen, grant) {
        (None, _) => 1,
        (Some(l), Grant::Own) => l.epoch,
        (Some(l), _) => l.epoch.saturating_add(1),
    }
}

fn next_version(seen: Option<&Lease>) -> u64 {
    seen.map_or(1, |l| l.version.saturating_add(1))
}

/// The lease once `claim` has taken it from `seen`; `Conflict("lease")` while another
/// owner holds it.
pub fn acquire(seen: Option<&Lease>, claim: &Claim) -> Result<Lease, StoreError> {
    let g = grant(seen, claim).ok_or(StoreError::Conflict("lease"))?;
    Ok(Lease {
        device_id: claim.device_id,
        owner: Some(claim.owner.clone()),
        epoch: next_epoch(seen, g),
        expires_at: time::truncate(claim.now + claim.ttl),
        ttl: claim.ttl,
        version: next_version(seen),
    })
}

/// Whether `owner` holds `seen` at `epoch` (expired or not: until someone takes it over,
/// nobody else has written under another epoch).
fn held(seen: Option<&Lease>, owner: &Owner, epoch: u64) -> bool {
    seen.is_some_and(|l| l.owner.as_ref() == Some(owner) && l.epoch == epoch)
}

/// The lease renewed by its holder until `now + ttl`; `Conflict("lease")` when `owner`
/// does not hold it at `epoch` any more (taken over, released, or never there).
pub fn renew(
    seen: Option<&Lease>,
    owner: &Owner,
    epoch: u64,
    now: OffsetDateTime,
    ttl: Duration,
) -> Result<Lease, StoreError> {
    match seen {
        Some(l) if held(seen, owner, epoch) => Ok(Lease {
            expires_at: time::truncate(now + ttl),
            ttl,
            version: next_version(seen),
            ..l.clone()
        }),
        _ => Err(StoreError::Conflict("lease")),
    }
}

/// The lease released by its holder: no owner, the same epoch (the next owner gets one
/// more); `Conflict("lease")` when `owner` does not hold it at `epoch`.
pub fn release(seen: Option<&Lease>, owner: &Owner, epoch: u64) -> Result<Lease, StoreError> {
    match seen {
        Some(l) if held(seen, owner, epoch) => Ok(Lease {
            owner: None,
            version: next_version(seen),
            ..l.clone()
        }),
        _ => Err(StoreError::Conflict("lease")),
    }
}

/// The lease a session's writes are conditioned on (`LeaseStore::fenced`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub device_id: Uuid,
    pub owner: Owner,
    pub epoch: u64,
}

impl Fence {
    /// The fence of the session opened under `lease`; `None` for a released lease.
    pub fn of(lease: &Lease) -> Option<Fence> {
        Some(Fence {
            device_id: lease.device_id,
            owner: lease.owner.clone()?,
            epoch: lease.epoch,
        })
    }
}

/// Whether a write made under `fence` may commit: the device's lease `seen` is still held
/// by the fence's owner at its epoch.
pub fn fence_holds(seen: Option<&Lease>, fence: &Fence) -> bool {
    held(seen, &fence.owner, fence.epoch)
}

/// What a claimant remembers of a lease it does not hold: the version it last saw change,
/// and when, on its own monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watch {
    pub version: u64,
    pub since: Instant,
}

/// The watch after reading `seen` at `now`: kept while the version stays, started anew
/// when it changed (or on the first look).
pub fn observe(prev: Option<Watch>, seen: &Lease, now: Instant) -> Watch {
    match prev {
        Some(w) if w.version == seen.version => w,
        _ => Watch {
            version: seen.version,
            since: now,
        },
    }
}

/// What a claimant does about a lease it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approach {
    /// Claim it (`Claim::unchanged` set to this).
    Take { unchanged: Option<u64> },
    /// Another owner holds it: read it again at `until` (monotonic).
    Wait { until: Instant },
}

/// Whether `me` should claim the lease `seen` now: a free, released or own lease at once;
/// another owner's only once `watch` ([`observe`], updated with this read) has seen its
/// version unchanged for the lease's full period on the claimant's monotonic clock
/// (`mono`). The lease's stored expiry plays no part: it was written by another host's
/// clock.
pub fn approach(
    seen: Option<&Lease>,
    watch: Option<&Watch>,
    me: &Owner,
    mono: Instant,
) -> Approach {
    let Some(lease) = seen else {
        return Approach::Take { unchanged: None };
    };
    if lease.owner.as_ref().is_none_or(|o| o == me) {
        return Approach::Take { unchanged: None };
    }
    let since = match watch {
        Some(w) if w.version == lease.version => w.since,
        _ => mono,
    };
    let until = since + lease.ttl;
    if until <= mono {
        Approach::Take {
            unchanged: Some(lease.version),
        }
    } else {
        Approach::Wait { until }
    }
}

/// The holder's clock of one lease period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub ttl: Duration,
}

impl Timing {
    /// How often the holder renews: a third of the period, so one failed renewal still
    /// leaves another before the deadline.
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    /// The local deadline of a lease whose last successful acquire or renewal was sent at
    /// `sent` (taken before the request left: the store's write came later): two thirds of
    /// the period, which leaves the last third to close the session before another worker
    /// may take the lease: a claimant's full period of watching one version starts only
    /// after that renewal was written, so it ends at least a whole period after `sent`.
    pub fn deadline(&self, sent: Instant) -> Instant {
        sent + self.ttl - self.ttl / 3
    }

    /// The pause between retries of a failed renewal.
    pub fn retry_pause(&self) -> Duration {
        self.ttl / 30
    }
}

/// What the holder of a lease does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Nothing until `at` (monotonic), then renew.
    RenewAt(Instant),
    /// Renew now.
    RenewNow,
    /// The local deadline has passed: close the session, then stop writing for it.
    Close,
}

/// The holder's next step at `now` (monotonic) when its last successful acquire or renewal
/// was sent at `sent`.
pub fn hold(timing: Timing, sent: Instant, now: Instant) -> Hold {
    if now >= timing.deadline(sent) {
        Hold::Close
    } else if now >= sent + timing.renew_every() {
        Hold::RenewNow
    } else {
        Hold::RenewAt(sent + timing.renew_every())
    }
}

/// What the outcome of a renewal means to its holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Renewed: the deadline moves to the one of this renewal's send time.
    Renewed,
    /// Another owner has the lease, or it was released: close the session at once.
    Lost,
    /// The store did not answer (throttled, unreachable): retry until the deadline.
    Failed,
}

/// The meaning of a renewal's outcome (`LeaseStore::renew_lease`).
pub fn renewal(outcome: &Result<Lease, StoreError>) -> Renewal {
    match outcome {
        Ok(_) => Renewal::Renewed,
        Err(StoreError::Conflict("lease") | StoreError::Fenced) => Renewal::Lost,
        Err(_) => Renewal::Failed,
    }
}

/// A worker's membership record: what the fleet knows of each live worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub owner: Owner,
    /// The worker's own queue, where commands for its devices go.
    pub inbox: String,
    /// The worker counts as gone after this (by its own clock) unless it heartbeats.
    pub expires_at: OffsetDateTime,
    /// How many sessions it holds.
    pub sessions: u32,
    /// How many more it can take.
    pub capacity: u32,
}

impl Member {
    /// Whether the worker counts as live at `now`.
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.expires_at > now
    }
}

/// Whether `new` may replace the stored membership `seen` as a heartbeat: only the same
/// run of the worker (`NotFound` when there is no record, `Conflict("worker")` when a
/// process with the same worker id registered since: two processes share an id).
pub fn heartbeat(seen: Option<&Member>, new: &Member) -> Result<(), StoreError> {
    match seen {
        None => Err(StoreError::NotFound),
        Some(m) if m.owner == new.owner => Ok(()),
        Some(_) => Err(StoreError::Conflict("worker")),
    }
}

/// Whether deregistering `owner` deletes the stored membership `seen`: `Ok(true)` for its
/// own record, `Ok(false)` when there is none, `Conflict("worker")` when the record is
/// another run's (it stays).
pub fn deregister(seen: Option<&Member>, owner: &Owner) -> Result<bool, StoreError> {
    match seen {
        None => Ok(false),
        Some(m) if m.owner == *owner => Ok(true),
        Some(_) => Err(StoreError::Conflict("worker")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(30);

    fn owner(id: &str) -> Owner {
        Owner::new(id)
    }

    fn at(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + s).unwrap()
    }

    fn lease(owner: Option<&Owner>, epoch: u64, expires: i64, version: u64) -> Lease {
        Lease {
            device_id: Uuid::nil(),
            owner: owner.cloned(),
            epoch,
            expires_at: at(expires),
            ttl: TTL,
            version,
        }
    }

    fn claim(owner: &Owner, now: i64, unchanged: Option<u64>) -> Claim {
        Claim {
            device_id: Uuid::nil(),
            owner: owner.clone(),
            ttl: TTL,
            now: at(now),
            unchanged,
        }
    }

    #[test]
    fn the_ttl_setting() {
        assert_eq!(ttl_setting(None), Ok(DEFAULT_TTL));
        assert_eq!(ttl_setting(Some("  ")), Ok(DEFAULT_TTL));
        assert_eq!(ttl_setting(Some("45")), Ok(Duration::from_secs(45)));
        assert_eq!(ttl_setting(Some("3")), Ok(Duration::from_secs(3)));
        assert_eq!(ttl_setting(Some("3600")), Ok(Duration::from_secs(3600)));
        for bad in ["2", "0", "3601", "-5", "1.5", "ten"] {
            assert_eq!(
                ttl_setting(Some(bad)),
                Err("must be a number of seconds between 3 and 3600".into()),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_worker_id_setting() {
        for unset in [None, Some(""), Some("  ")] {
            let id = worker_id_setting(unset).unwrap();
            assert!(id.starts_with("worker-"), "{id}");
            assert_eq!(worker_id_setting(Some(&id)), Ok(id.clone()), "a valid id");
        }
        assert_ne!(
            worker_id_setting(None).unwrap(),
            worker_id_setting(None).unwrap(),
            "unique per start"
        );
        assert_eq!(worker_id_setting(Some(" w-1_a ")), Ok("w-1_a".into()));
        let longest = "w".repeat(64);
        assert_eq!(worker_id_setting(Some(&longest)), Ok(longest.clone()));
        for bad in [
            "w".repeat(65),
            "a b".into(),
            "w#1".into(),
            "w.fifo".into(),
            "wörker".into(),
        ] {
            assert_eq!(
                worker_id_setting(Some(&bad)),
                Err("must be 1 to 64 ASCII letters, digits, '-' or '_'".into()),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_free_lease_is_granted() {
        let a = owner("a");
        assert_eq!(grant(None, &claim(&a, 0, None)), Some(Grant::Free));
    }

    #[test]
    fn a_released_lease_is_granted_before_its_expiry() {
        let (a, b) = (owner("a"), owner("b"));
        let seen = lease(None, 4, 100, 9);
        assert_eq!(
            grant(Some(&seen), &claim(&b, 0, None)),
            Some(Grant::Released)
        );
        assert_eq!(
            grant(Some(&seen), &claim(&a, 0, None)),
            Some(Grant::Released)
        );
    }

    #[test]
    fn its_own_lease_is_granted_to_the_holder() {
        let a = owner("a");
        let live = lease(Some(&a), 4, 100, 9);
        let expired = lease(Some(&a), 4, -100, 9);
        assert_eq!(grant(Some(&live), &claim(&a, 0, None)), Some(Grant::Own));
        assert_eq!(grant(Some(&expired), &claim(&a, 0, None)), Some(Grant::Own));
    }

    #[test]
    fn another_run_of_the_same_worker_is_another_owner() {
        let a = owner("a");
        let restarted = owner("a");
        let live = lease(Some(&a), 4, 100, 9);
        assert_eq!(grant(Some(&live), &claim(&restarted, 0, None)), None);
    }

    #[test]
    fn a_wall_clock_past_the_expiry_takes_nothing() {
        let (a, b) = (owner("a"), owner("b"));
        let seen = lease(Some(&a), 4, 100, 9);
        assert_eq!(grant(Some(&seen), &claim(&b, 100, None)), None);
        assert_eq!(grant(Some(&seen), &claim(&b, 5_000, None)), None);
    }

    #[test]
    fn another_owners_lease_is_granted_only_at_the_version_watched() {
        let (a, b) = (owner("a"), owner("b"));
        let seen = lease(Some(&a), 4, 100, 9);
        assert_eq!(
            grant(Some(&seen), &claim(&b, 0, Some(9))),
            Some(Grant::Expired),
            "whatever the claimant's clock says of the expiry"
        );
        assert_eq!(
            grant(Some(&seen), &claim(&b, 500, Some(9))),
            Some(Grant::Expired)
        );
        assert_eq!(
            grant(Some(&seen), &claim(&b, 500, Some(8))),
            None,
            "renewed since"
        );
        assert_eq!(
            grant(Some(&seen), &claim(&b, 500, Some(10))),
            None,
            "a version it never had"
        );
    }

    #[test]
    fn epochs() {
        let a = owner("a");
        let seen = lease(Some(&a), 4, 0, 9);
        assert_eq!(next_epoch(None, Grant::Free), 1);
        assert_eq!(next_epoch(Some(&seen), Grant::Own), 4);
        for g in [Grant::Released, Grant::Expired] {
            assert_eq!(next_epoch(Some(&seen), g), 5, "{g:?}");
        }
        let last = lease(Some(&a), u64::MAX, 0, 9);
        assert_eq!(
            next_epoch(Some(&last), Grant::Expired),
            u64::MAX,
            "never wraps"
        );
    }

    #[test]
    fn acquiring_writes_owner_epoch_expiry_and_version() {
        let (a, b) = (owner("a"), owner("b"));
        let first = acquire(None, &claim(&a, 0, None)).unwrap();
        assert_eq!(first, lease(Some(&a), 1, 30, 1));
        let again = acquire(Some(&first), &claim(&a, 10, None)).unwrap();
        assert_eq!((again.epoch, again.version), (1, 2));
        assert_eq!(again.expires_at, at(40));
        assert_eq!(
            acquire(Some(&again), &claim(&b, 40, Some(again.version - 1))),
            Err(StoreError::Conflict("lease"))
        );
        let taken = acquire(Some(&again), &claim(&b, 40, Some(again.version))).unwrap();
        assert_eq!(taken.owner.as_ref(), Some(&b));
        assert_eq!((taken.epoch, taken.version), (2, 3));
    }

    #[test]
    fn expiries_are_whole_milliseconds() {
        let a = owner("a");
        let mut c = claim(&a, 0, None);
        c.now += Duration::from_nanos(1_234_567);
        let l = acquire(None, &c).unwrap();
        assert_eq!(l.expires_at, at(30) + Duration::from_millis(1));
    }

    #[test]
    fn renewing_keeps_the_epoch() {
        let (a, b) = (owner("a"), owner("b"));
        let held = lease(Some(&a), 4, 10, 9);
        let r = renew(Some(&held), &a, 4, at(5), TTL).unwrap();
        assert_eq!((r.epoch, r.version, r.expires_at), (4, 10, at(35)));
        let expired_but_untaken = renew(Some(&held), &a, 4, at(50), TTL).unwrap();
        assert_eq!(expired_but_untaken.expires_at, at(80));
        for (seen, who, epoch) in [(Some(&held), &b, 4), (Some(&held), &a, 3), (None, &a, 4)] {
            assert_eq!(
                renew(seen, who, epoch, at(5), TTL),
                Err(StoreError::Conflict("lease"))
            );
        }
        let released = lease(None, 4, 10, 9);
        assert_eq!(
            renew(Some(&released), &a, 4, at(5), TTL),
            Err(StoreError::Conflict("lease"))
        );
    }

    #[test]
    fn only_the_holder_releases_and_the_epoch_stays() {
        let (a, b) = (owner("a"), owner("b"));
        let held = lease(Some(&a), 4, 10, 9);
        let r = release(Some(&held), &a, 4).unwrap();
        assert_eq!((r.owner.clone(), r.epoch, r.version), (None, 4, 10));
        assert_eq!(
            release(Some(&held), &b, 4),
            Err(StoreError::Conflict("lease"))
        );
        assert_eq!(
            release(Some(&held), &a, 5),
            Err(StoreError::Conflict("lease"))
        );
        assert_eq!(release(Some(&r), &a, 4), Err(StoreError::Conflict("lease")));
        assert_eq!(release(None, &a, 4), Err(StoreError::Conflict("lease")));
        let next = acquire(Some(&r), &claim(&b, 0, None)).unwrap();
        assert_eq!(next.epoch, 5, "the next owner gets one more");
    }

    #[test]
    fn fences() {
        let (a, b) = (owner("a"), owner("b"));
        let held = lease(Some(&a), 4, 10, 9);
        let fence = Fence::of(&held).unwrap();
        assert_eq!(fence.epoch, 4);
        assert!(fence_holds(Some(&held), &fence));
        let expired = lease(Some(&a), 4, -10, 9);
        assert!(fence_holds(Some(&expired), &fence), "nobody took it");
        assert!(!fence_holds(Some(&lease(Some(&b), 5, 10, 10)), &fence));
        assert!(!fence_holds(Some(&lease(Some(&a), 5, 10, 10)), &fence));
        assert!(!fence_holds(Some(&lease(None, 4, 10, 10)), &fence));
        assert!(!fence_holds(None, &fence));
        assert_eq!(Fence::of(&lease(None, 4, 10, 9)), None);
    }

    #[test]
    fn a_watch_starts_at_each_new_version() {
        let a = owner("a");
        let t0 = Instant::now();
        let seen = lease(Some(&a), 4, 10, 9);
        let first = observe(None, &seen, t0);
        assert_eq!((first.version, first.since), (9, t0));
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(observe(Some(first), &seen, t1), first, "unchanged: kept");
        let renewed = lease(Some(&a), 4, 20, 10);
        let w = observe(Some(first), &renewed, t1);
        assert_eq!((w.version, w.since), (10, t1));
    }

    #[test]
    fn a_claimant_takes_what_is_free_released_or_its_own_at_once() {
        let b = owner("b");
        let mono = Instant::now();
        let take = Approach::Take { unchanged: None };
        assert_eq!(approach(None, None, &b, mono), take);
        let released = lease(None, 4, 100, 9);
        assert_eq!(approach(Some(&released), None, &b, mono), take);
        let mine = lease(Some(&b), 4, 100, 9);
        assert_eq!(approach(Some(&mine), None, &b, mono), take);
    }

    #[test]
    fn a_claimant_waits_a_full_period_of_one_version_on_its_own_clock() {
        let (a, b) = (owner("a"), owner("b"));
        let t0 = Instant::now();
        // Long past its expiry by the holder's clock: that clock's word counts for nothing.
        let seen = lease(Some(&a), 4, -1_000, 9);
        let first = observe(None, &seen, t0);
        assert_eq!(
            approach(Some(&seen), Some(&first), &b, t0),
            Approach::Wait { until: t0 + TTL }
        );
        let almost = t0 + TTL - Duration::from_millis(1);
        assert_eq!(
            approach(Some(&seen), Some(&first), &b, almost),
            Approach::Wait { until: t0 + TTL }
        );
        assert_eq!(
            approach(Some(&seen), Some(&first), &b, t0 + TTL),
            Approach::Take { unchanged: Some(9) }
        );
        // Renewed meanwhile: the wait starts again.
        let renewed = lease(Some(&a), 4, 1_000, 10);
        let t1 = t0 + TTL;
        assert_eq!(
            approach(Some(&renewed), Some(&first), &b, t1),
            Approach::Wait { until: t1 + TTL }
        );
        assert_eq!(
            approach(Some(&renewed), None, &b, t1),
            Approach::Wait { until: t1 + TTL },
            "no watch yet"
        );
    }

    #[test]
    fn another_run_of_the_same_worker_waits_too() {
        let a = owner("a");
        let restarted = owner("a");
        let t0 = Instant::now();
        let seen = lease(Some(&a), 4, 1_000, 9);
        assert_eq!(
            approach(Some(&seen), None, &restarted, t0),
            Approach::Wait { until: t0 + TTL }
        );
    }

    #[test]
    fn the_watch_uses_the_holders_period() {
        let (a, b) = (owner("a"), owner("b"));
        let t0 = Instant::now();
        let mut seen = lease(Some(&a), 4, 1_000, 9);
        seen.ttl = Duration::from_secs(60);
        let w = observe(None, &seen, t0);
        assert_eq!(
            approach(Some(&seen), Some(&w), &b, t0 + TTL),
            Approach::Wait {
                until: t0 + Duration::from_secs(60)
            }
        );
    }

    #[test]
    fn the_holders_timing() {
        let t = Timing { ttl: TTL };
        assert_eq!(t.renew_every(), Duration::from_secs(10));
        assert_eq!(t.retry_pause(), Duration::from_secs(1));
        let sent = Instant::now();
        assert_eq!(t.deadline(sent), sent + Duration::from_secs(20));
        assert!(
            t.deadline(sent) < sent + TTL,
            "the session closes before the lease can expire"
        );
    }

    #[test]
    fn the_holder_renews_every_third_and_closes_at_the_deadline() {
        let t = Timing { ttl: TTL };
        let sent = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(hold(t, sent, sent), Hold::RenewAt(sent + s(10)));
        assert_eq!(hold(t, sent, sent + s(9)), Hold::RenewAt(sent + s(10)));
        assert_eq!(hold(t, sent, sent + s(10)), Hold::RenewNow);
        assert_eq!(hold(t, sent, sent + s(19)), Hold::RenewNow, "retrying");
        assert_eq!(hold(t, sent, sent + s(20)), Hold::Close);
        assert_eq!(hold(t, sent, sent + s(300)), Hold::Close);
    }

    #[test]
    fn renewal_outcomes() {
        let a = owner("a");
        let l = lease(Some(&a), 1, 0, 1);
        assert_eq!(renewal(&Ok(l)), Renewal::Renewed);
        assert_eq!(renewal(&Err(StoreError::Conflict("lease"))), Renewal::Lost);
        assert_eq!(renewal(&Err(StoreError::Fenced)), Renewal::Lost);
        for e in [
            StoreError::Throttled,
            StoreError::Backend("timeout".into()),
            StoreError::NotFound,
            StoreError::Conflict("status"),
        ] {
            assert_eq!(renewal(&Err(e.clone())), Renewal::Failed, "{e}");
        }
    }

    fn member(owner: &Owner, expires: i64) -> Member {
        Member {
            owner: owner.clone(),
            inbox: "inbox".into(),
            expires_at: at(expires),
            sessions: 3,
            capacity: 7,
        }
    }

    #[test]
    fn membership_liveness() {
        let a = owner("a");
        assert!(member(&a, 10).is_live(at(9)));
        assert!(!member(&a, 10).is_live(at(10)));
    }

    #[test]
    fn only_the_same_run_heartbeats() {
        let a = owner("a");
        let again = owner("a");
        assert_eq!(heartbeat(Some(&member(&a, 0)), &member(&a, 10)), Ok(()));
        assert_eq!(heartbeat(None, &member(&a, 10)), Err(StoreError::NotFound));
        assert_eq!(
            heartbeat(Some(&member(&again, 0)), &member(&a, 10)),
            Err(StoreError::Conflict("worker"))
        );
    }

    #[test]
    fn only_the_same_run_deregisters() {
        let a = owner("a");
        let again = owner("a");
        assert_eq!(deregister(Some(&member(&a, 0)), &a), Ok(true));
        assert_eq!(deregister(None, &a), Ok(false));
        assert_eq!(
            deregister(Some(&member(&again, 0)), &a),
            Err(StoreError::Conflict("worker"))
        );
    }
}
