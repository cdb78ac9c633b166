//! Wake-ups for requests waiting on a record (a device leaving `initializing`, a send
//! finishing). In one process the writer notifies the key; across processes the waiter
//! falls back to polling, so a missed wake-up only costs one poll interval.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use uuid::Uuid;

/// A polling schedule that doubles: the pause after check `n` (0 first) is `first` for
/// `per_step` checks, twice that for as many more, and so on, at most `longest`.
pub fn doubling(first: Duration, per_step: u32, longest: Duration, n: u32) -> Duration {
    first
        .saturating_mul(1u32 << (n / per_step.max(1)).min(31))
        .min(longest)
}

/// Per-key wake-ups.
#[derive(Default)]
pub struct Notifier {
    keys: Mutex<HashMap<Uuid, (Arc<Notify>, usize)>>,
}

impl Notifier {
    pub fn new() -> Arc<Self> {
        Arc::new(Notifier::default())
    }

    /// Wakes every waiter on `key`.
    pub fn notify(&self, key: Uuid) {
        let n = self
            .keys
            .lock()
            .ok()
            .and_then(|m| m.get(&key).map(|(n, _)| n.clone()));
        if let Some(n) = n {
            n.notify_waiters();
        }
    }

    /// Calls `check` until it returns `Some`, re-checking on every notification of `key` and
    /// at least every `poll`; `None` once `timeout` has passed.
    pub async fn wait_for<T, F, Fut>(
        &self,
        key: Uuid,
        timeout: Duration,
        poll: Duration,
        check: F,
    ) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        self.wait_polling(key, timeout, |_| poll, check).await
    }

    /// [`Notifier::wait_for`], pausing `poll(n)` after the `n`-th check (0 first) that found
    /// nothing, unless a notification comes first.
    pub async fn wait_polling<T, F, Fut>(
        &self,
        key: Uuid,
        timeout: Duration,
        poll: impl Fn(u32) -> Duration,
        mut check: F,
    ) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let notify = self.register(key);
        let _guard = Unregister {
            notifier: self,
            key,
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut checks = 0u32;
        loop {
            // Armed before the check, so a change between the check and the wait is not missed.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(v) = check().await {
                return Some(v);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return None;
            }
            let nap = poll(checks).min(deadline - now);
            checks = checks.saturating_add(1);
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }

    fn register(&self, key: Uuid) -> Arc<Notify> {
        let mut m = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let e = m.entry(key).or_insert_with(|| (Arc::new(Notify::new()), 0));
        e.1 += 1;
        e.0.clone()
    }
}

struct Unregister<'a> {
    notifier: &'a Notifier,
    key: Uuid,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        let mut m = self.notifier.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = m.get_mut(&self.key) {
            e.1 -= 1;
            if e.1 == 0 {
                m.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// On the paused clock: the time the waiter saw pass says whether it was woken (the
    /// notifier's 20 ms) or polled (the 5 s poll).
    #[tokio::test(start_paused = true)]
    async fn wakes_on_notify_and_times_out() {
        let n = Notifier::new();
        let key = Uuid::now_v7();
        let flag = Arc::new(AtomicBool::new(false));
        let (n2, f2) = (n.clone(), flag.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            f2.store(true, Ordering::SeqCst);
            n2.notify(key);
        });
        let started = tokio::time::Instant::now();
        let got = n
            .wait_for(key, Duration::from_secs(5), Duration::from_secs(5), || {
                let f = flag.clone();
                async move { f.load(Ordering::SeqCst).then_some(1) }
            })
            .await;
        assert_eq!(got, Some(1));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "woken, not polled: {:?}",
            started.elapsed()
        );
        let none: Option<()> = n
            .wait_for(
                key,
                Duration::from_millis(30),
                Duration::from_millis(10),
                || async { None },
            )
            .await;
        assert!(none.is_none());
        assert!(n.keys.lock().unwrap().is_empty(), "waiters unregister");
    }

    #[test]
    fn a_doubling_schedule_doubles_every_step_up_to_its_longest() {
        let ms = Duration::from_millis;
        for (per_step, n, pause) in [
            (1, 0, ms(10)),
            (1, 1, ms(20)),
            (1, 3, ms(80)),
            (1, 4, ms(100)),
            (2, 1, ms(10)),
            (2, 2, ms(20)),
            (0, 1, ms(20)),
            (1, u32::MAX, ms(100)),
        ] {
            assert_eq!(
                doubling(ms(10), per_step, ms(100), n),
                pause,
                "{per_step} {n}"
            );
        }
    }

    /// The `n`-th pause is `poll(n)`: checks at 0, 10, 30, 60 and 100 ms of a 100 ms wait.
    #[tokio::test(start_paused = true)]
    async fn polls_follow_their_schedule() {
        let n = Notifier::new();
        let started = tokio::time::Instant::now();
        let seen = Mutex::new(Vec::new());
        let none: Option<()> = n
            .wait_polling(
                Uuid::now_v7(),
                Duration::from_millis(100),
                |i| Duration::from_millis(10 * (u64::from(i) + 1)),
                || {
                    seen.lock().unwrap().push(started.elapsed().as_millis());
                    async { None }
                },
            )
            .await;
        assert!(none.is_none());
        assert_eq!(*seen.lock().unwrap(), [0, 10, 30, 60, 100]);
    }
}
