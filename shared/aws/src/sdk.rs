//! The AWS data path on the AWS SDK (feature `sdk`): the DynamoDB store, the SQS queues and
//! (feature `media`) the S3 media bucket of the environment, and what `aws-init` creates.

use std::sync::Arc;

use anyhow::Context as _;
use wa_core::store::Store;
use wa_store::DynamoStore;

pub use wa_queue::SqsQueue;

use crate::AwsEnv;

/// The DynamoDB store of `WA_TABLE_NAME`; fails when it is unset.
pub async fn store_from_env(env: &AwsEnv) -> anyhow::Result<Arc<dyn Store>> {
    Ok(dynamo_from_env(env).await?)
}

/// [`store_from_env`], writing the events it commits held for `hold`, for this process to
/// deliver them itself ([`DynamoStore::holding_events`]).
pub async fn store_holding_events_from_env(
    env: &AwsEnv,
    hold: std::time::Duration,
) -> anyhow::Result<Arc<dyn Store>> {
    let store = dynamo_from_env(env).await?;
    Ok(Arc::new((*store).clone().holding_events(hold)))
}

async fn dynamo_from_env(env: &AwsEnv) -> anyhow::Result<Arc<DynamoStore>> {
    let table = env
        .table
        .as_deref()
        .context("WA_TABLE_NAME: the DynamoDB table is not set")?;
    Ok(Arc::new(DynamoStore::from_env(table).await))
}

/// The S3 media store of `WA_MEDIA_BUCKET`, `None` when it is unset.
#[cfg(feature = "media")]
pub async fn media_from_env(env: &AwsEnv) -> Option<Arc<dyn wa_core::media::MediaStore>> {
    Some(s3_from_env(env).await?)
}

#[cfg(feature = "media")]
async fn s3_from_env(env: &AwsEnv) -> Option<Arc<wa_media::S3Media>> {
    let bucket = env.media_bucket.as_deref()?;
    Some(Arc::new(wa_media::S3Media::from_env(bucket).await))
}

/// The SQS queues of the `WA_*_QUEUE_URL` variables (receives answer at once; see
/// [`crate::LONG_POLL`] for consumers).
pub async fn queue_from_env() -> anyhow::Result<Arc<SqsQueue>> {
    Ok(Arc::new(
        SqsQueue::from_env()
            .await
            .map_err(|e| anyhow::anyhow!("the SQS queues: {e}"))?,
    ))
}

/// Creates the table, the queues and the media bucket named by the environment when they
/// are missing (for emulators and first runs; in AWS the SAM template creates them).
/// Returns what it did, one line per resource. Fails when `WA_MEDIA_BUCKET` is set in a
/// build without the `media` feature.
pub async fn init(env: &AwsEnv) -> anyhow::Result<Vec<String>> {
    let mut done = Vec::new();
    if env.table.is_some() {
        let store = dynamo_from_env(env).await?;
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
    let media = s3_from_env(env)
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
