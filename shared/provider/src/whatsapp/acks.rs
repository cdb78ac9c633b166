//! Server-ack correlation for outgoing messages.
//!
//! whatsapp-rust resolves a send once the encrypted stanza is written to the socket;
//! whether WhatsApp accepted it arrives later, as `Event::ServerAck { id, error }` on the
//! session's event stream. The send path registers its message id here *before* it
//! writes (so an ack that overtakes the send's own completion is not lost), then waits
//! on the returned [`PendingAck`]; the session pump resolves it from the event.
//!
//! Cleanup is structural: a [`PendingAck`] removes its entry when dropped, so every
//! path out of a send (ack, nack, timeout, error before the write, the caller dropping
//! the future) leaves nothing behind. When the connection drops, the pump fails every
//! entry ([`AckTable::fail_all`]); when the session ends, it also refuses new ones
//! ([`AckTable::close`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;

/// What became of a sent message, as far as the server ack is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AckOutcome {
    /// The server accepted the message.
    Acked,
    /// The server refused it with this nack code (e.g. `"403"`, `"429"`).
    Nacked(String),
    /// The connection dropped (or the session ended) before the ack arrived: the ack
    /// of that stanza will never come, whether or not the server got it.
    ConnectionLost,
    /// No ack within the wait.
    TimedOut,
}

/// Pending acks of one session: message id → the waiting sends.
#[derive(Default)]
pub(crate) struct AckTable {
    state: Mutex<State>,
    /// Tells apart two registrations of the same id, so a finished one removes only
    /// its own entry.
    tokens: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Set once the session ended: no ack can arrive any more.
    closed: bool,
    /// Normally one waiter per id; several only if the same id is sent twice at once
    /// (all of them get the one ack).
    pending: HashMap<String, Vec<(u64, oneshot::Sender<AckOutcome>)>>,
}

impl AckTable {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts waiting for the ack of `id`. Must be called before the message is
    /// written. On a closed table (the session ended) the returned wait resolves
    /// at once with [`AckOutcome::ConnectionLost`].
    pub(crate) fn register(self: &Arc<Self>, id: &str) -> PendingAck {
        let token = self.tokens.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let mut state = self.state();
        if state.closed {
            // Dropping `tx` makes the wait report ConnectionLost.
            drop(tx);
        } else {
            state
                .pending
                .entry(id.to_string())
                .or_default()
                .push((token, tx));
        }
        PendingAck {
            table: self.clone(),
            id: id.to_string(),
            token,
            rx,
        }
    }

    /// Resolves the waiters of `id` with the server's answer (`error` = the nack
    /// code, if any). Returns whether anyone was waiting: acks of stanzas this
    /// provider did not send through `send` (receipts, other ids) are ignored.
    pub(crate) fn resolve(&self, id: &str, error: Option<&str>) -> bool {
        let waiters = self.state().pending.remove(id);
        let Some(waiters) = waiters else {
            return false;
        };
        let outcome = match error {
            Some(code) => AckOutcome::Nacked(code.to_string()),
            None => AckOutcome::Acked,
        };
        for (_, tx) in waiters {
            // A waiter that gave up meanwhile is fine.
            let _ = tx.send(outcome.clone());
        }
        true
    }

    /// The connection dropped: every pending send learns it now instead of waiting
    /// for its timeout. New registrations are still accepted (the library
    /// reconnects by itself).
    pub(crate) fn fail_all(&self) {
        let pending = std::mem::take(&mut self.state().pending);
        fail(pending);
    }

    /// The session ended: fails every pending send and refuses new ones.
    pub(crate) fn close(&self) {
        let pending = {
            let mut state = self.state();
            state.closed = true;
            std::mem::take(&mut state.pending)
        };
        fail(pending);
    }

    /// How many sends are waiting (for tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.state().pending.values().map(Vec::len).sum()
    }

    /// Removes one registration (its id entry too once empty).
    fn remove(&self, id: &str, token: u64) {
        let mut state = self.state();
        if let Some(waiters) = state.pending.get_mut(id) {
            waiters.retain(|(t, _)| *t != token);
            if waiters.is_empty() {
                state.pending.remove(id);
            }
        }
    }
}

fn fail(pending: HashMap<String, Vec<(u64, oneshot::Sender<AckOutcome>)>>) {
    for (_, tx) in pending.into_values().flatten() {
        let _ = tx.send(AckOutcome::ConnectionLost);
    }
}

/// One send waiting for its ack. Dropping it unregisters it.
pub(crate) struct PendingAck {
    table: Arc<AckTable>,
    id: String,
    token: u64,
    rx: oneshot::Receiver<AckOutcome>,
}

impl PendingAck {
    /// Waits up to `timeout` for the ack (the entry is removed on return, whatever
    /// the outcome). A table failed or closed meanwhile reports
    /// [`AckOutcome::ConnectionLost`].
    pub(crate) async fn wait(mut self, timeout: Duration) -> AckOutcome {
        match tokio::time::timeout(timeout, &mut self.rx).await {
            Ok(Ok(outcome)) => outcome,
            // The sender was dropped without an answer: failed or closed table.
            Ok(Err(_)) => AckOutcome::ConnectionLost,
            Err(_) => AckOutcome::TimedOut,
        }
    }
}

impl Drop for PendingAck {
    fn drop(&mut self) {
        self.table.remove(&self.id, self.token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Duration = Duration::from_millis(50);

    #[tokio::test]
    async fn ack_resolves_and_cleans_up() {
        let table = Arc::new(AckTable::default());
        let pending = table.register("3EB0A");
        assert_eq!(table.len(), 1);
        assert!(table.resolve("3EB0A", None));
        assert_eq!(table.len(), 0);
        assert_eq!(pending.wait(SHORT).await, AckOutcome::Acked);
        assert_eq!(table.len(), 0);
    }

    #[tokio::test]
    async fn ack_before_the_wait_is_not_lost() {
        // The ack may overtake the send future's own completion.
        let table = Arc::new(AckTable::default());
        let pending = table.register("3EB0B");
        table.resolve("3EB0B", Some("403"));
        tokio::time::sleep(SHORT).await;
        assert_eq!(
            pending.wait(SHORT).await,
            AckOutcome::Nacked("403".to_string())
        );
    }

    #[tokio::test]
    async fn unknown_ids_are_ignored() {
        let table = Arc::new(AckTable::default());
        let _pending = table.register("3EB0C");
        assert!(!table.resolve("OTHER", None));
        assert_eq!(table.len(), 1);
    }

    #[tokio::test]
    async fn timeout_removes_the_entry() {
        let table = Arc::new(AckTable::default());
        let pending = table.register("3EB0D");
        assert_eq!(pending.wait(SHORT).await, AckOutcome::TimedOut);
        assert_eq!(table.len(), 0);
        // A late ack finds nobody.
        assert!(!table.resolve("3EB0D", None));
    }

    #[tokio::test]
    async fn dropping_without_waiting_removes_the_entry() {
        let table = Arc::new(AckTable::default());
        let pending = table.register("3EB0E");
        drop(pending);
        assert_eq!(table.len(), 0);
    }

    #[tokio::test]
    async fn connection_loss_fails_pending_sends_but_accepts_new_ones() {
        let table = Arc::new(AckTable::default());
        let a = table.register("A");
        let b = table.register("B");
        table.fail_all();
        assert_eq!(table.len(), 0);
        assert_eq!(a.wait(SHORT).await, AckOutcome::ConnectionLost);
        assert_eq!(b.wait(SHORT).await, AckOutcome::ConnectionLost);
        let c = table.register("C");
        table.resolve("C", None);
        assert_eq!(c.wait(SHORT).await, AckOutcome::Acked);
    }

    #[tokio::test]
    async fn closed_table_refuses_new_sends() {
        let table = Arc::new(AckTable::default());
        let pending = table.register("A");
        table.close();
        assert_eq!(pending.wait(SHORT).await, AckOutcome::ConnectionLost);
        let late = table.register("B");
        assert_eq!(table.len(), 0);
        assert_eq!(late.wait(SHORT).await, AckOutcome::ConnectionLost);
    }

    #[tokio::test]
    async fn duplicate_ids_share_the_ack_and_clean_up_separately() {
        let table = Arc::new(AckTable::default());
        let first = table.register("DUP");
        let second = table.register("DUP");
        assert_eq!(table.len(), 2);
        drop(first);
        assert_eq!(table.len(), 1);
        table.resolve("DUP", None);
        assert_eq!(second.wait(SHORT).await, AckOutcome::Acked);
        assert_eq!(table.len(), 0);
    }
}
