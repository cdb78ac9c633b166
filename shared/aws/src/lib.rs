//! The AWS data-path wiring shared by the Lambdas, the worker service, the queue consumers
//! and `wa-server` on the AWS data path: the DynamoDB store and the SQS queues from the
//! environment (`WA_TABLE_NAME`, `WA_COMMANDS_QUEUE_URL`, `WA_EVENTS_QUEUE_URL`,
//! `WA_SENDS_QUEUE_URL`, and the SDK's own `AWS_REGION`, `AWS_ENDPOINT_URL`, credentials),
//! with the `media` feature the S3 media bucket (`WA_MEDIA_BUCKET`), the webhook nudges,
//! `aws-init`, and the Lambdas' JSON logs. No HTTP server here: the Lambda HTTP entry point
//! is `wa-lambda-http`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use wa_core::outbox::Nudging;
use wa_core::queue::Queue;
use wa_core::store::Store;
use wa_queue::SqsQueue;
use wa_store::DynamoStore;

/// The environment of the AWS data path, read once.
#[derive(Debug, Clone)]
pub struct AwsEnv {
    /// `WA_TABLE_NAME`: the DynamoDB table.
    pub table: Option<String>,
    /// `WA_COMMANDS_QUEUE_URL`: the FIFO queue of the worker's commands.
    pub commands_queue_url: Option<String>,
    /// `WA_EVENTS_QUEUE_URL`: the FIFO queue of webhook nudges.
    pub events_queue_url: Option<String>,
    /// `WA_SENDS_QUEUE_URL`: the queue of event-driven sends.
    pub sends_queue_url: Option<String>,
    /// `WA_MEDIA_BUCKET`: the S3 bucket of inbound media.
    pub media_bucket: Option<String>,
}

impl AwsEnv {
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> AwsEnv {
        let var = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        AwsEnv {
            table: var("WA_TABLE_NAME"),
            commands_queue_url: var("WA_COMMANDS_QUEUE_URL"),
            events_queue_url: var("WA_EVENTS_QUEUE_URL"),
            sends_queue_url: var("WA_SENDS_QUEUE_URL"),
            media_bucket: var("WA_MEDIA_BUCKET"),
        }
    }

    pub fn from_env() -> AwsEnv {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }

    /// Whether any SQS queue is configured.
    pub fn uses_sqs(&self) -> bool {
        self.commands_queue_url.is_some()
            || self.events_queue_url.is_some()
            || self.sends_queue_url.is_some()
    }
}

/// The DynamoDB store of `WA_TABLE_NAME`.
pub async fn store_from_env(env: &AwsEnv) -> anyhow::Result<Arc<DynamoStore>> {
    let table = env
        .table
        .as_deref()
        .context("WA_TABLE_NAME: the DynamoDB table is not set")?;
    Ok(Arc::new(DynamoStore::from_env(table).await))
}

/// The S3 media store of `WA_MEDIA_BUCKET`, `None` when it is unset.
#[cfg(feature = "media")]
pub async fn media_from_env(env: &AwsEnv) -> Option<Arc<wa_media::S3Media>> {
    let bucket = env.media_bucket.as_deref()?;
    Some(Arc::new(wa_media::S3Media::from_env(bucket).await))
}

/// How long a consumer's receive waits for a message (SQS long polling, its maximum): an
/// idle consumer costs three requests a minute per queue instead of several a second, and a
/// message is received as soon as it is sent. Consumers stop waiting when they shut down.
pub const LONG_POLL: Duration = Duration::from_secs(20);

/// The SQS queues of the `WA_*_QUEUE_URL` variables (receives answer at once; see
/// [`LONG_POLL`] for consumers).
pub async fn queue_from_env() -> anyhow::Result<Arc<SqsQueue>> {
    Ok(Arc::new(
        SqsQueue::from_env()
            .await
            .map_err(|e| anyhow::anyhow!("the SQS queues: {e}"))?,
    ))
}

/// `store`, nudging the events queue after every write with events when that queue is set
/// (the webhooks consumer delivers them); else `store` itself (the outbox is polled).
pub fn with_nudges(store: Arc<dyn Store>, queue: Arc<dyn Queue>, env: &AwsEnv) -> Arc<dyn Store> {
    if env.events_queue_url.is_some() {
        Arc::new(Nudging::nudging(store, queue))
    } else {
        store
    }
}

/// Creates the table, the queues and the media bucket named by the environment when they
/// are missing (for emulators and first runs; in AWS the SAM template creates them).
/// Returns what it did, one line per resource. Fails when `WA_MEDIA_BUCKET` is set in a
/// build without the `media` feature.
pub async fn init(env: &AwsEnv) -> anyhow::Result<Vec<String>> {
    let mut done = Vec::new();
    if env.table.is_some() {
        let store = store_from_env(env).await?;
        store
            .create_table()
            .await
            .map_err(|e| anyhow::anyhow!("creating the table: {e}"))?;
        done.push(format!("table {}", store.table()));
    }
    let urls = [
        &env.commands_queue_url,
        &env.events_queue_url,
        &env.sends_queue_url,
    ];
    let names: Vec<String> = urls
        .into_iter()
        .flatten()
        .map(|u| u.rsplit('/').next().unwrap_or(u).to_owned())
        .collect();
    if !names.is_empty() {
        let created = wa_queue::sqs::create_queues_from_env(&names)
            .await
            .map_err(|e| anyhow::anyhow!("creating the queues: {e}"))?;
        done.extend(created.into_iter().map(|u| format!("queue {u}")));
    }
    if env.media_bucket.is_some() {
        done.push(init_media(env).await?);
    }
    Ok(done)
}

#[cfg(feature = "media")]
async fn init_media(env: &AwsEnv) -> anyhow::Result<String> {
    let media = media_from_env(env)
        .await
        .context("WA_MEDIA_BUCKET: the media bucket is not set")?;
    media
        .create_bucket()
        .await
        .map_err(|e| anyhow::anyhow!("creating the media bucket: {e}"))?;
    Ok(format!("bucket {}", media.bucket()))
}

#[cfg(not(feature = "media"))]
async fn init_media(_env: &AwsEnv) -> anyhow::Result<String> {
    anyhow::bail!("WA_MEDIA_BUCKET: this build has no S3 media support")
}

/// Logs as JSON lines (CloudWatch), filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .json()
        .with_current_span(true)
        .flatten_event(true)
        .without_time()
        .init();
}
