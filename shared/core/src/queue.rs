//! The queue port and the worker's commands.
//!
//! A queue holds opaque bodies with an optional group: messages of one group are delivered
//! one at a time, in order (SQS FIFO's `MessageGroupId`). A received message stays invisible
//! for its visibility timeout and comes back unless it is deleted: a command is deleted only
//! after its outcome is stored. After `max_receives` deliveries it goes to the dead letters.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The queue that carries commands to the worker.
pub const COMMANDS: &str = "commands";

/// The queue of webhook events to deliver, grouped by device (a device's later events wait
/// behind one being retried).
pub const EVENTS: &str = "events";

/// The queue of event-driven sends.
pub const SENDS: &str = "sends";

/// Queue failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueError {
    /// The receipt is unknown or expired (the message was redelivered or deleted).
    InvalidReceipt,
    Backend(String),
}

impl std::fmt::Display for QueueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueueError::InvalidReceipt => f.write_str("invalid or expired receipt"),
            QueueError::Backend(e) => write!(f, "queue backend error: {e}"),
        }
    }
}

impl std::error::Error for QueueError {}

impl From<QueueError> for wa_errors::ApiError {
    fn from(e: QueueError) -> Self {
        wa_errors::ApiError::internal(e)
    }
}

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub message_id: String,
    /// Pass to `delete` / `retry_after`; valid until the visibility timeout ends.
    pub receipt: String,
    pub body: String,
    pub group: Option<String>,
    /// 1 on the first delivery.
    pub receive_count: u32,
}

/// One message of [`Queue::send_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub group: Option<String>,
    pub body: String,
}

/// A message that was delivered `max_receives` times without being deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub message_id: String,
    pub body: String,
    pub group: Option<String>,
    pub reason: String,
}

/// How much is waiting.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Depth {
    pub visible: u64,
    pub in_flight: u64,
    pub oldest_age_secs: f64,
}

/// A durable queue.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Appends a message; it becomes visible after `delay`.
    async fn send(
        &self,
        queue: &str,
        group: Option<&str>,
        body: &str,
        delay: Duration,
    ) -> Result<String, QueueError>;

    /// Appends `messages` in order, each visible at once, and returns their ids in the same
    /// order. Not all-or-nothing unless the adapter says so: after an `Err` some may have
    /// been sent (a caller with idempotent consumers sends them all again). The default
    /// sends one after the other.
    async fn send_batch(
        &self,
        queue: &str,
        messages: &[Outgoing],
    ) -> Result<Vec<String>, QueueError> {
        let mut ids = Vec::with_capacity(messages.len());
        for m in messages {
            ids.push(
                self.send(queue, m.group.as_deref(), &m.body, Duration::ZERO)
                    .await?,
            );
        }
        Ok(ids)
    }

    /// Up to `max` visible messages, hidden for `visibility` afterwards. At most one message
    /// per group is in flight, and a group's messages come in the order they were sent.
    async fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Received>, QueueError>;

    /// Removes a processed message.
    async fn delete(&self, queue: &str, receipt: &str) -> Result<(), QueueError>;

    /// Removes the processed message `done` and, when its group's next message is visible
    /// now, receives that one too, hidden for `visibility` as `receive` would: its consumer
    /// goes on with the group without another receive. The group's order and its one message
    /// in flight hold as with `receive`. `None` when nothing was taken (no group, nothing
    /// visible, or a message due for the dead letters, which `receive` moves). The default
    /// deletes and takes nothing.
    async fn delete_and_take_next(
        &self,
        queue: &str,
        done: &Received,
        visibility: Duration,
    ) -> Result<Option<Received>, QueueError> {
        let _ = visibility;
        self.delete(queue, &done.receipt).await?;
        Ok(None)
    }

    /// Gives back a message that was received but not handled (taken on by a consumer
    /// that then stopped short of it): visible again at once, and, where the adapter can,
    /// without counting that delivery. The default makes it visible again (`retry_after`).
    async fn release(&self, queue: &str, received: &Received) -> Result<(), QueueError> {
        self.retry_after(queue, &received.receipt, Duration::ZERO)
            .await
    }

    /// Makes an in-flight message visible again after `delay` (retry with backoff).
    async fn retry_after(
        &self,
        queue: &str,
        receipt: &str,
        delay: Duration,
    ) -> Result<(), QueueError>;

    /// Messages moved aside after too many deliveries, oldest first.
    async fn dead_letters(&self, queue: &str, limit: usize) -> Result<Vec<DeadLetter>, QueueError>;

    async fn depth(&self, queue: &str) -> Result<Depth, QueueError>;

    /// Makes every in-flight message visible again at once. Only for a consumer that knows
    /// it is the queue's sole consumer and just started (the previous one died): without
    /// it, whatever it had in flight would wait out its visibility timeout. Default: no-op.
    async fn release_in_flight(&self, _queue: &str) -> Result<u64, QueueError> {
        Ok(0)
    }

    /// Moves an in-flight message to the dead letters now, with the reason it can never be
    /// processed (a producer's malformed message). `InvalidReceipt` when the receipt is
    /// stale. Adapters without dead letters answer `Backend`.
    async fn dead_letter(
        &self,
        queue: &str,
        received: &Received,
        _reason: &str,
    ) -> Result<(), QueueError> {
        let _ = received;
        Err(QueueError::Backend(format!(
            "queue {queue}: this adapter cannot dead-letter a message"
        )))
    }

    /// Creates this process's own inbox queue, named after `tag` (unique to the process),
    /// and returns the name to pass as `queue` to every other call; the process deletes it
    /// with [`Queue::close_inbox`] when it stops. `None` where the adapter has no inboxes
    /// (the default).
    async fn open_inbox(&self, tag: &str) -> Result<Option<String>, QueueError> {
        let _ = tag;
        Ok(None)
    }

    /// Deletes an inbox of [`Queue::open_inbox`] with whatever it still holds.
    async fn close_inbox(&self, inbox: &str) -> Result<(), QueueError> {
        let _ = inbox;
        Ok(())
    }

    /// Waits until a message may have become available (a send in this process), at most
    /// `max_wait`. The default just sleeps; adapters that can be woken return early.
    async fn wait_for_work(&self, max_wait: Duration) {
        tokio::time::sleep(max_wait).await;
    }
}

/// What the worker is asked to do. Tagged and versioned: producers and consumers of
/// different versions can share a queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Command {
    /// Start linking (QR, and a pair code when `pair_phone` is set).
    #[serde(rename = "link.v1")]
    Link {
        device_id: Uuid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pair_phone: Option<String>,
    },
    /// Resume a linked session from its stored credentials.
    #[serde(rename = "resume.v1")]
    Resume { device_id: Uuid },
    /// Close the session, keep the credentials.
    #[serde(rename = "disconnect.v1")]
    Disconnect { device_id: Uuid },
    /// Unlink, wipe keys and media.
    #[serde(rename = "destroy.v1")]
    Destroy { device_id: Uuid },
    /// Subscribe to a peer's presence.
    #[serde(rename = "subscribe_presence.v1")]
    SubscribePresence { device_id: Uuid, jid: String },
    /// Send a stored outbound message. `queued`: the message as its send request created
    /// it, where that request hands it on (the AWS data path), so that the worker starts
    /// from it instead of reading it; the store refuses an update from it once the message
    /// changed (`MessageStore::update_created_message`), and the worker then reads it.
    #[serde(rename = "send.v1")]
    Send {
        device_id: Uuid,
        message_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        queued: Option<Box<crate::messages::Message>>,
    },
    /// Ask the device's live session (`crate::session`) and store the reply under `ask_id`;
    /// dropped unanswered once `deadline` has passed (nobody waits any more).
    #[serde(rename = "ask.v1")]
    Ask {
        device_id: Uuid,
        ask_id: Uuid,
        request: crate::session::SessionRequest,
        #[serde(with = "crate::time::rfc3339")]
        deadline: crate::time::OffsetDateTime,
    },
}

impl Command {
    /// The device whose queue group the command belongs to.
    pub fn device_id(&self) -> Uuid {
        match self {
            Command::Link { device_id, .. }
            | Command::Resume { device_id }
            | Command::Disconnect { device_id }
            | Command::Destroy { device_id }
            | Command::SubscribePresence { device_id, .. }
            | Command::Send { device_id, .. }
            | Command::Ask { device_id, .. } => *device_id,
        }
    }

    /// The queue group of the command: its device's, and for an ask the device's ask group
    /// (`session::ask_group`), so that asks never wait behind the device's sends.
    pub fn group(&self) -> String {
        match self {
            Command::Ask { device_id, .. } => crate::session::ask_group(*device_id),
            c => c.device_id().to_string(),
        }
    }
}

/// A command with the id of the request that caused it (for the logs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandEnvelope {
    #[serde(flatten)]
    pub command: Command,
    #[serde(default)]
    pub request_id: String,
}

/// Puts a command on the commands queue, in its group (`Command::group`).
pub async fn enqueue(queue: &dyn Queue, command: Command) -> Result<(), QueueError> {
    let (group, body) = command_message(command)?;
    queue
        .send(COMMANDS, Some(&group), &body, Duration::ZERO)
        .await
        .map(|_| ())
}

/// Puts commands on the commands queue in one [`Queue::send_batch`], each in its group
/// (`Command::group`), in order.
pub async fn enqueue_batch(queue: &dyn Queue, commands: Vec<Command>) -> Result<(), QueueError> {
    let messages = commands
        .into_iter()
        .map(|c| {
            command_message(c).map(|(group, body)| Outgoing {
                group: Some(group),
                body,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if messages.is_empty() {
        return Ok(());
    }
    queue.send_batch(COMMANDS, &messages).await.map(|_| ())
}

/// The commands-queue message of `command`: its group (`Command::group`) and its body,
/// which carries the id of the current request.
pub fn command_message(command: Command) -> Result<(String, String), QueueError> {
    let env = CommandEnvelope {
        request_id: wa_errors::request_id::current(),
        command,
    };
    let body = serde_json::to_string(&env).map_err(|e| QueueError::Backend(e.to_string()))?;
    Ok((env.command.group(), body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_tagged_and_versioned() {
        let id = Uuid::nil();
        let env = CommandEnvelope {
            command: Command::Link {
                device_id: id,
                pair_phone: None,
            },
            request_id: "r1".into(),
        };
        let v = serde_json::to_value(&env).unwrap();
        assert_eq!(v["type"], "link.v1");
        assert_eq!(v["request_id"], "r1");
        assert_eq!(serde_json::from_value::<CommandEnvelope>(v).unwrap(), env);
    }

    #[test]
    fn asks_travel_in_their_own_group_with_their_deadline() {
        let id = Uuid::now_v7();
        let ask = Command::Ask {
            device_id: id,
            ask_id: Uuid::nil(),
            request: crate::session::SessionRequest::Groups,
            deadline: crate::time::parse("2030-01-02T03:04:05.678Z").unwrap(),
        };
        let (group, body) = command_message(ask.clone()).unwrap();
        assert_eq!(group, format!("{id}:ask"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["type"], "ask.v1");
        assert_eq!(v["request"]["type"], "groups.v1");
        assert_eq!(v["deadline"], "2030-01-02T03:04:05.678Z");
        let back: CommandEnvelope = serde_json::from_str(&body).unwrap();
        assert_eq!(back.command, ask);
        assert_eq!(ask.device_id(), id);
        let send = Command::Send {
            queued: None,
            device_id: id,
            message_id: "m".into(),
        };
        assert_eq!(command_message(send).unwrap().0, id.to_string());
    }
}
