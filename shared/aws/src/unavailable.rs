//! The AWS data path of a build without the AWS SDK (feature `sdk` off): the functions of
//! the SDK build, each failing with [`NO_SDK`], so that the code calling them (the worker,
//! the consumers, `wa-server`) compiles the same way with and without the SDK.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use wa_core::queue::{DeadLetter, Depth, Queue, QueueError, Received};
use wa_core::store::Store;

use crate::{AwsEnv, NO_SDK};

/// Stands for the SQS queues in a build without the SDK. It has no value: [`queue_from_env`]
/// never returns one, so none of its methods can run.
#[derive(Clone)]
pub struct SqsQueue(Infallible);

impl SqsQueue {
    /// The SDK build's receive wait; never called (there is no value to call it on).
    pub fn with_receive_wait(self, _wait: Duration) -> Self {
        match self.0 {}
    }
}

/// `SqsQueue`'s impl of the queue port: each listed method (its arguments, and the `Ok`
/// type of its answer) is one that cannot run.
macro_rules! unreachable_queue {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ok:ty;)*) => {
        #[async_trait]
        impl Queue for SqsQueue {
            $(
                async fn $name(&self, $($arg: $ty),*) -> Result<$ok, QueueError> {
                    match self.0 {}
                }
            )*
        }
    };
}

unreachable_queue! {
    send(_queue: &str, _group: Option<&str>, _body: &str, _delay: Duration) -> String;
    receive(_queue: &str, _max: usize, _visibility: Duration) -> Vec<Received>;
    delete(_queue: &str, _receipt: &str) -> ();
    retry_after(_queue: &str, _receipt: &str, _delay: Duration) -> ();
    dead_letters(_queue: &str, _limit: usize) -> Vec<DeadLetter>;
    depth(_queue: &str) -> Depth;
}

/// Fails with [`NO_SDK`]: this build has no DynamoDB client.
pub async fn store_from_env(_env: &AwsEnv) -> anyhow::Result<Arc<dyn Store>> {
    anyhow::bail!("WA_TABLE_NAME: {NO_SDK}")
}

pub async fn store_holding_events_from_env(
    _env: &AwsEnv,
    _hold: Duration,
) -> anyhow::Result<Arc<dyn Store>> {
    anyhow::bail!("WA_TABLE_NAME: {NO_SDK}")
}

/// Always `None`: this build has no S3 client. Processes refuse a set `WA_MEDIA_BUCKET` at
/// start-up instead ([`AwsEnv::needs_sdk`]).
#[cfg(feature = "media")]
pub async fn media_from_env(_env: &AwsEnv) -> Option<Arc<dyn wa_core::media::MediaStore>> {
    None
}

/// Fails with [`NO_SDK`]: this build has no SQS client.
pub async fn queue_from_env() -> anyhow::Result<Arc<SqsQueue>> {
    anyhow::bail!("the SQS queues: {NO_SDK}")
}

/// Fails with [`NO_SDK`], whatever the environment names: there is nothing this build can
/// create.
pub async fn init(_env: &AwsEnv) -> anyhow::Result<Vec<String>> {
    anyhow::bail!("aws-init: {NO_SDK}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(table: Option<&str>) -> AwsEnv {
        AwsEnv::from_lookup(&|k| match k {
            "WA_TABLE_NAME" => table.map(str::to_owned),
            _ => None,
        })
    }

    #[tokio::test]
    async fn init_names_the_feature_to_build_with() {
        for e in [env(None), env(Some("wa"))] {
            let err = init(&e).await.unwrap_err().to_string();
            assert!(err.starts_with("aws-init: "), "{err}");
            assert!(err.contains("--features aws"), "{err}");
        }
    }

    #[tokio::test]
    async fn the_store_and_the_queues_name_the_feature_to_build_with() {
        let store = store_from_env(&env(Some("wa"))).await.err().unwrap();
        assert!(store.to_string().contains("--features aws"), "{store}");
        let queue = queue_from_env().await.err().unwrap();
        assert!(queue.to_string().contains("--features aws"), "{queue}");
    }
}
