//! Periodic upkeep next to the commands loop: expired idempotency keys are purged, and
//! sends left `queued` for long with nobody touching them get their command again (where
//! a message and its command are not committed together, as on DynamoDB with SQS, a send
//! whose command was lost would otherwise wait for the next start).

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::watch;
use uuid::Uuid;
use wa_core::messages::{Message, MessageStatus};
use wa_core::queue::enqueue_batch;
use wa_core::store::{PendingCursor, StoreError};
use wa_core::time::{self, OffsetDateTime};

use crate::Worker;
use crate::restore::send_command;

/// The upkeep's schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upkeep {
    /// How often expired idempotency keys are purged (the first time right after the
    /// start). Default 1 hour.
    pub purge_every: Duration,
    /// How often queued sends are looked at for a lost command. Default 1 minute.
    pub redrive_every: Duration,
    /// How long a send must have stayed `queued` untouched (and past its retry time) before
    /// its command counts as lost; each such send is queued again at most once per this
    /// long. Default 15 minutes.
    pub redrive_after: Duration,
}

impl Default for Upkeep {
    fn default() -> Self {
        Upkeep {
            purge_every: Duration::from_secs(3600),
            redrive_every: Duration::from_secs(60),
            redrive_after: Duration::from_secs(15 * 60),
        }
    }
}

/// Whether `m` looks like a send whose command was lost: `queued`, and neither changed
/// nor due for a retry within `after` before `now`.
pub fn is_stale(m: &Message, now: OffsetDateTime, after: Duration) -> bool {
    let last = match m.next_attempt_at {
        Some(at) if at > m.updated_at => at,
        _ => m.updated_at,
    };
    m.status == MessageStatus::Queued && last + after <= now
}

/// The sends queued again recently, and when.
type Redriven = HashMap<(Uuid, String), OffsetDateTime>;

impl Worker {
    /// Runs the upkeep until `shutdown` turns true.
    pub(crate) async fn upkeep(&self, mut shutdown: watch::Receiver<bool>) {
        let mut purge = tokio::time::interval(self.upkeep.purge_every);
        let mut redrive = tokio::time::interval(self.upkeep.redrive_every);
        // The first re-drive comes one period after the start (the restore just queued
        // every pending send).
        redrive.reset();
        let mut redriven = Redriven::new();
        while !*shutdown.borrow() {
            tokio::select! {
                _ = purge.tick() => match self.store.purge_expired_idempotency(time::now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(keys = n, "purged expired idempotency keys"),
                    Err(e) => tracing::warn!(error = %e, "purging expired idempotency keys failed"),
                },
                _ = redrive.tick() => match self.redrive_stale(&mut redriven).await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(messages = n, "queued the command of sends left queued too long again"),
                    Err(e) => tracing::warn!(error = %e, "re-driving stale queued sends failed"),
                },
                changed = shutdown.changed() => if changed.is_err() {
                    return;
                },
            }
        }
    }

    /// Queues a command again for every stale queued send not re-driven within
    /// `redrive_after`; returns how many. Idempotent: a command whose message was sent
    /// meanwhile finds it sent and does nothing.
    pub(crate) async fn redrive_stale(&self, redriven: &mut Redriven) -> Result<usize, StoreError> {
        let now = time::now();
        let after = self.upkeep.redrive_after;
        redriven.retain(|_, at| *at + after > now);
        let mut cursor: Option<PendingCursor> = None;
        let mut n = 0;
        loop {
            let (page, next) = self
                .store
                .pending_page(cursor.as_ref(), self.restore_page)
                .await?;
            let stale: Vec<_> = page
                .iter()
                .filter(|m| is_stale(m, now, after))
                .filter(|m| !redriven.contains_key(&(m.device_id, m.message_id.clone())))
                .collect();
            enqueue_batch(
                &*self.queue,
                stale.iter().map(|m| send_command(m)).collect(),
            )
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?;
            for m in stale {
                redriven.insert((m.device_id, m.message_id.clone()), now);
                n += 1;
            }
            match next {
                Some(c) => cursor = Some(c),
                None => return Ok(n),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(updated_ago: Duration, retry_in: Option<Duration>) -> Message {
        let now = time::now();
        let mut m = wa_testkit::fixtures::outbound_text(Uuid::now_v7(), Uuid::now_v7(), "x", now);
        m.status = MessageStatus::Queued;
        m.updated_at = now - updated_ago;
        m.next_attempt_at = retry_in.map(|d| now + d);
        m
    }

    const AFTER: Duration = Duration::from_secs(900);

    #[test]
    fn a_queued_send_untouched_for_long_is_stale() {
        assert!(is_stale(&queued(AFTER * 2, None), time::now(), AFTER));
    }

    #[test]
    fn a_recently_touched_send_is_not() {
        assert!(!is_stale(&queued(AFTER / 2, None), time::now(), AFTER));
    }

    #[test]
    fn a_send_waiting_for_its_retry_is_not() {
        // Rate limited long ago, but its retry was pushed far out.
        let m = queued(AFTER * 2, Some(AFTER * 3));
        assert!(!is_stale(&m, time::now(), AFTER));
        assert!(is_stale(&m, time::now() + AFTER * 4, AFTER));
    }

    #[test]
    fn only_queued_sends_are_stale() {
        for s in [
            MessageStatus::Sending,
            MessageStatus::Sent,
            MessageStatus::Failed,
        ] {
            let mut m = queued(AFTER * 2, None);
            m.status = s;
            assert!(!is_stale(&m, time::now(), AFTER), "{s:?}");
        }
    }
}
