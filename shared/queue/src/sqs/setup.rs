//! Creating the deployment's SQS queues: each queue with its dead-letter queue and the
//! redrive policy between them. Used by the tests and by `wa-server aws-init`; running it
//! again converges on the same queues instead of failing.

use std::collections::HashMap;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::QueueAttributeName;
use wa_core::queue::{COMMANDS, EVENTS, QueueError, SENDS};

use super::{backend, is_fifo};

/// How long a dead letter is kept: SQS's maximum (14 days), so that there is time to look
/// at it. A standard queue's message keeps its original enqueue time in the dead-letter
/// queue, so a shorter retention there could drop it on arrival.
const DEAD_LETTER_RETENTION_SECS: u32 = 14 * 24 * 3600;

/// The redrive limit of the deployment's queues: the worker's `MAX_RECEIVES`, because a
/// command's retries with backoff (`retry_after`) count as receives too.
pub const DEFAULT_MAX_RECEIVES: u32 = 20;

/// The deployment's queues: logical name and SQS queue name after the prefix. Commands and
/// events are FIFO (per-device order); sends are a standard queue.
pub const DEPLOYMENT_QUEUES: [(&str, &str); 3] = [
    (COMMANDS, "commands.fifo"),
    (EVENTS, "events.fifo"),
    (SENDS, "sends"),
];

/// A queue made by [`create_queue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedQueue {
    pub url: String,
    /// Where SQS moves a message received `max_receives` times.
    pub dead_letter_url: String,
}

/// The name of `name`'s dead-letter queue: `-dlq` before the `.fifo` suffix (a FIFO queue
/// needs a FIFO dead-letter queue, and FIFO names must end in `.fifo`).
pub fn dead_letter_name(name: &str) -> String {
    match name.strip_suffix(".fifo") {
        Some(base) => format!("{base}-dlq.fifo"),
        None => format!("{name}-dlq"),
    }
}

/// Creates, when missing, the queue `name` (FIFO when it ends in `.fifo`) and its
/// dead-letter queue, with a redrive policy that moves a message there once it was
/// received `max_receives` times (at least 1). Content-based deduplication is off: senders
/// give each message its own deduplication id. Idempotent: an existing queue keeps its
/// URL and gets this redrive policy. Fails with `Backend` on an invalid name (SQS: up to 80
/// characters, alphanumerics, `-` and `_`, including `-dlq` and `.fifo`) or any SQS error.
pub async fn create_queue(
    client: &Client,
    name: &str,
    max_receives: u32,
) -> Result<CreatedQueue, QueueError> {
    let fifo = is_fifo(name);
    let mut dlq_attrs = vec![(
        QueueAttributeName::MessageRetentionPeriod,
        DEAD_LETTER_RETENTION_SECS.to_string(),
    )];
    if fifo {
        dlq_attrs.push((
            QueueAttributeName::ContentBasedDeduplication,
            "false".into(),
        ));
    }
    let dlq_name = dead_letter_name(name);
    let dead_letter_url = ensure(client, &dlq_name, fifo, &dlq_attrs).await?;
    let arn = client
        .get_queue_attributes()
        .queue_url(&dead_letter_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| backend(&dlq_name, "GetQueueAttributes", e))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| QueueError::Backend(format!("SQS queue `{dlq_name}` has no ARN")))?;
    let mut attrs = vec![(
        QueueAttributeName::RedrivePolicy,
        redrive_policy(&arn, max_receives.max(1)),
    )];
    if fifo {
        attrs.push((
            QueueAttributeName::ContentBasedDeduplication,
            "false".into(),
        ));
    }
    let url = ensure(client, name, fifo, &attrs).await?;
    Ok(CreatedQueue {
        url,
        dead_letter_url,
    })
}

/// Creates the deployment's queues ([`DEPLOYMENT_QUEUES`], each name after `prefix`, e.g.
/// `wa-prod-` gives `wa-prod-commands.fifo`) with [`create_queue`], and returns the map
/// logical name → URL that [`super::SqsQueue::new`] takes. Idempotent.
pub async fn create_queues(
    client: &Client,
    prefix: &str,
    max_receives: u32,
) -> Result<HashMap<String, String>, QueueError> {
    let mut urls = HashMap::new();
    for (logical, name) in DEPLOYMENT_QUEUES {
        let created = create_queue(client, &format!("{prefix}{name}"), max_receives).await?;
        urls.insert(logical.to_owned(), created.url);
    }
    Ok(urls)
}

/// Creates the queues `names` (SQS queue names, FIFO when they end in `.fifo`) with
/// [`create_queue`] and [`DEFAULT_MAX_RECEIVES`], through the SDK's default configuration
/// (`AWS_REGION`, `AWS_ENDPOINT_URL`, credentials), and returns their URLs in order. For
/// `wa-server aws-init`. Idempotent.
pub async fn create_queues_from_env(names: &[String]) -> Result<Vec<String>, QueueError> {
    let config = aws_config::load_defaults(aws_sdk_sqs::config::BehaviorVersion::latest()).await;
    let client = Client::new(&config);
    let mut urls = Vec::with_capacity(names.len());
    for name in names {
        urls.push(create_queue(&client, name, DEFAULT_MAX_RECEIVES).await?.url);
    }
    Ok(urls)
}

/// SQS's redrive policy document. Written by hand: an ARN holds no character JSON escapes.
fn redrive_policy(dead_letter_arn: &str, max_receives: u32) -> String {
    format!(r#"{{"deadLetterTargetArn":"{dead_letter_arn}","maxReceiveCount":{max_receives}}}"#)
}

/// Creates `name` with `attrs` and returns its URL. CreateQueue is idempotent only when
/// the attributes match the existing queue's; otherwise (a changed redrive policy) SQS
/// answers `QueueAlreadyExists` and the attributes are set on the existing queue instead.
async fn ensure(
    client: &Client,
    name: &str,
    fifo: bool,
    attrs: &[(QueueAttributeName, String)],
) -> Result<String, QueueError> {
    let mut create = client.create_queue().queue_name(name);
    if fifo {
        // Only at creation: FifoQueue cannot be changed, and standard queues refuse it.
        create = create.attributes(QueueAttributeName::FifoQueue, "true");
    }
    for (k, v) in attrs {
        create = create.attributes(k.clone(), v);
    }
    match create.send().await {
        Ok(out) => out
            .queue_url()
            .map(str::to_owned)
            .ok_or_else(|| QueueError::Backend(format!("SQS created `{name}` without a URL"))),
        Err(e) if e.code().is_some_and(|c| c.ends_with("QueueAlreadyExists")) => {
            let url = client
                .get_queue_url()
                .queue_name(name)
                .send()
                .await
                .map_err(|e| backend(name, "GetQueueUrl", e))?
                .queue_url()
                .map(str::to_owned)
                .ok_or_else(|| QueueError::Backend(format!("SQS queue `{name}` has no URL")))?;
            let mut set = client.set_queue_attributes().queue_url(&url);
            for (k, v) in attrs {
                set = set.attributes(k.clone(), v);
            }
            set.send()
                .await
                .map_err(|e| backend(name, "SetQueueAttributes", e))?;
            tracing::info!(
                queue = name,
                "updated the attributes of an existing SQS queue"
            );
            Ok(url)
        }
        Err(e) => Err(backend(name, "CreateQueue", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_names_keep_the_fifo_suffix() {
        assert_eq!(dead_letter_name("wa-commands.fifo"), "wa-commands-dlq.fifo");
        assert_eq!(dead_letter_name("wa-sends"), "wa-sends-dlq");
    }

    #[test]
    fn redrive_policy_reads_back() {
        let p = redrive_policy("arn:aws:sqs:us-east-1:123456789012:q-dlq", 5);
        assert_eq!(
            super::super::parse_redrive(&p),
            Some(("arn:aws:sqs:us-east-1:123456789012:q-dlq".to_owned(), 5))
        );
    }
}
