//! Per-device send pacing: a token bucket per device, so bursts are spread out instead of
//! refused (bursts get WhatsApp accounts banned). The bucket is wa-core's (`rate`).

use std::time::{Duration, Instant};

use uuid::Uuid;
use wa_core::rate::{Buckets, Rate};

/// Devices whose buckets are held at once; beyond it, refilled (idle) ones are dropped
/// first, which changes nothing for them.
const MAX_PACED_DEVICES: usize = 100_000;

pub struct Pacing {
    /// `None` when unpaced (rate 0).
    buckets: Option<Buckets<Uuid>>,
}

impl Pacing {
    /// `rate` sends per second per device with bursts of `burst`; 0 turns pacing off.
    pub fn new(rate: f64, burst: u32) -> Self {
        Pacing {
            buckets: Rate::new(rate, burst).map(|r| Buckets::new(r, MAX_PACED_DEVICES)),
        }
    }

    /// Takes a token for `device`; `Some(wait)` when there is none yet.
    pub fn take(&self, device: Uuid) -> Option<Duration> {
        self.buckets.as_ref()?.take(device, Instant::now())
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
