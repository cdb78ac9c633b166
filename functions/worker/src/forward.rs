//! Commands forwarded to their device's owner. Every worker receives from the one commands
//! queue; a command of a device another live worker holds is not handed back to the queue
//! for the owner to receive some day, but forwarded to the owner's own inbox (a queue of
//! its process, `Queue::open_inbox`, named in its membership record) as a [`Pointer`]:
//! the command's body and the receipt of its delivery. The command itself stays in the
//! commands queue, hidden and at the head of its device's group, until the owner settles
//! it through that receipt. So:
//!
//! - the device's commands keep their order (the group is blocked while the owner handles
//!   the forwarded one, exactly as if the owner had received it);
//! - nothing is lost when a pointer is: an owner that died, or closed its inbox, leaves the
//!   command to come back when its visibility ends, to whoever holds the device then;
//! - a stale pointer (its command came back meanwhile and went elsewhere) is noticed by its
//!   receipt, which no longer extends the command's visibility ([`take`]), and dropped.
//!
//! A command forwarded [`MAX_HOPS`] times, or one whose owner has no known inbox, is made
//! visible again after `ELSEWHERE_RETRY`, as before inboxes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wa_core::consume::{self, Settle};
use wa_core::lease::{Member, Owner};
use wa_core::queue::{QueueError, Received};
use wa_core::time::OffsetDateTime;

use crate::Worker;
use crate::commands::ELSEWHERE_RETRY;

/// How often one command may be forwarded before it goes back to the queue instead (the
/// owners it was forwarded to kept moving).
pub const MAX_HOPS: u32 = 3;

/// How long a stopping worker waits for what is left in its inbox.
const DRAIN_WAIT: Duration = Duration::from_secs(1);

/// A command forwarded to its device's owner: where it is, how it was delivered, and when
/// its visibility was last set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    /// The queue the command is in.
    pub queue: String,
    pub message_id: String,
    pub receipt: String,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub receive_count: u32,
    /// When the command's visibility was last set (milliseconds since the epoch, by the
    /// forwarding worker's clock): it stays hidden for the visibility timeout from then.
    pub hidden_at_ms: i64,
    /// How often it was forwarded, this time included.
    pub hops: u32,
}

impl Pointer {
    /// The command's delivery, as its receiver had it.
    pub fn delivery(&self) -> Received {
        Received {
            message_id: self.message_id.clone(),
            receipt: self.receipt.clone(),
            body: self.body.clone(),
            group: self.group.clone(),
            receive_count: self.receive_count,
        }
    }
}

/// How a command reached the worker handling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// The queue the command is in.
    pub queue: String,
    /// Forwards so far (0: received from the queue).
    pub hops: u32,
    /// When its visibility was last set (milliseconds since the epoch).
    pub hidden_at_ms: i64,
}

impl Via {
    /// A command just received from `queue`.
    pub fn received(queue: &str) -> Via {
        Via {
            queue: queue.to_owned(),
            hops: 0,
            hidden_at_ms: now_ms(),
        }
    }
}

/// How a worker takes a pointer from its inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Its command is surely still hidden under its receipt (within the first third of the
    /// visibility timeout since it was hidden, with room for the clocks of two hosts):
    /// handle it.
    Handle,
    /// It may have come back meanwhile: extend its visibility first, which only its
    /// current receipt can do, and drop the pointer when that is refused.
    Check,
}

/// How to take a pointer whose command was hidden at `hidden_at_ms`, at `now_ms`, with
/// the worker's `visibility` timeout.
pub fn take(hidden_at_ms: i64, now_ms: i64, visibility: Duration) -> Take {
    let third = i64::try_from((visibility / 3).as_millis()).unwrap_or(i64::MAX);
    let age = now_ms.saturating_sub(hidden_at_ms);
    // A pointer from the future by more than a third: a clock is off; check.
    if age < third && age > -third {
        Take::Handle
    } else {
        Take::Check
    }
}

/// The inbox to forward a command to, after `hops` forwards, when its device's owner has
/// `inbox` and this worker `own`: none once it was forwarded [`MAX_HOPS`] times, when the
/// owner has no known inbox, or when that inbox is this worker's own (its view of the lease
/// is behind: the queue settles it).
pub fn next_hop(hops: u32, inbox: Option<&str>, own: Option<&str>) -> Option<String> {
    match inbox {
        _ if hops >= MAX_HOPS => None,
        Some(i) if !i.is_empty() && Some(i) != own => Some(i.to_owned()),
        _ => None,
    }
}

/// This worker's inbox and the live workers' inboxes, as of the last balance pass.
#[derive(Default)]
pub struct Inboxes {
    own: Mutex<Option<String>>,
    others: Mutex<HashMap<Owner, String>>,
}

impl Inboxes {
    /// This worker's inbox, if it has one.
    pub fn own(&self) -> Option<String> {
        self.own.lock().unwrap().clone()
    }

    fn set_own(&self, inbox: Option<String>) {
        *self.own.lock().unwrap() = inbox;
    }

    /// Remembers the inboxes of `members` (the live workers), forgetting the others.
    pub fn know(&self, members: &[Member]) {
        *self.others.lock().unwrap() = members
            .iter()
            .filter(|m| !m.inbox.is_empty())
            .map(|m| (m.owner.clone(), m.inbox.clone()))
            .collect();
    }

    /// The inbox of `owner`, if it is known.
    pub fn of(&self, owner: &Owner) -> Option<String> {
        self.others.lock().unwrap().get(owner).cloned()
    }
}

/// The workers of `members` (every record, live or not) whose inboxes are left over at
/// `now`: gone (no heartbeat) for two lease periods `ttl`, having had an inbox. A worker
/// killed without its stop leaves its record and its inbox; whoever sees them first
/// deletes both.
pub fn abandoned(members: &[Member], now: OffsetDateTime, ttl: Duration) -> Vec<&Member> {
    members
        .iter()
        .filter(|m| !m.inbox.is_empty() && !m.is_live(now - ttl * 2))
        .collect()
}

fn now_ms() -> i64 {
    let now = wa_core::time::now();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

impl Worker {
    /// Opens this worker's inbox (none for the only worker of its store, which never
    /// forwards, or where the queue has no inboxes), before it joins the fleet, so that its
    /// membership record names it.
    pub(crate) async fn open_inbox(&self) -> Option<String> {
        if self.leases.is_exclusive() {
            return None;
        }
        let tag = self.leases.owner.incarnation.simple().to_string();
        // The random end of the incarnation: short enough for any queue-name prefix.
        let tag = &tag[tag.len() - 16..];
        let inbox = match self.queue.open_inbox(tag).await {
            Ok(inbox) => inbox,
            Err(e) => {
                tracing::warn!(error = %e, "could not open this worker's inbox; commands of its devices reach it through the commands queue only");
                None
            }
        };
        if let Some(inbox) = &inbox {
            tracing::info!(%inbox, "inbox opened");
        }
        self.leases.inboxes.set_own(inbox.clone());
        inbox
    }

    /// Deletes the inboxes, then the records, of the workers of `members` (every record)
    /// that are long gone at `now` ([`abandoned`]).
    pub(crate) async fn sweep_inboxes(&self, members: &[Member], now: OffsetDateTime) {
        for gone in abandoned(members, now, self.leases.timing.ttl) {
            if gone.owner == self.leases.owner {
                continue;
            }
            match self.queue.close_inbox(&gone.inbox).await {
                Ok(()) => {
                    tracing::info!(worker = %gone.owner, inbox = %gone.inbox, "deleted the inbox of a worker that is gone");
                    if let Err(e) = self.store.deregister_worker(&gone.owner).await {
                        tracing::warn!(worker = %gone.owner, error = %e, "could not delete the record of a worker that is gone");
                    }
                }
                Err(e) => {
                    tracing::warn!(inbox = %gone.inbox, error = %e, "could not delete the inbox of a worker that is gone");
                }
            }
        }
    }

    /// Forwards the command `msg` (delivered `via`) to the inbox of `owner`, its device's
    /// holder; the owner settles it. Made visible again after `ELSEWHERE_RETRY` where it
    /// cannot be forwarded.
    pub(crate) async fn forward(&self, msg: &Received, via: &Via, owner: &Owner) -> Settle {
        let own = self.leases.inboxes.own();
        let theirs = self.leases.inboxes.of(owner);
        let Some(inbox) = next_hop(via.hops, theirs.as_deref(), own.as_deref()) else {
            return Settle::RetryAfter(ELSEWHERE_RETRY);
        };
        let pointer = Pointer {
            queue: via.queue.clone(),
            message_id: msg.message_id.clone(),
            receipt: msg.receipt.clone(),
            body: msg.body.clone(),
            group: msg.group.clone(),
            receive_count: msg.receive_count,
            hidden_at_ms: via.hidden_at_ms,
            hops: via.hops + 1,
        };
        let body = serde_json::to_string(&pointer).expect("a pointer serializes");
        match self.queue.send(&inbox, None, &body, Duration::ZERO).await {
            Ok(_) => {
                tracing::debug!(%owner, hops = pointer.hops, "command forwarded to its device's owner");
                Settle::Settled(None)
            }
            Err(e) => {
                tracing::debug!(%owner, error = %e, "could not forward a command to its owner");
                Settle::RetryAfter(ELSEWHERE_RETRY)
            }
        }
    }

    /// Takes one pointer from this worker's inbox: handles its command as if received from
    /// its queue, settles the command there through its receipt, and deletes the pointer.
    pub(crate) async fn take_forwarded(&self, msg: Received) -> Settle {
        let pointer: Pointer = match serde_json::from_str(&msg.body) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(message_id = %msg.message_id, error = %e, "undecodable forwarded command dropped; the command comes back to the commands queue");
                return Settle::Delete;
            }
        };
        let mut hidden_at_ms = pointer.hidden_at_ms;
        if take(hidden_at_ms, now_ms(), self.visibility) == Take::Check {
            let now = now_ms();
            match self
                .queue
                .retry_after(&pointer.queue, &pointer.receipt, self.visibility)
                .await
            {
                Ok(()) => hidden_at_ms = now,
                // It came back meanwhile: whoever received it then has it.
                Err(QueueError::InvalidReceipt) => return Settle::Delete,
                Err(e) => {
                    tracing::warn!(error = %e, "could not check a forwarded command; will retry");
                    return Settle::RetryAfter(ELSEWHERE_RETRY);
                }
            }
        }
        let delivery = pointer.delivery();
        let via = Via {
            queue: pointer.queue.clone(),
            hops: pointer.hops,
            hidden_at_ms,
        };
        let settle = consume::with_heartbeat(
            &*self.queue,
            &pointer.queue,
            &pointer.receipt,
            self.visibility,
            self.process(delivery.clone(), via),
        )
        .await;
        if let Err(e) = consume::apply(&*self.queue, &pointer.queue, &delivery, &settle).await {
            tracing::warn!(message_id = %delivery.message_id, error = %e, "settling a forwarded command failed; it will come back");
        }
        Settle::Delete
    }

    /// Closes this worker's inbox at a stop, once it takes nothing more: what is left in it
    /// is made visible again in its queue at once (rather than after its visibility
    /// timeout), for the device's next owner.
    pub(crate) async fn close_inbox(&self) {
        let Some(inbox) = self.leases.inboxes.own() else {
            return;
        };
        self.leases.inboxes.set_own(None);
        while let Ok(Ok(left)) =
            tokio::time::timeout(DRAIN_WAIT, self.queue.receive(&inbox, 10, self.visibility)).await
        {
            if left.is_empty() {
                break;
            }
            for msg in left {
                if let Ok(p) = serde_json::from_str::<Pointer>(&msg.body) {
                    let _ = self.queue.release(&p.queue, &p.delivery()).await;
                }
            }
        }
        if let Err(e) = self.queue.close_inbox(&inbox).await {
            tracing::warn!(%inbox, error = %e, "could not delete this worker's inbox");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VISIBILITY: Duration = Duration::from_secs(120);

    #[test]
    fn a_pointer_is_handled_while_its_command_is_surely_hidden() {
        let rows = [
            (0, Take::Handle),
            (39_999, Take::Handle),
            (40_000, Take::Check),
            (119_000, Take::Check),
            (-1_000, Take::Handle),
            (-40_000, Take::Check),
        ];
        for (age, taken) in rows {
            assert_eq!(take(1_000_000, 1_000_000 + age, VISIBILITY), taken, "{age}");
        }
    }

    #[test]
    fn the_next_hop() {
        let rows = [
            (0, Some("theirs"), Some("mine"), Some("theirs")),
            (2, Some("theirs"), Some("mine"), Some("theirs")),
            (MAX_HOPS, Some("theirs"), Some("mine"), None),
            (0, None, Some("mine"), None),
            (0, Some(""), Some("mine"), None),
            (0, Some("mine"), Some("mine"), None),
            (0, Some("theirs"), None, Some("theirs")),
        ];
        for (hops, inbox, own, next) in rows {
            assert_eq!(
                next_hop(hops, inbox, own).as_deref(),
                next,
                "{hops} {inbox:?} {own:?}"
            );
        }
    }

    #[test]
    fn the_inboxes_of_the_live_workers() {
        let member = |id: &str, inbox: &str| Member {
            owner: Owner::new(id),
            inbox: inbox.into(),
            expires_at: wa_core::time::now(),
            sessions: 0,
            capacity: 1,
        };
        let (a, b) = (member("a", "inbox-a"), member("b", ""));
        let inboxes = Inboxes::default();
        inboxes.know(&[a.clone(), b.clone()]);
        assert_eq!(inboxes.of(&a.owner).as_deref(), Some("inbox-a"));
        assert_eq!(inboxes.of(&b.owner), None, "no inbox");
        assert_eq!(inboxes.of(&Owner::new("a")), None, "another run of a");
        inboxes.know(&[b]);
        assert_eq!(inboxes.of(&a.owner), None, "gone");
    }

    #[test]
    fn the_inboxes_left_over() {
        let ttl = Duration::from_secs(30);
        let now = wa_core::time::now();
        let member = |inbox: &str, gone_for: i64| Member {
            owner: Owner::new("w"),
            inbox: inbox.into(),
            expires_at: match u64::try_from(gone_for) {
                Ok(secs) => now - Duration::from_secs(secs),
                Err(_) => now + Duration::from_secs(gone_for.unsigned_abs()),
            },
            sessions: 0,
            capacity: 1,
        };
        let rows = [
            (member("i", -30), false),
            (member("i", 0), false),
            (member("i", 59), false),
            (member("i", 60), true),
            (member("i", 3600), true),
            (member("", 3600), false),
        ];
        for (m, left) in rows {
            assert_eq!(
                !abandoned(std::slice::from_ref(&m), now, ttl).is_empty(),
                left,
                "{m:?}"
            );
        }
    }

    #[test]
    fn a_pointer_carries_the_delivery() {
        let p = Pointer {
            queue: "commands".into(),
            message_id: "m".into(),
            receipt: "r".into(),
            body: "{}".into(),
            group: Some("g".into()),
            receive_count: 2,
            hidden_at_ms: 5,
            hops: 1,
        };
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Pointer>(&json).unwrap(), p);
        let d = p.delivery();
        assert_eq!(
            (d.message_id, d.receipt, d.body, d.group, d.receive_count),
            ("m".into(), "r".into(), "{}".into(), Some("g".into()), 2)
        );
    }
}
