//! Queues in tests. [`Watched`] passes the queue port's methods to the queue it wraps,
//! counts the calls of each and records the `retry_after` calls tests assert on; the
//! provided methods it does not pass on keep the port's defaults, built on those (a
//! `release` is a retry after zero, a `delete_and_take_next` a delete, `dead_letter` a
//! refusal). [`nothing_received`] checks that a queue is drained; [`receive_all`] takes
//! everything receivable now, whatever each adapter returns per call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use wa_core::queue::{DeadLetter, Depth, Outgoing, Queue, QueueError, Received};

/// `inner`, with the number of calls of each method and a record of the visibility every
/// `retry_after` asked for.
pub struct Watched<Q> {
    inner: Q,
    calls: Mutex<HashMap<&'static str, u32>>,
    retries: Mutex<Vec<(String, Duration)>>,
}

impl<Q: Queue> Watched<Q> {
    pub fn new(inner: Q) -> Watched<Q> {
        Watched {
            inner,
            calls: Mutex::default(),
            retries: Mutex::new(Vec::new()),
        }
    }

    /// How many times the port's method `method` (`"send"`, `"send_batch"`, `"delete"`…)
    /// was called so far, by callers or by the port's provided methods.
    pub fn calls(&self, method: &str) -> u32 {
        self.calls.lock().unwrap().get(method).copied().unwrap_or(0)
    }

    /// Every `retry_after` so far, in call order: its receipt and its delay.
    pub fn retries(&self) -> Vec<(String, Duration)> {
        self.retries.lock().unwrap().clone()
    }

    fn count(&self, method: &'static str) {
        *self.calls.lock().unwrap().entry(method).or_default() += 1;
    }
}

/// Whether receiving from `queue` (up to 10 messages, hidden for `visibility`) gets none.
pub async fn nothing_received<Q: Queue + ?Sized>(q: &Q, queue: &str, visibility: Duration) -> bool {
    q.receive(queue, 10, visibility).await.unwrap().is_empty()
}

/// Every message receivable from `queue` now (hidden for `visibility`), by receives of up
/// to 10 until one comes back empty: an adapter may answer fewer than it was asked for (SQS
/// FIFO: one message per call).
pub async fn receive_all<Q: Queue + ?Sized>(
    q: &Q,
    queue: &str,
    visibility: Duration,
) -> Vec<Received> {
    let mut all = Vec::new();
    loop {
        let got = q.receive(queue, 10, visibility).await.unwrap();
        if got.is_empty() {
            return all;
        }
        all.extend(got);
    }
}

/// `Watched`'s impl of the queue port: each listed method (its arguments, and the `Ok` type
/// of its answer) is counted and is the inner queue's; the methods that do more follow,
/// written out.
macro_rules! forward {
    ({ $($name:ident($($arg:ident: $ty:ty),*) -> $ok:ty;)* } $($written_out:tt)*) => {
        #[async_trait]
        impl<Q: Queue> Queue for Watched<Q> {
            $(
                async fn $name(&self, $($arg: $ty),*) -> Result<$ok, QueueError> {
                    self.count(stringify!($name));
                    self.inner.$name($($arg),*).await
                }
            )*
            $($written_out)*
        }
    };
}

forward! {
    {
        send(queue: &str, group: Option<&str>, body: &str, delay: Duration) -> String;
        send_batch(queue: &str, messages: &[Outgoing]) -> Vec<String>;
        receive(queue: &str, max: usize, visibility: Duration) -> Vec<Received>;
        delete(queue: &str, receipt: &str) -> ();
        dead_letters(queue: &str, limit: usize) -> Vec<DeadLetter>;
        depth(queue: &str) -> Depth;
        release_in_flight(queue: &str) -> u64;
        open_inbox(tag: &str) -> Option<String>;
        close_inbox(inbox: &str) -> ();
    }

    async fn retry_after(&self, q: &str, receipt: &str, d: Duration) -> Result<(), QueueError> {
        self.count("retry_after");
        self.retries.lock().unwrap().push((receipt.to_owned(), d));
        self.inner.retry_after(q, receipt, d).await
    }

    async fn wait_for_work(&self, max_wait: Duration) {
        self.inner.wait_for_work(max_wait).await
    }
}
