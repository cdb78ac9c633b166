//! The metrics of wa-server: their names, their labels, and the functions that record them.
//!
//! Everything goes through the `metrics` facade, so recording is a no-op until a recorder is
//! installed (`wa-server` installs a Prometheus one and serves it at `/metrics`; the Lambdas
//! install none). Counters and histograms are recorded where things happen; the gauges
//! (queue depth, devices by status) are refreshed from the queue and the store by
//! `refresh_gauges`, which `/metrics` calls on every scrape. `docs/observability.md` lists
//! them all.

use std::time::Duration;

use crate::devices::DeviceStatus;
use crate::queue::{COMMANDS, Queue};
use crate::store::{Attempt, PageRequest, Store, StoreError};
use crate::time::OffsetDateTime;
use wa_errors::ErrorCode;

/// Counter `wa_http_requests_total{route, method, status}`.
pub const HTTP_REQUESTS_TOTAL: &str = "wa_http_requests_total";
/// Histogram `wa_http_request_duration_seconds{route, method}`.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "wa_http_request_duration_seconds";
/// The `route` label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

/// Counter `wa_sends_total{outcome}`; `outcome="failed"` also has `code`.
pub const SENDS_TOTAL: &str = "wa_sends_total";
/// Histogram `wa_send_latency_seconds`: from the send's acceptance to WhatsApp's acceptance.
pub const SEND_LATENCY_SECONDS: &str = "wa_send_latency_seconds";
/// Gauge `wa_queue_depth{queue, state}`, `state` = `visible` | `in_flight`.
pub const QUEUE_DEPTH: &str = "wa_queue_depth";
/// Gauge `wa_queue_oldest_age_seconds{queue}`.
pub const QUEUE_OLDEST_AGE_SECONDS: &str = "wa_queue_oldest_age_seconds";
/// Counter `wa_webhook_attempts_total{outcome}`, `outcome` = `delivered` | `retry` |
/// `failed` | `skipped`.
pub const WEBHOOK_ATTEMPTS_TOTAL: &str = "wa_webhook_attempts_total";
/// Gauge `wa_devices{status}`: devices of every App by status (destroyed ones included).
pub const DEVICES: &str = "wa_devices";

/// The queues whose depth `/metrics` reports.
pub const QUEUES: &[&str] = &[COMMANDS];

/// Bucket bounds (seconds) of the HTTP duration histogram: 1 ms to 30 s (a waited send
/// answers within `WA_SEND_WAIT_MS`, 20 s by default).
pub const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Bucket bounds (seconds) of the send latency histogram: 5 ms to 5 min (rate-limited sends
/// are retried with backoff for minutes).
pub const SEND_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// How a send ended (or paused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// WhatsApp accepted it.
    Sent,
    /// Failed for good, with the error's code.
    Failed(ErrorCode),
    /// Canceled while queued (DELETE, or its device lost its session).
    Canceled,
    /// WhatsApp throttled it; it stays queued and is retried (counted once per attempt).
    RateLimited,
}

impl SendOutcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            SendOutcome::Sent => "sent",
            SendOutcome::Failed(_) => "failed",
            SendOutcome::Canceled => "canceled",
            SendOutcome::RateLimited => "rate_limited",
        }
    }
}

/// Counts one send outcome.
pub fn send_outcome(outcome: SendOutcome) {
    match outcome {
        SendOutcome::Failed(code) => {
            metrics::counter!(SENDS_TOTAL, "outcome" => outcome.as_str(), "code" => code.as_str())
                .increment(1)
        }
        _ => metrics::counter!(SENDS_TOTAL, "outcome" => outcome.as_str()).increment(1),
    }
}

/// Records the latency of a sent message: from `accepted_at` (its `created_at`) to now.
pub fn send_latency(accepted_at: OffsetDateTime) {
    let secs = (crate::time::now() - accepted_at).as_seconds_f64().max(0.0);
    metrics::histogram!(SEND_LATENCY_SECONDS).record(secs);
}

/// The `outcome` label of a webhook attempt.
pub const fn webhook_outcome(attempt: &Attempt) -> &'static str {
    match attempt {
        Attempt::Delivered { .. } => "delivered",
        Attempt::Retry { .. } => "retry",
        Attempt::Failed { .. } => "failed",
        Attempt::Skipped => "skipped",
    }
}

/// Counts one webhook delivery attempt: the dispatcher calls it with every `Attempt` it
/// records (`Skipped` when the App had no webhook URL).
pub fn webhook_attempt(attempt: &Attempt) {
    metrics::counter!(WEBHOOK_ATTEMPTS_TOTAL, "outcome" => webhook_outcome(attempt)).increment(1);
}

/// Sets the queue gauges of `queues` from `Queue::depth`. A queue that cannot be read keeps
/// its last values (the failure is logged).
pub async fn refresh_queue_gauges(queue: &dyn Queue, queues: &[&'static str]) {
    for &name in queues {
        match queue.depth(name).await {
            Ok(d) => {
                metrics::gauge!(QUEUE_DEPTH, "queue" => name, "state" => "visible")
                    .set(d.visible as f64);
                metrics::gauge!(QUEUE_DEPTH, "queue" => name, "state" => "in_flight")
                    .set(d.in_flight as f64);
                metrics::gauge!(QUEUE_OLDEST_AGE_SECONDS, "queue" => name).set(d.oldest_age_secs);
            }
            Err(e) => tracing::warn!(queue = name, error = %e, "queue depth unavailable"),
        }
    }
}

/// Devices by status, counted by paging through `devices_with_status` (one pass over the
/// devices, `page_size` at a time).
pub async fn count_devices(
    store: &dyn Store,
    page_size: u32,
) -> Result<[(DeviceStatus, u64); 8], StoreError> {
    let mut counts = DeviceStatus::ALL.map(|s| (s, 0u64));
    let mut after = None;
    loop {
        let page = store
            .devices_with_status(
                &DeviceStatus::ALL,
                PageRequest {
                    limit: page_size,
                    after,
                },
            )
            .await?;
        for d in &page.items {
            if let Some(c) = counts.iter_mut().find(|(s, _)| *s == d.status) {
                c.1 += 1;
            }
        }
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(counts),
        }
    }
}

/// Sets `wa_devices{status}` for every status. On a store failure the gauges keep their
/// last values (the failure is logged).
pub async fn refresh_device_gauges(store: &dyn Store) {
    match count_devices(store, 1000).await {
        Ok(counts) => {
            for (status, n) in counts {
                metrics::gauge!(DEVICES, "status" => status.as_str()).set(n as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "device counts unavailable"),
    }
}

/// Refreshes every gauge (what a scrape of `/metrics` does first), within `budget`: a slow
/// store or queue leaves the last values rather than holding the scrape.
pub async fn refresh_gauges(store: &dyn Store, queue: &dyn Queue, budget: Duration) {
    let work = async {
        refresh_queue_gauges(queue, QUEUES).await;
        refresh_device_gauges(store).await;
    };
    if tokio::time::timeout(budget, work).await.is_err() {
        tracing::warn!(
            budget_ms = budget.as_millis() as u64,
            "refreshing the gauges took too long"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(
            SendOutcome::Failed(ErrorCode::ProviderError).as_str(),
            "failed"
        );
        assert_eq!(SendOutcome::RateLimited.as_str(), "rate_limited");
        assert_eq!(webhook_outcome(&Attempt::Skipped), "skipped");
        assert_eq!(
            webhook_outcome(&Attempt::Delivered { status_code: 204 }),
            "delivered"
        );
        // Without a recorder, recording is a no-op (never a panic).
        send_outcome(SendOutcome::Failed(ErrorCode::UpstreamTimeout));
        send_latency(crate::time::now());
        webhook_attempt(&Attempt::Skipped);
    }
}
