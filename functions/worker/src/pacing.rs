//! Per-device send pacing: a token bucket per device, so bursts are spread out instead of
//! refused (bursts get WhatsApp accounts banned).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

pub struct Pacing {
    /// Sends per second; 0 turns pacing off.
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<Uuid, (f64, Instant)>>,
}

impl Pacing {
    pub fn new(rate: f64, burst: u32) -> Self {
        Pacing {
            rate: rate.max(0.0),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `device`; `Some(wait)` when there is none yet.
    pub fn take(&self, device: Uuid) -> Option<Duration> {
        if self.rate == 0.0 {
            return None;
        }
        let now = Instant::now();
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = map.entry(device).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_paces() {
        let p = Pacing::new(10.0, 3);
        let d = Uuid::now_v7();
        assert!(p.take(d).is_none());
        assert!(p.take(d).is_none());
        assert!(p.take(d).is_none());
        let wait = p.take(d).expect("the burst is spent");
        assert!(wait <= Duration::from_millis(101), "{wait:?}");
        assert!(p.take(Uuid::now_v7()).is_none(), "buckets are per device");
        assert!(Pacing::new(0.0, 1).take(d).is_none(), "0 = unpaced");
    }
}
