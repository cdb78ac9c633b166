//! Queues in tests. [`Watched`] passes the queue port's required methods to the queue it
//! wraps and records the `retry_after` calls tests assert on; the provided methods keep the
//! port's defaults, built on those (a `release` is a retry after zero, a
//! `delete_and_take_next` a delete). [`nothing_received`] checks that a queue is drained.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use wa_core::queue::{DeadLetter, Depth, Queue, QueueError, Received};

/// `inner`, with a record of the visibility every `retry_after` asked for.
pub struct Watched<Q> {
    inner: Q,
    retries: Mutex<Vec<(String, Duration)>>,
}

impl<Q: Queue> Watched<Q> {
    pub fn new(inner: Q) -> Watched<Q> {
        Watched {
            inner,
            retries: Mutex::new(Vec::new()),
        }
    }

    /// Every `retry_after` so far, in call order: its receipt and its delay.
    pub fn retries(&self) -> Vec<(String, Duration)> {
        self.retries.lock().unwrap().clone()
    }
}

/// Whether receiving from `queue` (up to 10 messages, hidden for `visibility`) gets none.
pub async fn nothing_received<Q: Queue + ?Sized>(q: &Q, queue: &str, visibility: Duration) -> bool {
    q.receive(queue, 10, visibility).await.unwrap().is_empty()
}

/// `Watched`'s impl of the queue port: each listed method (its arguments, and the `Ok` type
/// of its answer) is the inner queue's; the methods that do more follow, written out.
macro_rules! forward {
    ({ $($name:ident($($arg:ident: $ty:ty),*) -> $ok:ty;)* } $($written_out:tt)*) => {
        #[async_trait]
        impl<Q: Queue> Queue for Watched<Q> {
            $(
                async fn $name(&self, $($arg: $ty),*) -> Result<$ok, QueueError> {
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
        receive(queue: &str, max: usize, visibility: Duration) -> Vec<Received>;
        delete(queue: &str, receipt: &str) -> ();
        dead_letters(queue: &str, limit: usize) -> Vec<DeadLetter>;
        depth(queue: &str) -> Depth;
    }

    async fn retry_after(&self, q: &str, receipt: &str, d: Duration) -> Result<(), QueueError> {
        self.retries.lock().unwrap().push((receipt.to_owned(), d));
        self.inner.retry_after(q, receipt, d).await
    }
}
