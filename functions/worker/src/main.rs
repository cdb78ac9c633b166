//! `wa-worker`: the worker as its own process, on the same data directory as a
//! `wa-server` started with `WA_WORKER=0`, or, in AWS (the ECS service of template.yaml),
//! on the table and queues of `WA_TABLE_NAME` and the `WA_*_QUEUE_URL` variables, with the
//! session keys under `WA_DATA_DIR` on the EFS volume and inbound media in the S3 bucket of
//! `WA_MEDIA_BUCKET`. `wa-worker health` is the
//! container's health check (see `wa_worker::health`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use wa_core::notify::Notifier;
use wa_worker::{Worker, WorkerConfig};

fn main() -> std::process::ExitCode {
    if std::env::args().nth(1).as_deref() == Some("health") {
        return wa_worker::health::check_command();
    }
    let config = match WorkerConfig::from_lookup(&|k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err((var, problem)) => {
            eprintln!("wa-worker: invalid configuration: {var}: {problem}");
            return std::process::ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .json()
        .with_current_span(true)
        .flatten_event(true)
        .init();
    wa_worker::capacity::raise_open_files_limit();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wa-worker: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "wa-worker failed");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(config: WorkerConfig) -> anyhow::Result<()> {
    wa_core::private_fs::create_dir_all(&config.data_dir)?;
    let aws = wa_aws::AwsEnv::from_env();
    // The server of the same data directory writes too: no read caches.
    let wa_worker::Backends {
        store,
        queue,
        committed,
        ..
    } = wa_worker::open_backends(&config.data_dir, &aws, false, Some(config.webhook_timeout))
        .await?;
    let (tx, rx) = mpsc::unbounded_channel();
    let (in_tx, in_rx) = mpsc::unbounded_channel();
    let (provider, sandbox) = wa_worker::build_provider(&config, &config.data_dir, tx, in_tx)?;
    let dispatcher = Arc::new(wa_worker::webhooks::Dispatcher::new(
        store.clone(),
        wa_worker::webhooks::DispatcherConfig {
            schedule: config.webhook_schedule.clone(),
            timeout: config.webhook_timeout,
            allow_private_urls: config.allow_private_urls,
            concurrency: 64,
        },
    )?);
    let mut worker = Worker::new(
        store.clone(),
        queue.clone(),
        provider,
        Notifier::new(),
        config.data_dir.clone(),
    )
    .with_pacing(config.send_rate, config.send_burst)
    .with_leases(
        wa_core::lease::Owner::new(config.worker_id.clone()),
        config.lease_ttl,
        config.reconnect_concurrency,
    )
    .with_sandbox(sandbox);
    worker.allow_private_urls = config.allow_private_urls;
    worker.media = wa_worker::media_backend(&config.data_dir, &aws).await;
    let worker = Arc::new(worker);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        let _ = stop_tx.send(true);
    });
    if let Some(path) = wa_worker::health::file_from_lookup(&|k| std::env::var(k).ok()) {
        tokio::spawn(wa_worker::health::write_heartbeats(path, stop_rx.clone()));
    }
    let metrics = if wa_emf::install_from_env().map_err(anyhow::Error::msg)? {
        let (store, queue) = (store.clone(), queue.clone());
        Some(tokio::spawn(wa_emf::flush_periodically(
            wa_emf::INTERVAL,
            stop_rx.clone(),
            move || {
                let (store, queue) = (store.clone(), queue.clone());
                async move {
                    wa_core::metrics::refresh_gauges(&*store, &*queue, Duration::from_secs(20))
                        .await
                }
            },
        )))
    } else {
        None
    };
    tracing::info!(provider = ?config.provider, "wa-worker started");
    // On the AWS data path this process delivers the webhooks of what it commits, and the
    // webhooks Lambda (nudged through the events queue) the rest and every retry; this
    // process also re-nudges devices whose deliveries are overdue.
    let (finish_tx, finish_rx) = watch::channel(false);
    let delivering = committed.map(|events| {
        tokio::spawn(wa_worker::webhooks::committed::run(
            dispatcher.clone(),
            queue.clone(),
            events,
            finish_rx,
        ))
    });
    let dispatching = if aws.events_queue_url.is_some() {
        tokio::spawn(wa_worker::webhooks::sweeper(
            store,
            queue,
            std::time::Duration::from_secs(60),
            stop_rx.clone(),
        ))
    } else {
        tokio::spawn(dispatcher.run(stop_rx.clone()))
    };
    worker.run(rx, in_rx, stop_rx).await;
    // The worker has handed its devices over: what it committed last is delivered now.
    let _ = finish_tx.send(true);
    if let Some(task) = delivering {
        let _ = task.await;
    }
    let _ = dispatching.await;
    if let Some(m) = metrics {
        let _ = m.await;
    }
    Ok(())
}
