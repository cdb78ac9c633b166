//! The AWS data-path wiring shared by the Lambdas, the worker service, the queue consumers
//! and `wa-server` on the AWS data path: the DynamoDB store and the SQS queues from the
//! environment (`WA_TABLE_NAME`, `WA_COMMANDS_QUEUE_URL`, `WA_EVENTS_QUEUE_URL`,
//! `WA_SENDS_QUEUE_URL`, and the SDK's own `AWS_REGION`, `AWS_ENDPOINT_URL`, credentials),
//! with the `media` feature the S3 media bucket (`WA_MEDIA_BUCKET`), the webhook nudges,
//! `aws-init`, and the Lambdas' JSON logs. No HTTP server here: the Lambda HTTP entry point
//! is `wa-lambda-http`.
//!
//! The AWS SDK is compiled in only with the feature `sdk` ([`SDK`]): without it the same
//! functions exist and fail with [`NO_SDK`], so that `wa-server`'s default build compiles
//! no AWS client and its users learn which feature to build with.

#[cfg(feature = "sdk")]
mod sdk;
#[cfg(not(feature = "sdk"))]
mod unavailable;

#[cfg(all(feature = "sdk", feature = "media"))]
pub use sdk::media_from_env;
#[cfg(feature = "sdk")]
pub use sdk::{SqsQueue, init, queue_from_env, store_from_env, store_holding_events_from_env};
#[cfg(all(not(feature = "sdk"), feature = "media"))]
pub use unavailable::media_from_env;
#[cfg(not(feature = "sdk"))]
pub use unavailable::{
    SqsQueue, init, queue_from_env, store_from_env, store_holding_events_from_env,
};

use std::sync::Arc;
use std::time::Duration;

use wa_core::outbox::Nudging;
use wa_core::queue::Queue;
use wa_core::store::Store;

/// Whether this build has the AWS SDK (feature `sdk`; `wa-server` and `wa-worker` enable it
/// with their feature `aws`).
pub const SDK: bool = cfg!(feature = "sdk");

/// Why the AWS data path fails in a build without the SDK, and what to build instead.
pub const NO_SDK: &str = "this build has no AWS data path (DynamoDB, SQS, S3): build it with \
    the `aws` feature, e.g. `cargo run --release -p wa-server --features aws`";

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

    /// The first variable of the AWS data path that is set, when a build with `sdk` false
    /// cannot serve it (`None` with the SDK, or when none is set): a process must refuse to
    /// start rather than quietly run on SQLite and the data directory.
    pub fn needs_sdk(&self, sdk: bool) -> Option<&'static str> {
        if sdk {
            return None;
        }
        [
            ("WA_TABLE_NAME", &self.table),
            ("WA_COMMANDS_QUEUE_URL", &self.commands_queue_url),
            ("WA_EVENTS_QUEUE_URL", &self.events_queue_url),
            ("WA_SENDS_QUEUE_URL", &self.sends_queue_url),
            ("WA_MEDIA_BUCKET", &self.media_bucket),
        ]
        .into_iter()
        .find_map(|(var, value)| value.is_some().then_some(var))
    }

    /// Whether any SQS queue is configured.
    pub fn uses_sqs(&self) -> bool {
        self.commands_queue_url.is_some()
            || self.events_queue_url.is_some()
            || self.sends_queue_url.is_some()
    }
}

/// How long a consumer's receive waits for a message (SQS long polling, its maximum): an
/// idle consumer costs three requests a minute per queue instead of several a second, and a
/// message is received as soon as it is sent. Consumers stop waiting when they shut down.
pub const LONG_POLL: Duration = Duration::from_secs(20);

/// `store`, nudging the events queue after every write with events when that queue is set
/// (the webhooks consumer delivers them); else `store` itself (the outbox is polled).
pub fn with_nudges(store: Arc<dyn Store>, queue: Arc<dyn Queue>, env: &AwsEnv) -> Arc<dyn Store> {
    if env.events_queue_url.is_some() {
        Arc::new(Nudging::nudging(store, queue))
    } else {
        store
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> AwsEnv {
        AwsEnv::from_lookup(&|k| {
            pairs
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn needs_sdk_names_the_first_variable_set_without_the_sdk() {
        // (environment, built with the SDK, the variable named)
        type Row<'a> = (&'a [(&'a str, &'a str)], bool, Option<&'a str>);
        let rows: [Row; 9] = [
            (&[], false, None),
            (&[], true, None),
            (&[("WA_TABLE_NAME", " ")], false, None),
            (&[("WA_TABLE_NAME", "wa")], false, Some("WA_TABLE_NAME")),
            (&[("WA_TABLE_NAME", "wa")], true, None),
            (
                &[("WA_COMMANDS_QUEUE_URL", "u"), ("WA_EVENTS_QUEUE_URL", "u")],
                false,
                Some("WA_COMMANDS_QUEUE_URL"),
            ),
            (
                &[("WA_EVENTS_QUEUE_URL", "u")],
                false,
                Some("WA_EVENTS_QUEUE_URL"),
            ),
            (
                &[("WA_SENDS_QUEUE_URL", "u")],
                false,
                Some("WA_SENDS_QUEUE_URL"),
            ),
            (&[("WA_MEDIA_BUCKET", "b")], false, Some("WA_MEDIA_BUCKET")),
        ];
        for (pairs, sdk, expected) in rows {
            assert_eq!(env(pairs).needs_sdk(sdk), expected, "{pairs:?} sdk={sdk}");
        }
    }
}
