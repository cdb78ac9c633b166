//! The webhook dispatcher: delivers the event outbox to each App's webhook URL, signed per
//! Standard Webhooks, in order per device, retried on a schedule, kept as failed at the end.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use uuid::Uuid;
use wa_core::store::{Attempt, Delivery, Store, StoreError};
use wa_core::time;
use wa_core::webhooks::sign;

/// The default retry schedule (`WA_WEBHOOK_RETRY_SCHEDULE`).
pub const DEFAULT_SCHEDULE: &str = "10s,30s,90s,5m,30m,2h,6h";

/// Parses a schedule such as `10s,30s,5m,2h` (units `ms`, `s`, `m`, `h`).
pub fn parse_schedule(raw: &str) -> Result<Vec<Duration>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (num, unit) = p.split_at(p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len()));
            let n: u64 = num
                .parse()
                .map_err(|_| format!("`{p}` is not a duration"))?;
            Ok(match unit {
                "ms" => Duration::from_millis(n),
                "s" | "" => Duration::from_secs(n),
                "m" => Duration::from_secs(n * 60),
                "h" => Duration::from_secs(n * 3600),
                _ => return Err(format!("`{p}`: the unit must be ms, s, m or h")),
            })
        })
        .collect()
}

/// Settings of the dispatcher.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Delays before the 2nd, 3rd, ... attempt; after the last one a delivery is `failed`.
    pub schedule: Vec<Duration>,
    /// Timeout of one attempt.
    pub timeout: Duration,
    /// Allow private, loopback and link-local targets.
    pub allow_private_urls: bool,
    /// Deliveries in flight at once (one per device at most).
    pub concurrency: usize,
}

/// Delivers events.
pub struct Dispatcher {
    store: Arc<dyn Store>,
    client: reqwest::Client,
    config: DispatcherConfig,
    busy: Mutex<HashSet<Uuid>>,
    permits: Arc<Semaphore>,
}

impl Dispatcher {
    pub fn new(store: Arc<dyn Store>, config: DispatcherConfig) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("wa-server/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Dispatcher {
            permits: Arc::new(Semaphore::new(config.concurrency.max(1))),
            store,
            client,
            config,
            busy: Mutex::new(HashSet::new()),
        })
    }

    /// Delivers until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                break;
            }
            match self.store.due_deliveries(time::now(), 512).await {
                Ok(due) => {
                    for d in due {
                        let device = d.event.device_id;
                        if !self.lock(device).insert(device) {
                            continue;
                        }
                        let this = self.clone();
                        tokio::spawn(async move { this.chain(device, d).await });
                    }
                }
                Err(e) => tracing::error!(error = %e, "reading due webhook deliveries failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    fn lock(&self, _device: Uuid) -> std::sync::MutexGuard<'_, HashSet<Uuid>> {
        self.busy.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Delivers a device's due events one after the other, in order, until one must wait.
    async fn chain(&self, device: Uuid, first: Delivery) {
        let mut next = Some(first);
        while let Some(d) = next {
            let Ok(_permit) = self.permits.acquire().await else {
                break;
            };
            match self.deliver(&d).await {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    tracing::error!(request_id = %d.event.request_id, error = %e, "recording a webhook attempt failed");
                    break;
                }
            }
            next = match self
                .store
                .next_delivery_of_device(device, time::now())
                .await
            {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "reading the next webhook delivery failed");
                    None
                }
            };
        }
        self.lock(device).remove(&device);
    }

    /// Delivers a device's due events in order until none is due (`Ok(None)`) or one waits
    /// for a retry (`Ok(Some(when))`): the events-queue consumer's unit of work.
    pub async fn drain_device(
        &self,
        device: Uuid,
    ) -> Result<Option<time::OffsetDateTime>, StoreError> {
        while let Some(d) = self
            .store
            .next_delivery_of_device(device, time::now())
            .await?
        {
            if let Some(next) = self.attempt(&d).await? {
                return Ok(Some(next));
            }
        }
        Ok(None)
    }

    /// One attempt. `Ok(true)` when the device's next event may go (delivered, given up or
    /// skipped), `Ok(false)` when this one waits for a retry.
    async fn deliver(&self, d: &Delivery) -> Result<bool, StoreError> {
        Ok(self.attempt(d).await?.is_none())
    }

    /// One attempt; `Some(when)` when the delivery waits for a retry at `when`.
    async fn attempt(&self, d: &Delivery) -> Result<Option<time::OffsetDateTime>, StoreError> {
        let id = &d.event.request_id;
        let app = self.store.get_app(d.event.app_id).await?;
        let Some((url, secret)) = app.and_then(|a| a.webhook_url.map(|u| (u, a.webhook_secret)))
        else {
            match self.store.record_attempt(id, &Attempt::Skipped).await {
                Ok(_) => {
                    wa_core::metrics::webhook_attempt(&Attempt::Skipped);
                    return Ok(None);
                }
                // Another consumer recorded this delivery first.
                Err(StoreError::Conflict(_)) => return Ok(None),
                Err(e) => return Err(e),
            }
        };
        let outcome = self.post(&url, &secret, d).await;
        let attempt_no = d.attempts as usize + 1;
        let attempt = match outcome {
            Ok(code) => Attempt::Delivered { status_code: code },
            Err((error, status_code)) => match self.config.schedule.get(attempt_no - 1) {
                Some(delay) => Attempt::Retry {
                    next: time::now() + *delay,
                    error,
                    status_code,
                },
                None => Attempt::Failed { error, status_code },
            },
        };
        let waits = match &attempt {
            Attempt::Retry { next, .. } => Some(*next),
            _ => None,
        };
        match &attempt {
            Attempt::Delivered { .. } => tracing::debug!(request_id = %id, "webhook delivered"),
            Attempt::Retry { error, .. } => {
                tracing::info!(request_id = %id, attempt = attempt_no, %error, "webhook attempt failed; will retry")
            }
            Attempt::Failed { error, .. } => {
                tracing::warn!(request_id = %id, attempt = attempt_no, %error, "webhook delivery failed for good; replayable")
            }
            Attempt::Skipped => {}
        }
        match self.store.record_attempt(id, &attempt).await {
            Ok(_) => {
                wa_core::metrics::webhook_attempt(&attempt);
                Ok(waits)
            }
            Err(StoreError::Conflict(_)) => Ok(waits),
            Err(e) => Err(e),
        }
    }

    /// POSTs the event; `Ok(status)` on 2xx, else the error and the status if there was one.
    async fn post(
        &self,
        url: &str,
        secret: &str,
        d: &Delivery,
    ) -> Result<u16, (String, Option<u16>)> {
        if !self.config.allow_private_urls {
            check_target(url).await.map_err(|e| (e, None))?;
        }
        let body = d.event.body();
        let ts = time::now().unix_timestamp();
        let id = &d.event.request_id;
        let signature = sign(secret, id, ts, &body)
            .ok_or_else(|| ("the webhook secret is malformed".to_owned(), None))?;
        let res = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .header("x-wa-request-id", id)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                let what = if e.is_timeout() {
                    "timed out"
                } else {
                    "failed"
                };
                (format!("the request {what}: {e}"), None)
            })?;
        let status = res.status();
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err((
                format!("the receiver answered {status}"),
                Some(status.as_u16()),
            ))
        }
    }
}

/// Refuses a webhook URL whose host resolves to a private, loopback or link-local address.
async fn check_target(url: &str) -> Result<(), String> {
    let u =
        wa_core::net::check_outbound_url(url, false).map_err(|r| format!("webhook_url {}", r.0))?;
    let host = u
        .host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_owned();
    let port = u.port_or_known_default().unwrap_or(443);
    let addrs = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::lookup_host((host.as_str(), port)),
    )
    .await
    .map_err(|_| format!("resolving {host} timed out"))?
    .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    for a in addrs {
        if !wa_core::net::is_public_ip(a.ip()) {
            return Err(format!("{host} resolves to a private address"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        assert_eq!(
            parse_schedule(DEFAULT_SCHEDULE).unwrap(),
            [10, 30, 90, 300, 1800, 7200, 21600].map(Duration::from_secs)
        );
        assert_eq!(
            parse_schedule("100ms, 2s").unwrap(),
            [Duration::from_millis(100), Duration::from_secs(2)]
        );
        assert!(parse_schedule("").unwrap().is_empty());
        assert!(parse_schedule("5d").is_err());
        assert!(parse_schedule("x").is_err());
    }
}
