//! The one queue consume loop of every long-running consumer (the worker's commands, the
//! event-driven sends, the webhook nudges): receive what there are free slots for, run each
//! message's handler on its own task (at most `concurrency` at once), keep the message
//! invisible while its handler runs, then settle it as the handler decided: delete it,
//! make it visible again after a delay, or move it to the dead letters. A deleted message's
//! group may go on in the same slot with its next message, taken with the deletion (or by
//! the handler, with its outcome), a few at most before the slot goes back. On shutdown no
//! new message is taken (a long-polling receive is abandoned, not waited for) and the
//! handlers in flight finish first.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, watch};

use crate::queue::{Queue, QueueError, Received};

/// How a consumer reads its queue.
#[derive(Debug, Clone)]
pub struct ConsumeOptions {
    /// The logical queue (`COMMANDS`, `EVENTS`, `SENDS`).
    pub queue: &'static str,
    /// Handlers that may run at once (at least 1). A receive asks for at most the free
    /// slots, and at most 10 (SQS's limit).
    pub concurrency: usize,
    /// How long a received message stays invisible. While its handler runs, the loop
    /// extends it every third of this (`retry_after(receipt, visibility)`), so a slow
    /// handler is not delivered a second time meanwhile.
    pub visibility: Duration,
    /// The first wait for work after an empty receive; it doubles after each empty one, up
    /// to `idle_max`, and starts again at `idle_min` once something came.
    pub idle_min: Duration,
    pub idle_max: Duration,
    /// Called at every turn of the loop (a liveness heartbeat, such as the worker
    /// container's health check); it must be cheap.
    pub on_turn: fn(),
}

/// An `on_turn` that does nothing.
pub fn no_heartbeat() {}

/// What to do with a handled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    /// Processed: delete it.
    Delete,
    /// Not yet: visible again after this delay (`retry_after`).
    RetryAfter(Duration),
    /// Can never be processed: moved to the dead letters with this reason.
    DeadLetter(String),
    /// The handler deleted it itself, in the commit that recorded its outcome, and took
    /// its group's next message with it when there was one (`Some`): handled next in the
    /// same slot, or given back (`Queue::release`).
    Settled(Option<Received>),
}

/// The most messages one receive asks for (SQS's limit).
const MAX_RECEIVE: usize = 10;

/// How many messages of its group a handler's slot takes on after the one it was received
/// for, before it gives the slot back to the receive loop (other groups get their turn).
const MAX_FOLLOW_ON: usize = 32;

/// Consumes `options.queue` until `shutdown` turns true (or its sender is gone), handing
/// each message to `handler` and settling it with the answer. A settle that fails is
/// logged: the message comes back after its visibility timeout. A receive that fails is
/// logged and retried after the idle wait. Returns once every handler in flight finished.
pub async fn consume<H, F>(
    queue: Arc<dyn Queue>,
    options: ConsumeOptions,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn(Received) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Settle> + Send + 'static,
{
    let slots = options.concurrency.max(1);
    let permits = Arc::new(Semaphore::new(slots));
    // Woken when a handler finishes: a slot is free, and in a FIFO queue the next message
    // of its group may now be deliverable.
    let done = Arc::new(Notify::new());
    let mut idle = options.idle_min;
    loop {
        if *shutdown.borrow() {
            break;
        }
        (options.on_turn)();
        let free = permits.available_permits();
        let batch = if free == 0 {
            Vec::new()
        } else {
            // A receive may long-poll (SQS): shutting down does not wait for it.
            let received = tokio::select! {
                r = queue.receive(options.queue, free.min(MAX_RECEIVE), options.visibility) => r,
                changed = shutdown.changed() => {
                    // Stopping, or nobody left to say so.
                    if changed.is_err() {
                        break;
                    }
                    continue;
                }
            };
            match received {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(queue = options.queue, error = %e, "receiving failed");
                    Vec::new()
                }
            }
        };
        if batch.is_empty() {
            tokio::select! {
                _ = queue.wait_for_work(idle) => {}
                _ = done.notified() => {}
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
            idle = (idle * 2).min(options.idle_max.max(options.idle_min));
            continue;
        }
        idle = options.idle_min;
        for msg in batch {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let (queue, handler, done) = (queue.clone(), handler.clone(), done.clone());
            let (name, visibility) = (options.queue, options.visibility);
            let stopping = shutdown.clone();
            tokio::spawn(async move {
                let mut msg = msg;
                let mut taken = 0;
                loop {
                    let received = msg.clone();
                    let work = handler(msg);
                    let settle =
                        with_heartbeat(&*queue, name, &received.receipt, visibility, work).await;
                    let then = after(&settle, received.group.is_some(), taken, *stopping.borrow());
                    match carry_out(&*queue, name, &received, &settle, then, visibility).await {
                        Ok(Some(next)) => {
                            taken += 1;
                            msg = next;
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(queue = name, message_id = %received.message_id, error = %e, "settling a message failed; it will come back");
                            break;
                        }
                    }
                }
                drop(permit);
                done.notify_one();
            });
        }
    }
    // Drain: every handler in flight has finished once all its slots are back.
    let _ = permits.acquire_many(slots as u32).await;
}

/// Runs `work` while extending the message's visibility every third of `visibility` (the
/// loop's own, and a handler's for a message it settles itself, such as a command handed
/// to it by another worker).
pub async fn with_heartbeat<T>(
    queue: &dyn Queue,
    name: &str,
    receipt: &str,
    visibility: Duration,
    work: impl Future<Output = T>,
) -> T {
    let every = visibility / 3;
    if every.is_zero() {
        return work.await;
    }
    let heartbeat = async {
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = queue.retry_after(name, receipt, visibility).await {
                tracing::warn!(queue = name, error = %e, "could not extend a message's visibility");
            }
        }
    };
    tokio::select! {
        out = work => out,
        _ = heartbeat => unreachable!("the heartbeat loops until the work is done"),
    }
}

/// What a slot does once its handler answered.
#[derive(Debug, Clone, PartialEq, Eq)]
enum After {
    /// Settle the message as the handler said (`apply`); the slot is free.
    Apply,
    /// Delete it and take its group's next message if visible (`delete_and_take_next`).
    DeleteAndTakeNext,
    /// The handler took the next message itself: handle it in this slot.
    HandleNext(Received),
}

/// The slot's next step after `settle`, for a message of a group (`grouped`) after `taken`
/// follow-ons, while the loop is `stopping` or not: a group with a backlog goes on in the
/// same slot, in order, without waiting for the next receive, until [`MAX_FOLLOW_ON`] gives
/// other groups their turn or the loop stops (a taken message is then given back).
fn after(settle: &Settle, grouped: bool, taken: usize, stopping: bool) -> After {
    let go_on = taken < MAX_FOLLOW_ON && !stopping;
    match settle {
        Settle::Delete if go_on && grouped => After::DeleteAndTakeNext,
        Settle::Settled(Some(next)) if go_on => After::HandleNext(next.clone()),
        _ => After::Apply,
    }
}

/// Carries out `then` for `received`; the message to handle next in the slot, if any.
async fn carry_out(
    queue: &dyn Queue,
    name: &str,
    received: &Received,
    settle: &Settle,
    then: After,
    visibility: Duration,
) -> Result<Option<Received>, QueueError> {
    match then {
        After::Apply => apply(queue, name, received, settle).await.map(|()| None),
        After::DeleteAndTakeNext => queue.delete_and_take_next(name, received, visibility).await,
        After::HandleNext(next) => Ok(Some(next)),
    }
}

/// Settles one message of queue `name` as its handler decided. On failure the message
/// comes back after its visibility timeout.
pub async fn apply(
    queue: &dyn Queue,
    name: &str,
    received: &Received,
    settle: &Settle,
) -> Result<(), QueueError> {
    match settle {
        Settle::Delete => queue.delete(name, &received.receipt).await,
        Settle::RetryAfter(delay) => queue.retry_after(name, &received.receipt, *delay).await,
        Settle::DeadLetter(reason) => queue.dead_letter(name, received, reason).await,
        Settle::Settled(None) => Ok(()),
        Settle::Settled(Some(next)) => queue.release(name, next).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use tokio::time::Instant;

    use crate::queue::{DeadLetter, Depth};

    /// What the loop did to the queue, in order.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Call {
        Delete(String),
        RetryAfter(String, Duration),
        DeadLetter(String, String),
    }

    /// An in-memory queue on tokio's clock (tests run with paused time), recording every
    /// settle. `long_poll` makes an empty receive wait that long first.
    #[derive(Default)]
    struct TestQueue {
        state: Mutex<State>,
        long_poll: Duration,
        receives: AtomicUsize,
    }

    #[derive(Default)]
    struct State {
        /// body -> (visible at, receive count)
        messages: Vec<(String, Instant, u32)>,
        calls: Vec<Call>,
    }

    impl TestQueue {
        fn with(bodies: &[&str]) -> Arc<TestQueue> {
            let q = TestQueue::default();
            let now = Instant::now();
            q.state.lock().unwrap().messages =
                bodies.iter().map(|b| ((*b).to_owned(), now, 0)).collect();
            Arc::new(q)
        }

        fn calls(&self) -> Vec<Call> {
            self.state.lock().unwrap().calls.clone()
        }

        fn set_visible(&self, receipt: &str, at: Instant) -> Result<(), QueueError> {
            let mut s = self.state.lock().unwrap();
            let m = s
                .messages
                .iter_mut()
                .find(|m| m.0 == receipt)
                .ok_or(QueueError::InvalidReceipt)?;
            m.1 = at;
            Ok(())
        }
    }

    #[async_trait]
    impl Queue for TestQueue {
        async fn send(
            &self,
            _: &str,
            _: Option<&str>,
            body: &str,
            _: Duration,
        ) -> Result<String, QueueError> {
            let mut s = self.state.lock().unwrap();
            s.messages.push((body.to_owned(), Instant::now(), 0));
            Ok(body.to_owned())
        }

        async fn receive(
            &self,
            _: &str,
            max: usize,
            visibility: Duration,
        ) -> Result<Vec<Received>, QueueError> {
            self.receives.fetch_add(1, Ordering::SeqCst);
            let take = |s: &mut State| {
                let now = Instant::now();
                let mut out = Vec::new();
                for m in s.messages.iter_mut().filter(|m| m.1 <= now).take(max) {
                    m.1 = now + visibility;
                    m.2 += 1;
                    // The body doubles as message id and receipt.
                    out.push(Received {
                        message_id: m.0.clone(),
                        receipt: m.0.clone(),
                        body: m.0.clone(),
                        group: None,
                        receive_count: m.2,
                    });
                }
                out
            };
            let got = take(&mut self.state.lock().unwrap());
            if got.is_empty() && !self.long_poll.is_zero() {
                tokio::time::sleep(self.long_poll).await;
                return Ok(take(&mut self.state.lock().unwrap()));
            }
            Ok(got)
        }

        async fn delete(&self, _: &str, receipt: &str) -> Result<(), QueueError> {
            let mut s = self.state.lock().unwrap();
            s.calls.push(Call::Delete(receipt.to_owned()));
            s.messages.retain(|m| m.0 != receipt);
            Ok(())
        }

        async fn retry_after(
            &self,
            _: &str,
            receipt: &str,
            delay: Duration,
        ) -> Result<(), QueueError> {
            self.state
                .lock()
                .unwrap()
                .calls
                .push(Call::RetryAfter(receipt.to_owned(), delay));
            self.set_visible(receipt, Instant::now() + delay)
        }

        async fn dead_letter(&self, _: &str, r: &Received, reason: &str) -> Result<(), QueueError> {
            let mut s = self.state.lock().unwrap();
            s.calls
                .push(Call::DeadLetter(r.receipt.clone(), reason.to_owned()));
            s.messages.retain(|m| m.0 != r.receipt);
            Ok(())
        }

        async fn dead_letters(&self, _: &str, _: usize) -> Result<Vec<DeadLetter>, QueueError> {
            Ok(Vec::new())
        }

        async fn depth(&self, _: &str) -> Result<Depth, QueueError> {
            Ok(Depth {
                visible: self.state.lock().unwrap().messages.len() as u64,
                ..Depth::default()
            })
        }
    }

    fn options(concurrency: usize, visibility: Duration) -> ConsumeOptions {
        ConsumeOptions {
            queue: "q",
            concurrency,
            visibility,
            idle_min: Duration::from_millis(10),
            idle_max: Duration::from_millis(100),
            on_turn: no_heartbeat,
        }
    }

    /// Waits (on the paused clock) until `done` holds.
    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(3600);
        while !done() {
            assert!(Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn settles_as_the_handler_decides() {
        let q = TestQueue::with(&["ok", "later", "poison"]);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(consume(
            q.clone(),
            options(4, Duration::from_secs(30)),
            |m: Received| async move {
                match (m.body.as_str(), m.receive_count) {
                    ("ok", _) | ("later", 2) => Settle::Delete,
                    ("later", _) => Settle::RetryAfter(Duration::from_secs(7)),
                    _ => Settle::DeadLetter("malformed".into()),
                }
            },
            stopped,
        ));
        until("every message settled", || q.calls().len() == 4).await;
        stop.send(true).unwrap();
        task.await.unwrap();
        let mut calls = q.calls();
        let last = calls.pop().unwrap();
        assert_eq!(
            last,
            Call::Delete("later".into()),
            "delivered again after 7 s"
        );
        calls.sort_by_key(|c| format!("{c:?}"));
        assert_eq!(
            calls,
            [
                Call::DeadLetter("poison".into(), "malformed".into()),
                Call::Delete("ok".into()),
                Call::RetryAfter("later".into(), Duration::from_secs(7)),
            ]
        );
        assert_eq!(q.depth("q").await.unwrap().visible, 0);
    }

    static TURNS: AtomicUsize = AtomicUsize::new(0);
    fn count_turn() {
        TURNS.fetch_add(1, Ordering::SeqCst);
    }

    /// The heartbeat is called while the loop idles on an empty queue, not only when work
    /// comes: an idle worker is a healthy one.
    #[tokio::test(start_paused = true)]
    async fn the_heartbeat_beats_while_idle() {
        let q = TestQueue::with(&[]);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(consume(
            q.clone(),
            ConsumeOptions {
                on_turn: count_turn,
                ..options(1, Duration::from_secs(30))
            },
            |_: Received| async { Settle::Delete },
            stopped,
        ));
        until("several turns", || TURNS.load(Ordering::SeqCst) >= 3).await;
        stop.send(true).unwrap();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_concurrency_handlers_run_at_once() {
        let bodies: Vec<String> = (0..25).map(|i| i.to_string()).collect();
        let q = TestQueue::with(&bodies.iter().map(String::as_str).collect::<Vec<_>>());
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = watch::channel(false);
        let (r, m) = (running.clone(), most.clone());
        let task = tokio::spawn(consume(
            q.clone(),
            options(3, Duration::from_secs(30)),
            move |_| {
                let (running, most) = (r.clone(), m.clone());
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    Settle::Delete
                }
            },
            stopped,
        ));
        until("all handled", || q.calls().len() == 25).await;
        stop.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(
            most.load(Ordering::SeqCst),
            3,
            "the slots were used, never more"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_waits_for_handlers_in_flight_and_takes_nothing_new() {
        let q = TestQueue::with(&["slow"]);
        let (stop, stopped) = watch::channel(false);
        let started = Arc::new(Notify::new());
        let s = started.clone();
        let task = tokio::spawn(consume(
            q.clone(),
            options(2, Duration::from_secs(300)),
            move |_| {
                let s = s.clone();
                async move {
                    s.notify_one();
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Settle::Delete
                }
            },
            stopped,
        ));
        started.notified().await;
        let asked = Instant::now();
        stop.send(true).unwrap();
        q.send("q", None, "late", Duration::ZERO).await.unwrap();
        task.await.unwrap();
        assert!(
            Instant::now() - asked >= Duration::from_secs(59),
            "the handler in flight finished first"
        );
        assert_eq!(q.calls(), [Call::Delete("slow".into())]);
        assert_eq!(
            q.depth("q").await.unwrap().visible,
            1,
            "nothing new was taken"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_does_not_wait_for_a_long_poll() {
        let q = Arc::new(TestQueue {
            long_poll: Duration::from_secs(20),
            ..TestQueue::default()
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(consume(
            q.clone(),
            options(2, Duration::from_secs(30)),
            |_| async { Settle::Delete },
            stopped,
        ));
        until("a receive is polling", || {
            q.receives.load(Ordering::SeqCst) > 0
        })
        .await;
        let asked = Instant::now();
        stop.send(true).unwrap();
        task.await.unwrap();
        assert!(
            Instant::now() - asked < Duration::from_secs(20),
            "stopped without waiting out the poll"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_handler_keeps_its_message_hidden() {
        let q = TestQueue::with(&["upload"]);
        let (stop, stopped) = watch::channel(false);
        let handled = Arc::new(Mutex::new(HashMap::<String, u32>::new()));
        let h = handled.clone();
        let task = tokio::spawn(consume(
            q.clone(),
            options(4, Duration::from_secs(30)),
            move |m: Received| {
                let h = h.clone();
                async move {
                    *h.lock().unwrap().entry(m.body.clone()).or_default() += 1;
                    // Three and a half visibility timeouts.
                    tokio::time::sleep(Duration::from_secs(105)).await;
                    Settle::Delete
                }
            },
            stopped,
        ));
        until("handled", || {
            q.calls().contains(&Call::Delete("upload".into()))
        })
        .await;
        stop.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(
            handled.lock().unwrap()["upload"],
            1,
            "never delivered twice"
        );
        let calls = q.calls();
        let beats: Vec<_> = calls
            .iter()
            .filter(|c| matches!(c, Call::RetryAfter(_, _)))
            .collect();
        assert!(beats.len() >= 3, "{calls:?}");
        assert!(
            beats
                .iter()
                .all(|c| **c == Call::RetryAfter("upload".into(), Duration::from_secs(30)))
        );
        assert_eq!(calls.last(), Some(&Call::Delete("upload".into())));
    }

    fn received(body: &str, group: Option<&str>) -> Received {
        Received {
            message_id: body.into(),
            receipt: body.into(),
            body: body.into(),
            group: group.map(str::to_owned),
            receive_count: 1,
        }
    }

    #[test]
    fn a_deleted_message_of_a_group_takes_its_next_one() {
        for taken in [0, MAX_FOLLOW_ON - 1] {
            assert_eq!(
                after(&Settle::Delete, true, taken, false),
                After::DeleteAndTakeNext
            );
        }
    }

    #[test]
    fn an_ungrouped_message_is_only_deleted() {
        assert_eq!(after(&Settle::Delete, false, 0, false), After::Apply);
    }

    #[test]
    fn a_next_message_taken_by_the_handler_is_handled_in_the_slot() {
        let next = received("b", Some("g"));
        for grouped in [true, false] {
            assert_eq!(
                after(&Settle::Settled(Some(next.clone())), grouped, 0, false),
                After::HandleNext(next.clone())
            );
        }
    }

    #[test]
    fn the_slot_goes_back_after_its_follow_ons_or_when_stopping() {
        let settled = Settle::Settled(Some(received("b", Some("g"))));
        for (taken, stopping) in [(MAX_FOLLOW_ON, false), (0, true)] {
            assert_eq!(after(&Settle::Delete, true, taken, stopping), After::Apply);
            assert_eq!(after(&settled, true, taken, stopping), After::Apply);
        }
    }

    #[test]
    fn retries_dead_letters_and_bare_settlements_are_applied() {
        for settle in [
            Settle::RetryAfter(Duration::from_secs(1)),
            Settle::DeadLetter("why".into()),
            Settle::Settled(None),
        ] {
            assert_eq!(after(&settle, true, 0, false), After::Apply, "{settle:?}");
        }
    }

    /// A handler that settled its message and took the next one itself: the next one is
    /// handled in the same slot, and the loop deletes neither; one taken while stopping is
    /// given back.
    #[tokio::test(start_paused = true)]
    async fn a_next_message_taken_by_the_handler_is_handled_next() {
        let q = TestQueue::with(&["a", "b"]);
        // b was taken with a's settlement: in flight, not for `receive`.
        q.set_visible("b", Instant::now() + Duration::from_secs(3600))
            .unwrap();
        let handled = Arc::new(Mutex::new(Vec::<String>::new()));
        let (stop, stopped) = watch::channel(false);
        let h = handled.clone();
        let task = tokio::spawn(consume(
            q.clone(),
            options(4, Duration::from_secs(30)),
            move |m: Received| {
                let h = h.clone();
                async move {
                    h.lock().unwrap().push(m.body.clone());
                    match m.body.as_str() {
                        "a" => Settle::Settled(Some(received("b", Some("g")))),
                        _ => Settle::Settled(None),
                    }
                }
            },
            stopped,
        ));
        until("b handled", || handled.lock().unwrap().len() == 2).await;
        stop.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(*handled.lock().unwrap(), ["a", "b"]);
        assert_eq!(
            q.calls(),
            Vec::<Call>::new(),
            "both settled by their handler"
        );

        q.send("q", None, "c", Duration::ZERO).await.unwrap();
        apply(
            &*q,
            "q",
            &received("a", Some("g")),
            &Settle::Settled(Some(received("c", None))),
        )
        .await
        .unwrap();
        assert_eq!(
            q.calls(),
            [Call::RetryAfter("c".into(), Duration::ZERO)],
            "a next message not handled is given back"
        );
    }
}
