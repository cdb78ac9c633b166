//! When and how long the DynamoDB adapter waits before trying a call again: a write that
//! lost a race with another transaction, a read-modify-write whose record moved on, the
//! items DynamoDB left unprocessed in a batch. Every retry loop is capped, and pauses grow
//! exponentially with jitter so that racing writers spread apart.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use wa_core::store::StoreError;

/// A retry policy: at most `retries` retries, the pause before retry `n` (from 0) drawn
/// from the upper half of `min(cap, base × 2ⁿ)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub(crate) base: Duration,
    pub(crate) cap: Duration,
    pub(crate) retries: u32,
}

impl Backoff {
    /// A write that lost a race with a concurrent transaction (`TransactionConflict`).
    pub(crate) const CONTENTION: Backoff = Backoff {
        base: Duration::from_millis(10),
        cap: Duration::from_millis(500),
        retries: 6,
    };

    /// A read-modify-write whose record changed after it was read: 10 attempts in all.
    pub(crate) const STALE: Backoff = Backoff {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(200),
        retries: 9,
    };

    /// Items a `BatchGetItem` or `BatchWriteItem` left unprocessed (DynamoDB throttled
    /// part of the batch): about 3.6 s of pauses at the most, then `Throttled`.
    pub(crate) const UNPROCESSED: Backoff = Backoff {
        base: Duration::from_millis(25),
        cap: Duration::from_secs(1),
        retries: 8,
    };

    /// The pause before retry `attempt` (0 = the first retry) for the random number
    /// `draw`: at least half of `min(cap, base × 2^attempt)`, at most all of it ("equal
    /// jitter": a floor that grows exponentially, a spread that separates racers).
    pub(crate) fn delay(&self, attempt: u32, draw: u64) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.cap);
        let floor = ceiling / 2;
        let spread = (ceiling - floor).as_nanos() as u64;
        floor + Duration::from_nanos(draw % spread.saturating_add(1))
    }

    /// Waits before retry `attempt`.
    pub(crate) async fn pause(&self, attempt: u32) {
        let d = self.delay(attempt, RandomState::new().hash_one(attempt));
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }
}

/// Runs `call` on `pending` until it leaves nothing unprocessed, pausing by `policy`
/// between calls; returns what every call produced. A call answers what it produced and
/// the part of its input that is left to do. Fails with the first call's error, or with
/// `Throttled` when items are still left after `policy.retries` retries.
pub(crate) async fn drain<T, O, F, Fut>(
    policy: &Backoff,
    mut pending: Vec<T>,
    mut call: F,
) -> Result<Vec<O>, StoreError>
where
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = Result<(Vec<O>, Vec<T>), StoreError>>,
{
    let mut out = Vec::new();
    let mut attempt = 0;
    while !pending.is_empty() {
        if attempt > 0 {
            if attempt > policy.retries {
                return Err(StoreError::Throttled);
            }
            policy.pause(attempt - 1).await;
        }
        let (produced, left) = call(pending).await?;
        out.extend(produced);
        pending = left;
        attempt += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    const MS: Duration = Duration::from_millis(1);

    fn policy(base_ms: u64, cap_ms: u64, retries: u32) -> Backoff {
        Backoff {
            base: MS * base_ms as u32,
            cap: MS * cap_ms as u32,
            retries,
        }
    }

    #[test]
    fn the_first_pause_is_within_half_and_all_of_the_base() {
        let p = policy(10, 1000, 5);
        assert_eq!(p.delay(0, 0), MS * 5);
        assert_eq!(p.delay(0, 5_000_000), MS * 10);
        let any = p.delay(0, u64::MAX);
        assert!(any >= MS * 5 && any <= MS * 10, "{any:?}");
    }

    #[test]
    fn the_floor_doubles_with_each_retry() {
        let p = policy(10, 1000, 5);
        let floors: Vec<_> = (0..5).map(|n| p.delay(n, 0)).collect();
        assert_eq!(floors, [MS * 5, MS * 10, MS * 20, MS * 40, MS * 80]);
    }

    #[test]
    fn the_draw_spreads_racers_within_the_ceiling() {
        let p = policy(10, 1000, 5);
        assert_eq!(
            p.delay(3, 40_000_000),
            MS * 80,
            "the largest draw is the ceiling"
        );
        assert_eq!(p.delay(3, 40_000_001), MS * 40, "then wraps to the floor");
        assert_eq!(p.delay(3, 7_000_000), MS * 47);
    }

    #[test]
    fn pauses_stop_growing_at_the_cap() {
        let p = policy(10, 100, 50);
        assert_eq!(p.delay(4, 0), MS * 50);
        assert_eq!(p.delay(40, 0), MS * 50, "no overflow for late retries");
        assert!(p.delay(40, u64::MAX) <= MS * 100);
    }

    #[test]
    fn a_zero_policy_never_waits() {
        assert_eq!(policy(0, 0, 3).delay(2, 12345), Duration::ZERO);
    }

    #[test]
    fn every_policy_is_capped() {
        for p in [Backoff::CONTENTION, Backoff::STALE, Backoff::UNPROCESSED] {
            let worst: Duration = (0..p.retries).map(|n| p.delay(n, u64::MAX)).sum();
            assert!(
                worst <= Duration::from_secs(5),
                "{p:?} waits up to {worst:?}"
            );
            assert!(p.delay(0, 0) > Duration::ZERO, "{p:?} pauses");
        }
    }

    #[tokio::test]
    async fn drain_stops_when_nothing_is_left() {
        let calls = Cell::new(0);
        // Each call processes the first item and leaves the others.
        let got = drain(&policy(0, 0, 5), vec![1, 2, 3], |mut left: Vec<u32>| {
            calls.set(calls.get() + 1);
            let done = left.remove(0);
            async move { Ok((vec![done * 10], left)) }
        })
        .await
        .unwrap();
        assert_eq!(got, [10, 20, 30]);
        assert_eq!(calls.get(), 3);
    }

    #[tokio::test]
    async fn drain_gives_up_after_its_retries() {
        let calls = Cell::new(0);
        let got = drain(&policy(0, 0, 3), vec![1], |left: Vec<u32>| {
            calls.set(calls.get() + 1);
            async move { Ok((Vec::<()>::new(), left)) }
        })
        .await;
        assert_eq!(got, Err(StoreError::Throttled));
        assert_eq!(calls.get(), 4, "the first call and three retries");
    }

    #[tokio::test]
    async fn drain_fails_with_the_calls_error() {
        let got = drain(&policy(0, 0, 3), vec![1], |_: Vec<u32>| async {
            Err::<(Vec<()>, Vec<u32>), _>(StoreError::Backend("boom".into()))
        })
        .await;
        assert_eq!(got, Err(StoreError::Backend("boom".into())));
    }

    #[tokio::test]
    async fn drain_of_nothing_calls_nothing() {
        let got = drain(&policy(0, 0, 3), Vec::<u32>::new(), |_: Vec<u32>| async {
            Err::<(Vec<()>, Vec<u32>), _>(StoreError::Backend("called".into()))
        })
        .await;
        assert_eq!(got, Ok(vec![]));
    }

    #[tokio::test]
    async fn drain_pauses_between_calls() {
        let p = policy(20, 20, 2);
        let start = std::time::Instant::now();
        let got = drain(&p, vec![1], |left: Vec<u32>| async move {
            Ok((Vec::<()>::new(), left))
        })
        .await;
        assert_eq!(got, Err(StoreError::Throttled));
        // Two pauses of at least half the base each.
        assert!(start.elapsed() >= MS * 20, "{:?}", start.elapsed());
    }
}
