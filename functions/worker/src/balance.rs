//! The fleet's decisions, as pure functions: a worker's fair share of the devices, whether
//! a balance pass claims a device, which devices a worker over its share gives back, how
//! many session starts may begin now and how long each waits first, and where a received
//! command goes. `crate::leases` carries them out.

use std::time::Duration;

use wa_core::devices::DeviceStatus as S;
use wa_core::lease::{Approach, Lease, Owner};
use wa_core::settings::whole_number;

/// The default of `WA_RECONNECT_CONCURRENCY`: session starts at once per worker.
pub const DEFAULT_RECONNECT_CONCURRENCY: usize = 8;

/// The environment variable of the session starts at once.
pub const RECONNECT_CONCURRENCY_VAR: &str = "WA_RECONNECT_CONCURRENCY";

/// The `WA_RECONNECT_CONCURRENCY` a value sets: the default when unset or blank; an error
/// for anything but a whole number from 1 to 1000.
pub fn reconnect_concurrency_setting(value: Option<&str>) -> Result<usize, String> {
    let problem = "must be a whole number from 1 to 1000";
    whole_number(value, DEFAULT_RECONNECT_CONCURRENCY, 1..=1000, problem)
}

/// A worker's fair share of `devices` sessions among `workers` live workers:
/// `ceil(devices / workers)`, a worker that sees no live member counting itself.
pub fn fair_share(devices: usize, workers: usize) -> usize {
    devices.div_ceil(workers.max(1))
}

/// Whether `me` is alone in the fleet: no live member but itself (or none listed yet).
pub fn alone<'a>(mut live: impl Iterator<Item = &'a Owner>, me: &Owner) -> bool {
    live.all(|o| o == me)
}

/// How many live workers share the devices: `live` members, or 1 when the store is this
/// process's alone (`exclusive`: the embedded server's SQLite file, locked by it), whose
/// other members can only be its own earlier runs.
pub fn fleet_size(live: usize, exclusive: bool) -> usize {
    if exclusive { 1 } else { live }
}

/// How a worker whose store is its process's alone approaches a lease `seen`: it takes it
/// at once, whoever's it reads as, since any other owner is an earlier run of this process
/// (gone: the store's lock proves no other process uses it). The claim is conditioned on
/// the version read, so the new lease gets the next epoch.
pub fn approach_exclusive(seen: Option<&Lease>) -> Approach {
    Approach::Take {
        unchanged: seen.map(|l| l.version),
    }
}

/// Whether a device in `status` is to have a session open on some worker (a balance pass
/// looks after it). Linking devices belong to the worker that took their `Link` command;
/// stopped ones have no session.
pub fn wants_session(status: S) -> bool {
    matches!(status, S::Connected | S::Connecting)
}

/// Whether a balance pass keeps a device it holds that was not among the devices it listed
/// as wanting a session, by the device's status read after that listing (`None`: the
/// device is gone). A linking device is kept for the command that opened its link, and
/// one that wants a session now (its link completed, or a command connected it, since
/// the listing) is kept too: the next pass counts it. Stopped, logged-out, expired,
/// failed and deleted devices are given back.
pub fn keeps_unlisted(now: Option<S>) -> bool {
    match now {
        Some(s) => wants_session(s) || matches!(s, S::Initializing | S::QrGenerated),
        None => false,
    }
}

/// What a balance pass does about a device it does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Claim it (with `Claim::unchanged` set to this) and open its session.
    Claim { unchanged: Option<u64> },
    /// Leave it: another worker holds it, or this one has its share.
    Leave,
}

/// Whether to claim a device whose lease reads as `approach` (`lease::approach`) while this
/// worker holds `held` sessions against a fair share of `share`: only a lease that may be
/// taken, and only below the share.
pub fn pick(approach: Approach, held: usize, share: usize) -> Pick {
    match approach {
        Approach::Take { unchanged } if held < share => Pick::Claim { unchanged },
        _ => Pick::Leave,
    }
}

/// A device this worker holds, as the balance pass sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holding {
    pub device_id: uuid::Uuid,
    /// A command of it is being handled now.
    pub busy: bool,
}

/// The devices to give back (close, then release) when this worker holds `held` against
/// a share of `share`: none while it holds at most `share`; else the excess, idle devices
/// only (a busy one is left for the next pass), highest device id first so that repeated
/// passes pick the same ones.
pub fn to_release(held: &[Holding], share: usize) -> Vec<uuid::Uuid> {
    let excess = held.len().saturating_sub(share);
    let mut idle: Vec<_> = held
        .iter()
        .filter(|h| !h.busy)
        .map(|h| h.device_id)
        .collect();
    idle.sort_unstable_by(|a, b| b.cmp(a));
    idle.truncate(excess);
    idle
}

/// How long a session start waits before it opens: a random part (`random` in `0..1`) of
/// a tenth of the lease period, at most a second, so that a worker taking over many
/// devices does not open them all in the same instant.
pub fn start_jitter(ttl: Duration, random: f64) -> Duration {
    (ttl / 10)
        .min(Duration::from_secs(1))
        .mul_f64(random.clamp(0.0, 1.0))
}

/// Where a received command for a device goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// This worker holds the device: handle it.
    Here,
    /// Nobody may be holding it: claim it (`Claim::unchanged`), then handle it.
    Claim { unchanged: Option<u64> },
    /// Another live worker holds it: not for this worker.
    Elsewhere,
}

/// The route of a command for a device this worker holds (`holds`) or whose lease reads
/// as `approach`.
pub fn route(holds: bool, approach: Approach) -> Route {
    match (holds, approach) {
        (true, _) => Route::Here,
        (false, Approach::Take { unchanged }) => Route::Claim { unchanged },
        (false, Approach::Wait { .. }) => Route::Elsewhere,
    }
}

/// The route of a command once its device's record was read (`exists`): a device without
/// one has no session to own, so its command (an ask of it) is answered here rather than
/// claimed for. One that another live worker holds was handed on before the read.
pub fn route_known(route: Route, exists: bool) -> Route {
    if exists { route } else { Route::Here }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use uuid::Uuid;

    use super::*;

    #[test]
    fn the_reconnect_concurrency_setting() {
        let refused = Err("must be a whole number from 1 to 1000".to_owned());
        let rows = [
            (None, Ok(8)),
            (Some(" "), Ok(8)),
            (Some("1"), Ok(1)),
            (Some("1000"), Ok(1000)),
            (Some("0"), refused.clone()),
            (Some("1001"), refused.clone()),
            (Some("-1"), refused.clone()),
            (Some("two"), refused.clone()),
            (Some("1.5"), refused),
        ];
        for (value, answer) in rows {
            assert_eq!(reconnect_concurrency_setting(value), answer, "{value:?}");
        }
    }

    #[test]
    fn the_fair_share_rounds_up() {
        assert_eq!(fair_share(0, 3), 0);
        assert_eq!(fair_share(9, 3), 3);
        assert_eq!(fair_share(10, 3), 4);
        assert_eq!(fair_share(1, 3), 1);
        assert_eq!(fair_share(5, 1), 5);
    }

    #[test]
    fn a_worker_seeing_no_members_counts_itself() {
        assert_eq!(fair_share(4, 0), 4);
    }

    #[test]
    fn a_worker_is_alone_beside_nobody_but_itself() {
        let me = Owner::new("a");
        let other = Owner::new("b");
        let restarted = Owner::new("a");
        assert!(alone([].iter(), &me));
        assert!(alone([me.clone()].iter(), &me));
        assert!(!alone([me.clone(), other.clone()].iter(), &me));
        assert!(!alone([restarted].iter(), &me), "another run of its id");
    }

    #[test]
    fn an_exclusive_store_has_a_fleet_of_one() {
        assert_eq!(fleet_size(3, false), 3);
        assert_eq!(fleet_size(0, false), 0);
        assert_eq!(fleet_size(3, true), 1);
        assert_eq!(fleet_size(0, true), 1);
    }

    fn lease_of(owner: Option<Owner>, version: u64) -> Lease {
        Lease {
            device_id: Uuid::nil(),
            owner,
            epoch: 4,
            expires_at: wa_core::time::now() + Duration::from_secs(3600),
            ttl: Duration::from_secs(3600),
            version,
        }
    }

    #[test]
    fn an_exclusive_store_takes_every_lease_at_once() {
        assert_eq!(approach_exclusive(None), Approach::Take { unchanged: None });
        let earlier_run = lease_of(Some(Owner::new("w")), 9);
        assert_eq!(
            approach_exclusive(Some(&earlier_run)),
            Approach::Take { unchanged: Some(9) }
        );
        let released = lease_of(None, 2);
        assert_eq!(
            approach_exclusive(Some(&released)),
            Approach::Take { unchanged: Some(2) }
        );
    }

    #[test]
    fn only_connected_and_connecting_devices_want_a_session() {
        for s in S::ALL {
            assert_eq!(
                wants_session(s),
                matches!(s, S::Connected | S::Connecting),
                "{s:?}"
            );
        }
    }

    #[test]
    fn an_unlisted_device_that_connected_since_the_listing_is_kept() {
        assert!(keeps_unlisted(Some(S::Connected)));
        assert!(keeps_unlisted(Some(S::Connecting)));
    }

    #[test]
    fn an_unlisted_linking_device_is_kept_for_its_command() {
        assert!(keeps_unlisted(Some(S::Initializing)));
        assert!(keeps_unlisted(Some(S::QrGenerated)));
    }

    #[test]
    fn an_unlisted_device_without_a_session_to_keep_is_given_back() {
        for s in [S::Expired, S::Disconnected, S::LoggedOut, S::Destroyed] {
            assert!(!keeps_unlisted(Some(s)), "{s:?}");
        }
        assert!(!keeps_unlisted(None), "deleted");
    }

    #[test]
    fn a_takeable_lease_below_the_share_is_claimed() {
        let free = Approach::Take { unchanged: None };
        let expired = Approach::Take { unchanged: Some(7) };
        assert_eq!(pick(free, 2, 3), Pick::Claim { unchanged: None });
        assert_eq!(pick(expired, 0, 1), Pick::Claim { unchanged: Some(7) });
    }

    #[test]
    fn nothing_is_claimed_at_the_share() {
        assert_eq!(pick(Approach::Take { unchanged: None }, 3, 3), Pick::Leave);
        assert_eq!(pick(Approach::Take { unchanged: None }, 4, 3), Pick::Leave);
    }

    #[test]
    fn a_lease_held_elsewhere_is_left() {
        let wait = Approach::Wait {
            until: Instant::now(),
        };
        assert_eq!(pick(wait, 0, 3), Pick::Leave);
    }

    fn holding(n: u128, busy: bool) -> Holding {
        Holding {
            device_id: Uuid::from_u128(n),
            busy,
        }
    }

    #[test]
    fn nothing_is_released_within_the_share() {
        let held = [holding(1, false), holding(2, false)];
        assert!(to_release(&held, 2).is_empty());
        assert!(to_release(&held, 3).is_empty());
    }

    #[test]
    fn the_excess_is_released_highest_id_first() {
        let held = [holding(1, false), holding(3, false), holding(2, false)];
        assert_eq!(
            to_release(&held, 1),
            [Uuid::from_u128(3), Uuid::from_u128(2)]
        );
    }

    #[test]
    fn busy_devices_are_kept_for_the_next_pass() {
        let held = [holding(1, false), holding(3, true), holding(2, true)];
        assert_eq!(to_release(&held, 1), [Uuid::from_u128(1)]);
        assert!(to_release(&[holding(1, true), holding(2, true)], 0).is_empty());
    }

    #[test]
    fn starts_wait_a_bounded_random_part_of_the_period() {
        let ttl = Duration::from_secs(30);
        assert_eq!(start_jitter(ttl, 0.0), Duration::ZERO);
        assert_eq!(start_jitter(ttl, 0.5), Duration::from_millis(500));
        assert_eq!(start_jitter(ttl, 1.0), Duration::from_secs(1));
        assert_eq!(start_jitter(ttl, 7.0), Duration::from_secs(1));
        let short = Duration::from_secs(3);
        assert_eq!(start_jitter(short, 1.0), Duration::from_millis(300));
    }

    #[test]
    fn a_held_device_is_handled_here() {
        let wait = Approach::Wait {
            until: Instant::now(),
        };
        assert_eq!(route(true, wait), Route::Here);
        assert_eq!(route(true, Approach::Take { unchanged: None }), Route::Here);
    }

    #[test]
    fn a_takeable_device_is_claimed_by_its_receiver() {
        assert_eq!(
            route(false, Approach::Take { unchanged: Some(4) }),
            Route::Claim { unchanged: Some(4) }
        );
    }

    #[test]
    fn a_device_held_by_a_live_worker_is_elsewhere() {
        let wait = Approach::Wait {
            until: Instant::now(),
        };
        assert_eq!(route(false, wait), Route::Elsewhere);
    }

    #[test]
    fn a_device_without_a_record_is_answered_here_not_claimed() {
        let claim = Route::Claim { unchanged: None };
        assert_eq!(route_known(claim, false), Route::Here);
        assert_eq!(route_known(claim, true), claim);
        assert_eq!(route_known(Route::Here, false), Route::Here);
        assert_eq!(route_known(Route::Here, true), Route::Here);
    }
}
