//! Token buckets: the pure refill-and-take decision ([`Bucket::take`]) and a bounded map of
//! buckets by key ([`Buckets`]). The worker paces each device's sends with them; the HTTP
//! edge limits each App's requests.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A refill rate and a bucket size: `per_sec` tokens a second, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    per_sec: f64,
    burst: f64,
}

impl Rate {
    /// `None` when `per_sec` is not a positive finite number: no limit at all. A `burst`
    /// of 0 counts as 1 (a bucket that can never hold a token would refuse forever).
    pub fn new(per_sec: f64, burst: u32) -> Option<Rate> {
        (per_sec.is_finite() && per_sec > 0.0).then(|| Rate {
            per_sec,
            burst: f64::from(burst.max(1)),
        })
    }

    pub fn per_sec(&self) -> f64 {
        self.per_sec
    }

    pub fn burst(&self) -> f64 {
        self.burst
    }
}

/// One bucket: the tokens it held at `last`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A bucket as a new key gets it: full.
    pub fn full(rate: &Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: rate.burst,
            last: now,
        }
    }

    /// Refills for the time since the last take (never beyond `burst`), then takes one
    /// token: `None` when there was one, else `Some(wait)`, the time until there is one.
    /// A refused take takes nothing, so a caller that waits `wait` then gets its token.
    pub fn take(&mut self, rate: &Rate, now: Instant) -> Option<Duration> {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            None
        } else {
            let secs = (1.0 - self.tokens) / rate.per_sec;
            Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
        }
    }

    /// Whether the bucket has refilled to `burst` by `now`: it is then the same as a new
    /// one, and dropping it changes nothing.
    pub fn is_full_at(&self, rate: &Rate, now: Instant) -> bool {
        let mut b = *self;
        b.refill(rate, now);
        b.tokens >= rate.burst
    }

    fn refill(&mut self, rate: &Rate, now: Instant) {
        // An earlier `now` (another thread read the clock first) refills nothing.
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_sec).min(rate.burst);
        self.last = self.last.max(now);
    }
}

/// Buckets by key, at most `capacity` of them, behind one lock.
///
/// A new key finding the map full first drops every bucket that has refilled (idle keys:
/// dropping them changes nothing); when none has, the least recently used one, whose key
/// then starts again from a full bucket. Memory stays bounded whatever the keys.
pub struct Buckets<K> {
    rate: Rate,
    capacity: usize,
    map: Mutex<HashMap<K, Bucket>>,
}

impl<K: Eq + Hash + Clone> Buckets<K> {
    /// `capacity` counts as at least 1.
    pub fn new(rate: Rate, capacity: usize) -> Self {
        Buckets {
            rate,
            capacity: capacity.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// [`Bucket::take`] on `key`'s bucket (a full one for a new key).
    pub fn take(&self, key: K, now: Instant) -> Option<Duration> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(&key) && map.len() >= self.capacity {
            evict(&mut map, &self.rate, now, self.capacity);
        }
        map.entry(key)
            .or_insert_with(|| Bucket::full(&self.rate, now))
            .take(&self.rate, now)
    }

    /// How many buckets are held.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Makes room for one more bucket: drops the full ones, then, while still at `capacity`,
/// the least recently used.
fn evict<K: Eq + Hash + Clone>(
    map: &mut HashMap<K, Bucket>,
    rate: &Rate,
    now: Instant,
    capacity: usize,
) {
    map.retain(|_, b| !b.is_full_at(rate, now));
    while map.len() >= capacity {
        let Some(oldest) = map
            .iter()
            .min_by_key(|(_, b)| b.last)
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        map.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn rate(per_sec: f64, burst: u32) -> Rate {
        Rate::new(per_sec, burst).unwrap()
    }

    #[test]
    fn rate_rows() {
        assert_eq!(Rate::new(0.0, 5), None, "0 = no limit");
        assert_eq!(Rate::new(-1.0, 5), None);
        assert_eq!(Rate::new(f64::NAN, 5), None);
        assert_eq!(Rate::new(f64::INFINITY, 5), None);
        assert_eq!(
            Rate::new(2.0, 0).unwrap().burst(),
            1.0,
            "burst 0 counts as 1"
        );
        assert_eq!(Rate::new(2.5, 7).unwrap().per_sec(), 2.5);
        let slow = rate(1e-300, 1);
        let t0 = Instant::now();
        let mut b = Bucket::full(&slow, t0);
        b.take(&slow, t0);
        assert_eq!(b.take(&slow, t0), Some(Duration::MAX), "no overflow");
    }

    #[test]
    fn a_new_bucket_allows_the_burst_at_once() {
        let r = rate(1.0, 3);
        let t0 = Instant::now();
        let mut b = Bucket::full(&r, t0);
        assert_eq!(b.take(&r, t0), None);
        assert_eq!(b.take(&r, t0), None);
        assert_eq!(b.take(&r, t0), None);
        assert_eq!(b.take(&r, t0), Some(Duration::from_secs(1)), "spent");
    }

    #[test]
    fn a_spent_bucket_answers_the_time_to_the_next_token() {
        let r = rate(10.0, 1);
        let t0 = Instant::now();
        let mut b = Bucket::full(&r, t0);
        assert_eq!(b.take(&r, t0), None);
        let wait = b.take(&r, t0 + ms(40)).unwrap();
        assert!((wait.as_secs_f64() - 0.06).abs() < 1e-9, "{wait:?}");
        // The refusal took nothing: after the wait the token is there.
        assert_eq!(b.take(&r, t0 + ms(100)), None);
    }

    #[test]
    fn refill_never_exceeds_the_burst() {
        let r = rate(100.0, 2);
        let t0 = Instant::now();
        let mut b = Bucket::full(&r, t0);
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(b.take(&r, later), None);
        assert_eq!(b.take(&r, later), None);
        assert!(b.take(&r, later).is_some(), "an hour idle still holds 2");
    }

    #[test]
    fn an_earlier_now_refills_nothing_and_does_not_rewind() {
        let r = rate(1.0, 1);
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut b = Bucket::full(&r, t0);
        assert_eq!(b.take(&r, t0), None);
        assert_eq!(b.take(&r, t0 - ms(500)), Some(Duration::from_secs(1)));
        assert_eq!(b.take(&r, t0 + Duration::from_secs(1)), None);
    }

    #[test]
    fn fullness_rows() {
        let r = rate(2.0, 2);
        let t0 = Instant::now();
        let mut b = Bucket::full(&r, t0);
        assert!(b.is_full_at(&r, t0), "new");
        b.take(&r, t0);
        assert!(!b.is_full_at(&r, t0 + ms(100)), "half a token short");
        assert!(b.is_full_at(&r, t0 + ms(500)), "refilled");
    }

    #[test]
    fn keys_have_their_own_buckets() {
        let m = Buckets::new(rate(1.0, 1), 10);
        let t0 = Instant::now();
        assert_eq!(m.take("a", t0), None);
        assert!(m.take("a", t0).is_some());
        assert_eq!(m.take("b", t0), None, "another key is unaffected");
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn a_full_map_drops_idle_buckets_first() {
        let m = Buckets::new(rate(1.0, 1), 2);
        let t0 = Instant::now();
        m.take("idle", t0);
        m.take("busy", t0 + Duration::from_secs(5));
        // At t0 + 5.5 s "idle" has refilled, "busy" has not.
        assert_eq!(m.take("new", t0 + ms(5500)), None);
        assert_eq!(m.len(), 2);
        assert!(
            m.take("busy", t0 + ms(5500)).is_some(),
            "the busy bucket was kept: still spent"
        );
    }

    #[test]
    fn a_full_map_of_busy_buckets_drops_the_least_recently_used() {
        let m = Buckets::new(rate(0.001, 1), 2);
        let t0 = Instant::now();
        m.take("first", t0);
        m.take("second", t0 + ms(1));
        m.take("third", t0 + ms(2));
        assert_eq!(m.len(), 2);
        assert!(m.take("second", t0 + ms(3)).is_some(), "kept: still spent");
        assert_eq!(
            m.take("first", t0 + ms(4)),
            None,
            "dropped, so it starts again full"
        );
    }
}
