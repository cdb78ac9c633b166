//! The queue port on Amazon SQS.
//!
//! Each logical queue (`commands`, `events`, `sends`) is one SQS queue named by its URL; a
//! URL ending in `.fifo` is a FIFO queue. How the port maps onto SQS:
//!
//! - Groups: on a FIFO queue the group is the `MessageGroupId`, so a group's messages come
//!   one at a time, in order. An ungrouped message gets a fresh group of its own (FIFO
//!   queues require one) and a `wa-ungrouped` attribute, so it is reported without group.
//!   On a standard queue the group is sent as `MessageGroupId` too, which SQS uses only
//!   for fairness between tenants: **no order and no one-at-a-time** there.
//! - Deduplication: every FIFO send has a fresh deduplication id, so two sends are two
//!   messages, and the SDK's retry of one send is deduplicated by SQS.
//! - Delays: SQS counts whole seconds (rounded up here), at most 900 s, and FIFO queues
//!   refuse per-message delays: a delayed send to a FIFO queue fails with `Backend`.
//! - Visibility timeouts (`receive`, `retry_after`): rounded up to whole seconds, zero
//!   stays zero (visible again at once), capped at SQS's 12 hours.
//! - Receipts are SQS receipt handles. A handle SQS does not know, or (FIFO) one that
//!   expired, is `InvalidReceipt`. SQS standard queues accept a superseded handle
//!   silently (the delete may or may not remove the message); moto accepts superseded
//!   handles on every queue and deletes the message.
//! - Dead letters: SQS's redrive policy moves a message to the queue's dead-letter queue
//!   once it was received `maxReceiveCount` times ([`create_queue`] sets it up);
//!   `dead_letter` copies a message there with its reason, then deletes it.
//! - `depth`: SQS's approximate counts; the age of the oldest message is not available
//!   from SQS's API (only CloudWatch has it), so it is always 0.
//! - `release_in_flight`: SQS cannot list in-flight messages, so the default no-op stays:
//!   they come back when their visibility timeout ends.
//! - `wait_for_work`: the default sleep (it names no queue to long-poll);
//!   [`SqsQueue::with_receive_wait`] makes `receive` itself long-poll instead.
//! - Inboxes (`open_inbox`): a standard queue per process, `{prefix}{tag}` ([`inbox_name`]),
//!   created by it and deleted by `close_inbox`; its URL is its name for every other call
//!   (any `http://` or `https://` name is used as the queue's URL). The prefix is
//!   `WA_INBOX_PREFIX`, or else the commands queue's name without `.fifo`, then `-inbox-`.

mod setup;

pub use setup::{
    CreatedQueue, DEFAULT_MAX_RECEIVES, DEPLOYMENT_QUEUES, create_queue, create_queues,
    create_queues_from_env, dead_letter_name,
};

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::BehaviorVersion;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    Message, MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use uuid::Uuid;
use wa_core::queue::{
    COMMANDS, DeadLetter, Depth, EVENTS, Outgoing, Queue, QueueError, Received, SENDS,
};

/// The environment variable that holds each logical queue's URL (read by
/// [`SqsQueue::from_env`], printed by `wa-server aws-init`).
pub const QUEUE_URL_VARS: [(&str, &str); 3] = [
    (COMMANDS, "WA_COMMANDS_QUEUE_URL"),
    (EVENTS, "WA_EVENTS_QUEUE_URL"),
    (SENDS, "WA_SENDS_QUEUE_URL"),
];

// SQS's limits.
const MAX_BATCH: usize = 10;
const MAX_DELAY_SECS: u64 = 900;
const MAX_VISIBILITY_SECS: u64 = 43_200;
const MAX_WAIT_SECS: u64 = 20;

/// Marks a message sent to a FIFO queue without a group (SQS made one up for it).
const UNGROUPED: &str = "wa-ungrouped";

/// On a message `dead_letter` copied to the dead-letter queue: why, and the id it had.
const REASON: &str = "wa-reason";
const ORIGINAL_ID: &str = "wa-message-id";

/// How long `dead_letters` hides what it has read, so that its next receive returns other
/// messages; it makes them visible again right after.
const PEEK_SECS: i32 = 30;

/// The queue port on SQS. Cheap to clone: build it once per process.
#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    urls: Arc<HashMap<String, String>>,
    receive_wait: Duration,
    /// `WA_INBOX_PREFIX`, when set.
    inbox_prefix: Option<String>,
}

/// The variable naming the prefix of the inbox queues (`open_inbox`).
pub const INBOX_PREFIX_VAR: &str = "WA_INBOX_PREFIX";

/// How long an inbox keeps a message: what it carries is of use only while the command it
/// points at is hidden (the worker's visibility timeout, two minutes).
const INBOX_RETENTION_SECS: u32 = 300;

/// SQS's longest queue name.
const MAX_QUEUE_NAME: usize = 80;

/// The inbox prefix derived from the commands queue's URL: its name without `.fifo`, then
/// `-inbox-`.
fn derived_inbox_prefix(commands_url: &str) -> String {
    let name = commands_url.rsplit('/').next().unwrap_or_default();
    format!("{}-inbox-", name.strip_suffix(".fifo").unwrap_or(name))
}

/// The name of the inbox `tag` under `prefix`: only the letters, digits, `-` and `_` that
/// SQS allows, the prefix cut so that the whole is at most 80 characters.
pub fn inbox_name(prefix: &str, tag: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect()
    };
    let tag = clean(tag);
    let mut prefix = clean(prefix);
    prefix.truncate(MAX_QUEUE_NAME.saturating_sub(tag.len()));
    let mut name = prefix + &tag;
    name.truncate(MAX_QUEUE_NAME);
    name
}

/// Whether a queue name is a queue's URL (an inbox).
fn is_url(queue: &str) -> bool {
    queue.starts_with("https://") || queue.starts_with("http://")
}

impl SqsQueue {
    /// A queue adapter over `client`; `urls` maps each logical queue name (`commands`, …)
    /// to its SQS queue URL. Operations on a name without URL fail with `Backend`.
    pub fn new(client: Client, urls: HashMap<String, String>) -> Self {
        SqsQueue {
            client,
            urls: Arc::new(urls),
            receive_wait: Duration::ZERO,
            inbox_prefix: None,
        }
    }

    /// Names this process's inbox queues `{prefix}{tag}` instead of after the commands
    /// queue.
    pub fn with_inbox_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.inbox_prefix = Some(prefix.into());
        self
    }

    fn inbox_prefix(&self) -> Result<String, QueueError> {
        if let Some(p) = &self.inbox_prefix {
            return Ok(p.clone());
        }
        self.urls
            .get(COMMANDS)
            .map(|url| derived_inbox_prefix(url))
            .ok_or_else(|| {
                QueueError::Backend(format!(
                    "no inbox prefix: set {INBOX_PREFIX_VAR} or WA_COMMANDS_QUEUE_URL"
                ))
            })
    }

    /// The adapter for this deployment: the SDK's default configuration (credentials,
    /// `AWS_REGION`, `AWS_ENDPOINT_URL`, …) and the queue URLs of [`QUEUE_URL_VARS`]. A
    /// process needs only the queues it uses, so unset variables are skipped; using such a
    /// queue fails naming its variable. Fails when none is set.
    pub async fn from_env() -> Result<Self, QueueError> {
        let urls = urls_from(|var| std::env::var(var).ok().filter(|v| !v.is_empty()));
        if urls.is_empty() {
            let vars: Vec<_> = QUEUE_URL_VARS.iter().map(|(_, v)| *v).collect();
            return Err(QueueError::Backend(format!(
                "no SQS queue configured: set {}",
                vars.join(", ")
            )));
        }
        let config = aws_config::load_defaults(BehaviorVersion::latest()).await;
        let mut queue = Self::new(Client::new(&config), urls);
        if let Some(prefix) = std::env::var(INBOX_PREFIX_VAR)
            .ok()
            .filter(|v| !v.trim().is_empty())
        {
            queue = queue.with_inbox_prefix(prefix);
        }
        Ok(queue)
    }

    /// Makes `receive` long-poll: when nothing is visible it waits up to `wait` (whole
    /// seconds, at most 20) for a message instead of answering at once. For a consumer
    /// that has nothing else to do meanwhile; it also makes SQS search all its servers,
    /// where a short poll of a standard queue may miss messages.
    pub fn with_receive_wait(mut self, wait: Duration) -> Self {
        self.receive_wait = Duration::from_secs(whole_secs(wait).min(MAX_WAIT_SECS));
        self
    }

    fn url<'a>(&'a self, queue: &'a str) -> Result<&'a str, QueueError> {
        if let Some(url) = self.urls.get(queue) {
            return Ok(url);
        }
        if is_url(queue) {
            return Ok(queue);
        }
        let hint = QUEUE_URL_VARS
            .iter()
            .find(|(name, _)| *name == queue)
            .map(|(_, var)| format!(" (set {var})"))
            .unwrap_or_default();
        Err(QueueError::Backend(format!(
            "no SQS queue URL for queue `{queue}`{hint}"
        )))
    }

    /// One ReceiveMessage call.
    async fn receive_once(
        &self,
        queue: &str,
        url: &str,
        max: usize,
        visibility_secs: i32,
        wait: Duration,
    ) -> Result<Vec<Message>, QueueError> {
        let mut req = self
            .client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max.clamp(1, MAX_BATCH) as i32)
            .visibility_timeout(visibility_secs)
            .wait_time_seconds(wait.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_attribute_names(UNGROUPED)
            .message_attribute_names(REASON)
            .message_attribute_names(ORIGINAL_ID);
        if is_fifo(url) {
            // When the SDK retries a receive whose answer was lost, SQS returns the same
            // messages instead of leaving them (and their groups) hidden.
            req = req.receive_request_attempt_id(Uuid::new_v4().to_string());
        }
        let out = req
            .send()
            .await
            .map_err(|e| backend(queue, "ReceiveMessage", e))?;
        Ok(out.messages.unwrap_or_default())
    }

    /// Makes a received message visible again at once; failures only delay it.
    async fn release(&self, queue: &str, url: &str, receipt: &str) {
        if let Err(e) = self
            .client
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await
        {
            tracing::debug!(queue, error = %DisplayErrorContext(&e), "could not release a message");
        }
    }

    /// The dead-letter queue's URL and `maxReceiveCount` from `queue`'s redrive policy;
    /// `None` without one.
    async fn redrive(&self, queue: &str, url: &str) -> Result<Option<(String, u32)>, QueueError> {
        let attrs = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(|e| backend(queue, "GetQueueAttributes", e))?;
        let Some(policy) = attrs
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
        else {
            return Ok(None);
        };
        let (arn, max) = parse_redrive(policy).ok_or_else(|| {
            QueueError::Backend(format!(
                "queue `{queue}`: unreadable redrive policy {policy}"
            ))
        })?;
        // arn:aws:sqs:<region>:<account>:<name>
        let parts: Vec<&str> = arn.split(':').collect();
        let [_, _, _, _, account, name] = parts[..] else {
            return Err(QueueError::Backend(format!(
                "queue `{queue}`: unexpected dead-letter ARN {arn}"
            )));
        };
        let dlq_url = self
            .client
            .get_queue_url()
            .queue_name(name)
            .queue_owner_aws_account_id(account)
            .send()
            .await
            .map_err(|e| backend(queue, "GetQueueUrl", e))?
            .queue_url
            .ok_or_else(|| QueueError::Backend(format!("SQS queue `{name}` has no URL")))?;
        Ok(Some((dlq_url, max)))
    }
}

/// The logical name → URL map from the variables of [`QUEUE_URL_VARS`] that `lookup` finds.
fn urls_from(lookup: impl Fn(&str) -> Option<String>) -> HashMap<String, String> {
    QUEUE_URL_VARS
        .iter()
        .filter_map(|(name, var)| lookup(var).map(|url| ((*name).to_owned(), url)))
        .collect()
}

/// Whether a queue URL or name is a FIFO queue's (SQS requires the suffix on those).
fn is_fifo(url_or_name: &str) -> bool {
    url_or_name.ends_with(".fifo")
}

/// Whole seconds, rounded up: SQS counts seconds and must not hide or delay for less than
/// asked (a retry sooner than its backoff, a message visible while still being handled).
fn whole_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// `(deadLetterTargetArn, maxReceiveCount)` of an SQS redrive policy. SQS writes the
/// count as a number or a string; an ARN holds no character JSON escapes, so a field scan
/// is enough.
fn parse_redrive(policy: &str) -> Option<(String, u32)> {
    fn field<'a>(doc: &'a str, key: &str) -> Option<&'a str> {
        let quoted = format!("\"{key}\"");
        let rest = &doc[doc.find(&quoted)? + quoted.len()..];
        let rest = rest.trim_start().strip_prefix(':')?.trim_start();
        match rest.strip_prefix('"') {
            Some(s) => s.split('"').next(),
            None => Some(
                &rest[..rest
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(rest.len())],
            ),
        }
    }
    let arn = field(policy, "deadLetterTargetArn")?;
    let max = field(policy, "maxReceiveCount")?.parse().ok()?;
    Some((arn.to_owned(), max))
}

/// A `Backend` error naming the operation and queue, with the SDK's whole error chain.
fn backend<E: std::error::Error>(queue: &str, op: &str, e: E) -> QueueError {
    QueueError::Backend(format!(
        "SQS {op} on queue `{queue}`: {}",
        DisplayErrorContext(&e)
    ))
}

/// `InvalidReceipt` when SQS refused the receipt handle, else `Backend`.
fn receipt_error<E, R>(queue: &str, op: &str, e: SdkError<E, R>) -> QueueError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if is_receipt_refusal(e.code(), e.message()) {
        QueueError::InvalidReceipt
    } else {
        backend(queue, op, e)
    }
}

/// Whether an SQS error code (with or without the `AWS.SimpleQueueService.` prefix) says
/// the receipt handle is unknown, malformed, expired (FIFO queues: `InvalidParameterValue`
/// "The receipt handle has expired") or not in flight.
fn is_receipt_refusal(code: Option<&str>, message: Option<&str>) -> bool {
    let code = code.unwrap_or_default();
    let code = code.rsplit('.').next().unwrap_or(code);
    matches!(
        code,
        "ReceiptHandleIsInvalid" | "InvalidIdFormat" | "MessageNotInflight"
    ) || (code == "InvalidParameterValue"
        && message.is_some_and(|m| m.contains("ReceiptHandle") || m.contains("receipt handle")))
}

/// How a message is grouped and deduplicated on its queue.
struct Routing {
    group_id: Option<String>,
    /// The message has no group of its own (a FIFO queue got a fresh one for it).
    ungrouped: bool,
    deduplication_id: Option<String>,
}

impl Routing {
    /// A fresh deduplication id on a FIFO queue (two sends are two messages); the group as
    /// `MessageGroupId`, or a fresh one with the `wa-ungrouped` mark on a FIFO queue.
    fn of(group: Option<&str>, fifo: bool) -> Routing {
        Routing {
            group_id: match group {
                Some(g) => Some(g.to_owned()),
                None => fifo.then(|| Uuid::new_v4().to_string()),
            },
            ungrouped: group.is_none() && fifo,
            deduplication_id: fifo.then(|| Uuid::new_v4().to_string()),
        }
    }
}

/// SQS's batch limits: 10 entries and 256 KiB of bodies per SendMessageBatch.
fn batches(messages: &[Outgoing]) -> Vec<&[Outgoing]> {
    const MAX_BATCH_BYTES: usize = 256 * 1024;
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, m) in messages.iter().enumerate() {
        let full = i - start == MAX_BATCH || (i > start && bytes + m.body.len() > MAX_BATCH_BYTES);
        if full {
            out.push(&messages[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += m.body.len();
    }
    if start < messages.len() {
        out.push(&messages[start..]);
    }
    out
}

fn system_attr<'a>(m: &'a Message, name: &MessageSystemAttributeName) -> Option<&'a str> {
    m.attributes()?.get(name).map(String::as_str)
}

/// A string message attribute (`wa-…`).
fn string_attr(name: &str, value: &str) -> Result<MessageAttributeValue, QueueError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| QueueError::Backend(format!("message attribute {name}: {e}")))
}

fn message_attr<'a>(m: &'a Message, name: &str) -> Option<&'a str> {
    m.message_attributes()?.get(name)?.string_value()
}

fn group_of(m: &Message) -> Option<String> {
    let ungrouped = m
        .message_attributes()
        .is_some_and(|a| a.contains_key(UNGROUPED));
    if ungrouped {
        return None;
    }
    system_attr(m, &MessageSystemAttributeName::MessageGroupId).map(str::to_owned)
}

fn received(queue: &str, m: &Message) -> Result<Received, QueueError> {
    let receipt = m.receipt_handle().ok_or_else(|| {
        QueueError::Backend(format!(
            "SQS returned a message of `{queue}` without receipt"
        ))
    })?;
    Ok(Received {
        message_id: m.message_id().unwrap_or_default().to_owned(),
        receipt: receipt.to_owned(),
        body: m.body().unwrap_or_default().to_owned(),
        group: group_of(m),
        receive_count: system_attr(m, &MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|c| c.parse().ok())
            .unwrap_or(1),
    })
}

#[async_trait]
impl Queue for SqsQueue {
    /// SendMessage. Fails with `Backend` for a delay on a FIFO queue, a delay over 900 s,
    /// a body SQS refuses (empty, over 256 KiB, characters outside XML's) or a group
    /// that is not a valid `MessageGroupId` (up to 128 ASCII letters, digits, punctuation).
    async fn send(
        &self,
        queue: &str,
        group: Option<&str>,
        body: &str,
        delay: Duration,
    ) -> Result<String, QueueError> {
        let url = self.url(queue)?;
        let fifo = is_fifo(url);
        let delay = whole_secs(delay);
        if fifo && delay > 0 {
            return Err(QueueError::Backend(format!(
                "queue `{queue}` is an SQS FIFO queue, which refuses per-message delays \
                 ({delay} s asked)"
            )));
        }
        if delay > MAX_DELAY_SECS {
            return Err(QueueError::Backend(format!(
                "queue `{queue}`: SQS delays a message at most {MAX_DELAY_SECS} s ({delay} s asked)"
            )));
        }
        let mut req = self.client.send_message().queue_url(url).message_body(body);
        if delay > 0 {
            req = req.delay_seconds(delay as i32);
        }
        let routing = Routing::of(group, fifo);
        req = req
            .set_message_deduplication_id(routing.deduplication_id)
            .set_message_group_id(routing.group_id);
        if routing.ungrouped {
            req = req.message_attributes(UNGROUPED, string_attr(UNGROUPED, "true")?);
        }
        let out = req
            .send()
            .await
            .map_err(|e| backend(queue, "SendMessage", e))?;
        out.message_id.ok_or_else(|| {
            QueueError::Backend(format!(
                "SQS SendMessage on `{queue}` returned no message id"
            ))
        })
    }

    /// SendMessageBatch, 10 messages (and at most 256 KiB) per call, grouped and
    /// deduplicated as `send` does. A message SQS refuses fails the call with `Backend`
    /// naming it; the calls before it, and the other messages of its call, were sent.
    async fn send_batch(
        &self,
        queue: &str,
        messages: &[Outgoing],
    ) -> Result<Vec<String>, QueueError> {
        let url = self.url(queue)?;
        let fifo = is_fifo(url);
        let mut ids = Vec::with_capacity(messages.len());
        for chunk in batches(messages) {
            let mut req = self.client.send_message_batch().queue_url(url);
            for (i, m) in chunk.iter().enumerate() {
                let routing = Routing::of(m.group.as_deref(), fifo);
                let mut entry = SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&m.body)
                    .set_message_deduplication_id(routing.deduplication_id)
                    .set_message_group_id(routing.group_id);
                if routing.ungrouped {
                    entry = entry.message_attributes(UNGROUPED, string_attr(UNGROUPED, "true")?);
                }
                req = req.entries(
                    entry
                        .build()
                        .map_err(|e| QueueError::Backend(format!("batch entry: {e}")))?,
                );
            }
            let out = req
                .send()
                .await
                .map_err(|e| backend(queue, "SendMessageBatch", e))?;
            if let Some(f) = out.failed().first() {
                return Err(QueueError::Backend(format!(
                    "SQS SendMessageBatch on queue `{queue}`: {} of {} refused, the first \
                     (entry {}) with {}: {}",
                    out.failed().len(),
                    chunk.len(),
                    f.id(),
                    f.code(),
                    f.message().unwrap_or_default()
                )));
            }
            let mut sent: HashMap<&str, &str> = out
                .successful()
                .iter()
                .map(|e| (e.id(), e.message_id()))
                .collect();
            for i in 0..chunk.len() {
                let id = sent.remove(i.to_string().as_str()).ok_or_else(|| {
                    QueueError::Backend(format!(
                        "SQS SendMessageBatch on queue `{queue}` did not answer for entry {i}"
                    ))
                })?;
                ids.push(id.to_owned());
            }
        }
        Ok(ids)
    }

    /// ReceiveMessage, at most 10 messages. SQS returns several messages of one FIFO group
    /// in one batch, which the port forbids, so a FIFO queue is read one message per call:
    /// its next receive finds the next group (the group of a message in flight stays
    /// hidden). One call, never a second one to look for more: on a queue that is mostly
    /// empty that second call would come back empty nearly every time, one request per
    /// message for nothing, and a consumer with free slots asks again at once anyway.
    async fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Received>, QueueError> {
        let url = self.url(queue)?;
        let max = max.min(MAX_BATCH);
        if max == 0 {
            return Ok(Vec::new());
        }
        let visibility = whole_secs(visibility).min(MAX_VISIBILITY_SECS) as i32;
        let max = if is_fifo(url) { 1 } else { max };
        let got = self
            .receive_once(queue, url, max, visibility, self.receive_wait)
            .await?;
        got.iter().map(|m| received(queue, m)).collect()
    }

    async fn delete(&self, queue: &str, receipt: &str) -> Result<(), QueueError> {
        let url = self.url(queue)?;
        self.client
            .delete_message()
            .queue_url(url)
            .receipt_handle(receipt)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| receipt_error(queue, "DeleteMessage", e))
    }

    /// ChangeMessageVisibility. SQS limits a message's total invisibility since its
    /// receive to 12 hours; beyond that it answers `Backend`.
    async fn retry_after(
        &self,
        queue: &str,
        receipt: &str,
        delay: Duration,
    ) -> Result<(), QueueError> {
        let url = self.url(queue)?;
        self.client
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(receipt)
            .visibility_timeout(whole_secs(delay).min(MAX_VISIBILITY_SECS) as i32)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| receipt_error(queue, "ChangeMessageVisibility", e))
    }

    /// Reads the dead-letter queue of `queue`'s redrive policy (none: no dead letters)
    /// without consuming it: what is read is hidden for a moment, so that later receives
    /// return other messages, then made visible again. SQS returns what it finds, not an
    /// index: with concurrent readers, or more than 10 messages in one FIFO group, some
    /// may be missing from a page.
    /// CreateQueue of a standard queue (the order of what an inbox carries does not
    /// matter), encrypted like the deployment's queues, keeping messages five minutes.
    async fn open_inbox(&self, tag: &str) -> Result<Option<String>, QueueError> {
        let name = inbox_name(&self.inbox_prefix()?, tag);
        let out = self
            .client
            .create_queue()
            .queue_name(&name)
            .attributes(
                QueueAttributeName::MessageRetentionPeriod,
                INBOX_RETENTION_SECS.to_string(),
            )
            .attributes(QueueAttributeName::SqsManagedSseEnabled, "true")
            .send()
            .await
            .map_err(|e| backend(&name, "CreateQueue", e))?;
        out.queue_url()
            .map(|url| Some(url.to_owned()))
            .ok_or_else(|| QueueError::Backend(format!("SQS created `{name}` without a URL")))
    }

    /// DeleteQueue; an inbox already gone counts as closed.
    async fn close_inbox(&self, inbox: &str) -> Result<(), QueueError> {
        match self.client.delete_queue().queue_url(inbox).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code().is_some_and(|c| c.ends_with("NonExistentQueue")) => Ok(()),
            Err(e) => Err(backend(inbox, "DeleteQueue", e)),
        }
    }

    async fn dead_letters(&self, queue: &str, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let url = self.url(queue)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let Some((dlq_url, max_receives)) = self.redrive(queue, url).await? else {
            return Ok(Vec::new());
        };
        let reason =
            format!("moved to the dead-letter queue after {max_receives} receives (SQS redrive)");
        let mut seen = HashSet::new();
        let mut found: Vec<(u64, DeadLetter)> = Vec::new();
        let mut receipts = Vec::new();
        while found.len() < limit {
            let batch = self
                .receive_once(
                    queue,
                    &dlq_url,
                    limit - found.len(),
                    PEEK_SECS,
                    Duration::ZERO,
                )
                .await?;
            let mut new = false;
            for m in &batch {
                receipts.extend(m.receipt_handle().map(str::to_owned));
                let id = m.message_id().unwrap_or_default().to_owned();
                if !seen.insert(id.clone()) {
                    continue;
                }
                new = true;
                let sent = system_attr(m, &MessageSystemAttributeName::SentTimestamp)
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(u64::MAX);
                found.push((
                    sent,
                    DeadLetter {
                        message_id: message_attr(m, ORIGINAL_ID).map_or(id, str::to_owned),
                        body: m.body().unwrap_or_default().to_owned(),
                        group: group_of(m),
                        reason: message_attr(m, REASON)
                            .map_or_else(|| reason.clone(), str::to_owned),
                    },
                ));
            }
            if !new {
                break;
            }
        }
        for receipt in &receipts {
            self.release(queue, &dlq_url, receipt).await;
        }
        found.sort_by(|a, b| (a.0, &a.1.message_id).cmp(&(b.0, &b.1.message_id)));
        found.truncate(limit);
        Ok(found.into_iter().map(|(_, d)| d).collect())
    }

    /// SQS cannot move a message between queues, so this copies it to the dead-letter
    /// queue of `queue`'s redrive policy (same body and group, the reason and the original
    /// message id as attributes; on a FIFO dead-letter queue the original id is the
    /// deduplication id, so a repeated call within 5 minutes makes no second copy), then
    /// deletes it. The receipt is checked first by extending the message's visibility, so
    /// a refused receipt (`InvalidReceipt`) copies nothing. `Backend` when `queue` has no
    /// redrive policy.
    async fn dead_letter(
        &self,
        queue: &str,
        received: &Received,
        reason: &str,
    ) -> Result<(), QueueError> {
        let url = self.url(queue)?;
        let Some((dlq_url, _)) = self.redrive(queue, url).await? else {
            return Err(QueueError::Backend(format!(
                "queue `{queue}` has no SQS dead-letter queue (no redrive policy)"
            )));
        };
        // Also keeps the message hidden while it is copied.
        self.retry_after(
            queue,
            &received.receipt,
            Duration::from_secs(PEEK_SECS as u64),
        )
        .await?;
        let reason = if reason.is_empty() {
            "dead-lettered"
        } else {
            reason
        };
        let mut req = self
            .client
            .send_message()
            .queue_url(&dlq_url)
            .message_body(&received.body)
            .message_attributes(REASON, string_attr(REASON, reason)?)
            .message_attributes(ORIGINAL_ID, string_attr(ORIGINAL_ID, &received.message_id)?);
        if is_fifo(&dlq_url) {
            req = req.message_deduplication_id(&received.message_id);
        }
        match (&received.group, is_fifo(&dlq_url)) {
            (Some(g), _) => req = req.message_group_id(g),
            (None, true) => {
                req = req
                    .message_group_id(Uuid::new_v4().to_string())
                    .message_attributes(UNGROUPED, string_attr(UNGROUPED, "true")?);
            }
            (None, false) => {}
        }
        req.send()
            .await
            .map_err(|e| backend(queue, "SendMessage (dead letter)", e))?;
        self.delete(queue, &received.receipt).await
    }

    /// `ApproximateNumberOfMessages` (visible, not delayed) and
    /// `ApproximateNumberOfMessagesNotVisible` (in flight); SQS's counts lag by up to a
    /// minute on real queues. `oldest_age_secs` is 0: SQS does not report it.
    async fn depth(&self, queue: &str) -> Result<Depth, QueueError> {
        let url = self.url(queue)?;
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| backend(queue, "GetQueueAttributes", e))?;
        let count = |name: QueueAttributeName| {
            out.attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(Depth {
            visible: count(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            oldest_age_secs: 0.0,
        })
    }
}

#[cfg(test)]
mod tests;
