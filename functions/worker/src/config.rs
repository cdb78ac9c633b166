//! The worker's settings and what they select: the store and queue, the media store, the
//! provider.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use wa_core::Store;
use wa_core::lease;
use wa_core::media::MediaStore;
use wa_core::provider::{EventSender, InboundSender, Provider, SandboxControl};
use wa_core::queue::Queue;
use wa_queue::LocalQueue;
use wa_store::SqliteStore;

use crate::webhooks;

/// Which WhatsApp connection to use (`WA_PROVIDER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// The real WhatsApp, through whatsapp-rust (the default).
    WhatsApp,
    /// The simulated WhatsApp of the sandbox.
    Sandbox,
}

/// Everything the worker reads from its environment.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// `WA_PROVIDER`: `whatsapp` (default) or `sandbox`.
    pub provider: ProviderKind,
    /// `WA_QR_TTL_SECS` (sandbox QR lifetime), default 60.
    pub qr_ttl: Duration,
    /// `WA_CONNECT_TIMEOUT_SECS`: how long the real provider tries to reach WhatsApp before
    /// a device gets a `last_error`, default 30.
    pub connect_timeout: Duration,
    /// `WA_WHATSAPP_WS_URL`: the WebSocket endpoint the real provider dials, default
    /// WhatsApp Web's (`wss://web.whatsapp.com/ws/chat`).
    pub whatsapp_ws_url: String,
    /// `WA_WHATSAPP_VERSION` (`2.3000.<revision>`): the client version the real provider
    /// announces. Unset (the default), the current one is fetched from WhatsApp Web
    /// (`https://web.whatsapp.com/sw.js`) at most once a day per session.
    pub whatsapp_version: Option<wa_provider::whatsapp::WaVersion>,
    /// `WA_DATA_DIR`: session keys live under `<data dir>/sessions` (real) or
    /// `<data dir>/sandbox` (sandbox).
    pub data_dir: PathBuf,
    /// `WA_SEND_RATE`: sends per second per device, default 5; 0 = unpaced.
    pub send_rate: f64,
    /// `WA_SEND_BURST`: sends a device may make at once before pacing applies, default 20.
    pub send_burst: u32,
    /// `WA_ALLOW_PRIVATE_URLS`: allow media URLs and webhooks on private addresses.
    pub allow_private_urls: bool,
    /// `WA_WEBHOOK_RETRY_SCHEDULE`, default `10s,30s,90s,5m,30m,2h,6h`.
    pub webhook_schedule: Vec<Duration>,
    /// `WA_WEBHOOK_TIMEOUT_SECS`: timeout of one delivery attempt, default 10.
    pub webhook_timeout: Duration,
    /// `WA_WORKER_ID`: this worker's name among several (`wa_core::lease`), default unique
    /// per start: the owner of its leases.
    pub worker_id: String,
    /// `WA_LEASE_TTL_SECS`: the lease period of a device's session, default 30.
    pub lease_ttl: Duration,
    /// Session starts at once (`WA_RECONNECT_CONCURRENCY`, default 8).
    pub reconnect_concurrency: usize,
    /// `WA_REJECT_CALLS`: `1` (or `true`) rejects every incoming call as it rings (its
    /// `call` event says `rejected`); default off.
    pub reject_calls: bool,
}

/// A variable with a value the worker cannot use: `(name, problem)`.
pub type ConfigProblem = (&'static str, String);

impl WorkerConfig {
    /// Reads the settings through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigProblem> {
        let var = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let provider = match var("WA_PROVIDER").as_deref() {
            None | Some("whatsapp") => ProviderKind::WhatsApp,
            Some("sandbox") => ProviderKind::Sandbox,
            Some(_) => return Err(("WA_PROVIDER", "must be whatsapp or sandbox".into())),
        };
        let secs = |k: &'static str, default: u64| -> Result<Duration, ConfigProblem> {
            match var(k) {
                None => Ok(Duration::from_secs(default)),
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=86_400).contains(n))
                    .map(Duration::from_secs)
                    .ok_or((k, "must be a number of seconds between 1 and 86400".into())),
            }
        };
        let send_rate = match var("WA_SEND_RATE") {
            None => 5.0,
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|r| r.is_finite() && *r >= 0.0)
                .ok_or((
                    "WA_SEND_RATE",
                    "must be a number of sends per second, 0 for unpaced".into(),
                ))?,
        };
        let send_burst = match var("WA_SEND_BURST") {
            None => 20,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|b| *b >= 1)
                .ok_or(("WA_SEND_BURST", "must be a whole number, at least 1".into()))?,
        };
        let allow_private_urls = matches!(
            var("WA_ALLOW_PRIVATE_URLS").as_deref(),
            Some("1") | Some("true")
        );
        let reject_calls = matches!(var("WA_REJECT_CALLS").as_deref(), Some("1") | Some("true"));
        let webhook_schedule = crate::webhooks::parse_schedule(
            &var("WA_WEBHOOK_RETRY_SCHEDULE")
                .unwrap_or_else(|| crate::webhooks::DEFAULT_SCHEDULE.into()),
        )
        .map_err(|e| ("WA_WEBHOOK_RETRY_SCHEDULE", e))?;
        let whatsapp_ws_url = match var("WA_WHATSAPP_WS_URL") {
            None => wa_provider::whatsapp::DEFAULT_WS_URL.to_string(),
            Some(v) => {
                wa_provider::whatsapp::parse_ws_url(&v).map_err(|e| ("WA_WHATSAPP_WS_URL", e))?
            }
        };
        let whatsapp_version = var("WA_WHATSAPP_VERSION")
            .map(|v| wa_provider::whatsapp::parse_version(&v))
            .transpose()
            .map_err(|e| ("WA_WHATSAPP_VERSION", e))?;
        let worker_id = lease::worker_id_setting(get(lease::WORKER_ID_VAR).as_deref())
            .map_err(|e| (lease::WORKER_ID_VAR, e))?;
        let lease_ttl =
            lease::ttl_setting(get(lease::TTL_VAR).as_deref()).map_err(|e| (lease::TTL_VAR, e))?;
        let reconnect_concurrency = crate::balance::reconnect_concurrency_setting(
            get(crate::balance::RECONNECT_CONCURRENCY_VAR).as_deref(),
        )
        .map_err(|e| (crate::balance::RECONNECT_CONCURRENCY_VAR, e))?;
        Ok(WorkerConfig {
            worker_id,
            lease_ttl,
            reconnect_concurrency,
            whatsapp_ws_url,
            whatsapp_version,
            webhook_schedule,
            webhook_timeout: secs("WA_WEBHOOK_TIMEOUT_SECS", 10)?,
            send_rate,
            send_burst,
            allow_private_urls,
            reject_calls,
            provider,
            qr_ttl: secs("WA_QR_TTL_SECS", 60)?,
            connect_timeout: secs("WA_CONNECT_TIMEOUT_SECS", 30)?,
            data_dir: PathBuf::from(var("WA_DATA_DIR").unwrap_or_else(|| "./data".into())),
        })
    }
}

/// What [`open_backends`] opened.
pub struct Backends {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    /// The store is the SQLite file and this process holds its exclusive lock: no other
    /// process uses it (`Worker::with_exclusive_store`).
    pub exclusive: bool,
    /// The events this process commits, when it delivers their webhooks itself: run
    /// `webhooks::committed::run` on them.
    pub committed: Option<webhooks::committed::Receiver>,
}

/// The store and the queue the configuration selects: SQLite and the local queue in the
/// data directory by default; DynamoDB with `WA_TABLE_NAME`; SQS with the queue URLs.
///
/// `sole_process`: no other process uses the SQLite file (the embedded server running its
/// own worker), so its hottest reads may be cached in this process
/// (`SqliteStore::with_read_caches`). A server and a separate `wa-worker` on one data
/// directory both pass `false`: each writes what the other would have cached.
///
/// `deliver_after_commit`: on DynamoDB with the events queue, this process delivers the
/// webhooks of the events it commits itself, its attempts timing out after this long
/// (`Backends::committed`); else the events queue's consumer delivers every one.
pub async fn open_backends(
    data_dir: &Path,
    aws: &wa_aws::AwsEnv,
    sole_process: bool,
    deliver_after_commit: Option<Duration>,
) -> anyhow::Result<Backends> {
    let db = data_dir.join("wa.db");
    let sqlite = if aws.table.is_none() || !aws.uses_sqs() {
        Some(
            SqliteStore::open(&db)
                .map_err(|e| anyhow::anyhow!("cannot open the database {}: {e}", db.display()))?,
        )
    } else {
        None
    };
    let local = match &sqlite {
        Some(s) if !aws.uses_sqs() => Some(
            LocalQueue::on(s.db(), crate::MAX_RECEIVES)
                .map_err(|e| anyhow::anyhow!("cannot open the queue in {}: {e}", db.display()))?,
        ),
        _ => None,
    };
    let queue: Arc<dyn Queue> = match &local {
        // This process consumes its queues: its receives long-poll.
        _ if aws.uses_sqs() => Arc::new(
            (*wa_aws::queue_from_env().await?)
                .clone()
                .with_receive_wait(wa_aws::LONG_POLL),
        ),
        Some(q) => Arc::new(q.clone()),
        None => unreachable!("SQLite is opened whenever SQS is not used"),
    };
    let mut exclusive = false;
    let holds =
        deliver_after_commit.filter(|_| aws.table.is_some() && aws.events_queue_url.is_some());
    if let Some(timeout) = holds {
        let hold = webhooks::committed::hold_for(timeout);
        let (store, committed) = webhooks::committed::delivering(
            wa_aws::store_holding_events_from_env(aws, hold).await?,
        );
        return Ok(Backends {
            store,
            queue,
            exclusive: false,
            committed: Some(committed),
        });
    }
    let store: Arc<dyn Store> = match sqlite {
        _ if aws.table.is_some() => wa_aws::store_from_env(aws).await?,
        Some(mut s) => {
            // The queue lives in the same database: a send's message and its command share
            // a commit.
            if let Some(q) = local {
                s = s
                    .with_commands_queue(Arc::new(q))
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            if sole_process {
                s = s.with_read_caches();
                exclusive = s.caches_reads();
            }
            Arc::new(s)
        }
        None => unreachable!("SQLite is opened whenever DynamoDB is not used"),
    };
    Ok(Backends {
        store: wa_aws::with_nudges(store, queue.clone(), aws),
        queue,
        exclusive,
        committed: None,
    })
}

/// Where inbound media live: the S3 bucket of `WA_MEDIA_BUCKET` when it is set, else the
/// data directory (`<data_dir>/media`).
pub async fn media_backend(data_dir: &Path, aws: &wa_aws::AwsEnv) -> Arc<dyn MediaStore> {
    match wa_aws::media_from_env(aws).await {
        Some(s3) => s3,
        None => Arc::new(wa_media::DirMedia::new(data_dir)),
    }
}

/// The provider, and the sandbox's control surface when the provider is the sandbox.
pub type Providers = (Arc<dyn Provider>, Option<Arc<dyn SandboxControl>>);

/// The provider the configuration selects, and the sandbox's control surface when it is
/// the sandbox.
pub fn build_provider(
    config: &WorkerConfig,
    data_dir: &Path,
    events: EventSender,
    inbound: InboundSender,
) -> anyhow::Result<Providers> {
    match config.provider {
        ProviderKind::Sandbox => {
            let sandbox = Arc::new(wa_provider::sandbox::Sandbox::new(
                data_dir,
                events,
                inbound,
                wa_provider::sandbox::SandboxOptions {
                    qr_ttl: config.qr_ttl,
                    reject_calls: config.reject_calls,
                    ..Default::default()
                },
            )?);
            Ok((sandbox.clone(), Some(sandbox)))
        }
        ProviderKind::WhatsApp => {
            let dir = data_dir.join("sessions");
            wa_core::private_fs::create_dir_all(&dir)?;
            let provider = wa_provider::whatsapp::WhatsAppProvider::new(
                dir,
                events,
                inbound,
                wa_provider::whatsapp::WhatsAppOptions {
                    connect_timeout: config.connect_timeout,
                    ws_url: config.whatsapp_ws_url.clone(),
                    version: config.whatsapp_version,
                    reject_calls: config.reject_calls,
                    ..Default::default()
                },
            );
            Ok((Arc::new(provider), None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<WorkerConfig, ConfigProblem> {
        let m: HashMap<&str, &str> = pairs.iter().copied().collect();
        WorkerConfig::from_lookup(&|k| m.get(k).map(|v| v.to_string()))
    }

    #[test]
    fn the_real_provider_defaults_to_whatsapp_web() {
        let c = cfg(&[]).expect("defaults");
        assert_eq!(c.provider, ProviderKind::WhatsApp);
        assert_eq!(c.whatsapp_ws_url, "wss://web.whatsapp.com/ws/chat");
        assert_eq!(c.whatsapp_version, None, "fetched from WhatsApp Web");
        assert!(!c.reject_calls, "calls ring by default");
    }

    #[test]
    fn calls_are_rejected_only_when_asked() {
        for (v, want) in [("1", true), ("true", true), ("0", false), ("no", false)] {
            assert_eq!(
                cfg(&[("WA_REJECT_CALLS", v)]).unwrap().reject_calls,
                want,
                "{v}"
            );
        }
    }

    #[test]
    fn the_endpoint_and_the_version_can_be_pinned() {
        let c = cfg(&[
            ("WA_WHATSAPP_WS_URL", "ws://127.0.0.1:9/ws/chat"),
            ("WA_WHATSAPP_VERSION", "2.3000.1023868175"),
        ])
        .expect("valid settings");
        assert_eq!(c.whatsapp_ws_url, "ws://127.0.0.1:9/ws/chat");
        assert_eq!(c.whatsapp_version, Some((2, 3000, 1023868175)));
        // Blank is unset.
        let c = cfg(&[("WA_WHATSAPP_WS_URL", " "), ("WA_WHATSAPP_VERSION", "")]).expect("blank");
        assert_eq!(c.whatsapp_ws_url, wa_provider::whatsapp::DEFAULT_WS_URL);
        assert_eq!(c.whatsapp_version, None);
    }

    #[test]
    fn the_fleet_settings_are_checked() {
        let c = cfg(&[]).expect("defaults");
        assert!(c.worker_id.starts_with("worker-"), "{}", c.worker_id);
        assert_eq!(c.lease_ttl, Duration::from_secs(30));
        let c = cfg(&[("WA_WORKER_ID", "w-1"), ("WA_LEASE_TTL_SECS", "45")]).expect("valid");
        assert_eq!(
            (c.worker_id.as_str(), c.lease_ttl),
            ("w-1", Duration::from_secs(45))
        );
        for (k, v) in [
            ("WA_WORKER_ID", "two words"),
            ("WA_WORKER_ID", "w#1"),
            ("WA_LEASE_TTL_SECS", "2"),
            ("WA_LEASE_TTL_SECS", "3601"),
            ("WA_LEASE_TTL_SECS", "thirty"),
        ] {
            let (name, problem) = cfg(&[(k, v)]).expect_err(v);
            assert_eq!(name, k, "{v}: {problem}");
        }
    }

    #[test]
    fn bad_endpoint_settings_are_refused_with_their_name() {
        for (k, v) in [
            ("WA_WHATSAPP_WS_URL", "https://web.whatsapp.com/ws/chat"),
            ("WA_WHATSAPP_WS_URL", "127.0.0.1:9"),
            ("WA_WHATSAPP_VERSION", "2.3000"),
            ("WA_WHATSAPP_VERSION", "2.2412.54"),
            ("WA_WHATSAPP_VERSION", "latest"),
        ] {
            let (name, problem) = cfg(&[(k, v)]).expect_err(v);
            assert_eq!(name, k, "{v}: {problem}");
        }
    }
}
