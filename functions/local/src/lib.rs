//! `wa-server`, the embedded all-in-one server: every router, SQLite state and inbound
//! media in the data directory (or DynamoDB, SQS and S3 on the AWS data path), one process.
//! `main.rs` parses the command line; this crate boots.

pub mod config;
pub mod connections;
pub mod metrics;
mod secret;

use std::sync::Arc;

use anyhow::Context as _;
use axum::{Router, routing::get};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use wa_api::{AppState, Context};
use wa_core::auth::JwtConfig;
use wa_core::devices::Device;
use wa_worker::Worker;

pub use config::{Config, LogFormat};
pub use secret::load_or_create_jwt_secret;

/// The full router of the embedded server and its OpenAPI document: every API router,
/// `/openapi.json`, `/docs`, the dashboard (`wa_fn_site`) and `/metrics`.
pub fn router(ctx: AppState, max_body_bytes: usize) -> (Router, utoipa::openapi::OpenApi) {
    // The sandbox's control routes exist only in sandbox mode.
    let (api_router, api) = wa_fn_site::split(wa_fn_site::api_router(ctx.sandbox_routes));
    metrics::install();
    let app = api_router
        .route("/metrics", get(metrics::scrape))
        .with_state(ctx)
        .merge(wa_fn_site::router(&api));
    (
        wa_api::finish_router(app, max_body_bytes, Default::default()),
        api,
    )
}

/// The JWT configuration: `WA_JWT_SECRET`, or the secret kept in the data directory.
pub fn jwt_config(config: &Config) -> anyhow::Result<JwtConfig> {
    let secret = match &config.jwt_secret {
        Some(s) => s.clone(),
        None => load_or_create_jwt_secret(&config.data_dir)?,
    };
    JwtConfig::new(
        secret,
        config.jwt_issuer.clone(),
        config.jwt_audience.clone(),
    )
    .map_err(anyhow::Error::msg)
}

/// The connection limits of `config`, the cap fitted under the process's open-file limit.
pub fn connection_limits(config: &Config) -> connections::Limits {
    let open_files = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| connections::policy::open_file_limit(&text));
    let cap = connections::policy::cap(config.max_connections, open_files);
    if let Some(asked) = cap.lowered_from {
        tracing::warn!(
            asked,
            max_connections = cap.max,
            open_files,
            "WA_MAX_CONNECTIONS lowered to leave open files for the database and the sessions"
        );
    }
    connections::Limits {
        timeouts: connections::Timeouts {
            header: config.header_timeout,
            idle: config.idle_timeout,
        },
        max_connections: cap.max,
    }
}

/// Opens the state and serves until `shutdown` completes, then drains in-flight requests.
pub async fn serve(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    wa_core::private_fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    let jwt = jwt_config(&config)?;
    // With its worker in this process the server is the database's only user; with
    // `WA_WORKER=0` a separate `wa-worker` writes devices and messages too.
    // With its worker here, this process delivers the webhooks of what it commits itself
    // on the AWS data path.
    let wa_worker::Backends {
        store,
        queue,
        exclusive,
        committed,
    } = wa_worker::open_backends(
        &config.data_dir,
        &config.aws,
        config.run_worker,
        config.run_worker.then_some(config.worker.webhook_timeout),
    )
    .await?;
    let queue_for_events = queue.clone();
    let mut ctx = Context::new(store.clone(), queue.clone(), jwt, config.allow_private_urls);
    ctx.devices.link_wait = config.link_wait;
    ctx.messages.send_wait = config.send_wait;
    // On DynamoDB every read is a request: the worker is handed the message with its
    // command.
    ctx.messages.hand_on_created = config.aws.table.is_some();
    if !config.run_worker {
        // The outcome comes from a `wa-worker` process: nothing wakes the wait early.
        ctx.messages.first_look = wa_core::send_service::FIRST_LOOK_ELSEWHERE;
    }
    let media = wa_worker::media_backend(&config.data_dir, &config.aws).await;
    ctx.set_media(media.clone());
    ctx.limiter = wa_api::RequestLimiter::new(config.app_limit);
    ctx.sandbox_routes = config.worker.provider == wa_worker::ProviderKind::Sandbox;
    // Without the worker here, session requests go to the worker through the queue.
    ctx.sessions = Arc::new(wa_core::session::QueuedSessions::new(
        store.clone(),
        queue.clone(),
        config.query_wait,
    ));
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (inbound_tx, inbound_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_rx_sends = stop_rx.clone();
    let mut worker_task = None;
    let mut dispatcher_task = None;
    let mut delivering = None;
    let store_for_events = store.clone();
    if config.run_worker {
        let (provider, sandbox) =
            wa_worker::build_provider(&config.worker, &config.data_dir, events_tx, inbound_tx)?;
        ctx.sessions = Arc::new(wa_core::session::LocalSessions::new(
            provider.clone(),
            sandbox.clone(),
        ));
        let on_qr: Option<wa_worker::QrHook> = (config.log_format == LogFormat::Pretty)
            .then(|| Arc::new(draw_qr) as wa_worker::QrHook);
        let mut worker = Worker::new(
            store,
            queue,
            provider,
            ctx.notifier.clone(),
            config.data_dir.clone(),
        )
        .with_pacing(config.worker.send_rate, config.worker.send_burst)
        .with_leases(
            wa_core::lease::Owner::new(config.worker.worker_id.clone()),
            config.worker.lease_ttl,
            config.worker.reconnect_concurrency,
        )
        // The only worker of its store: its earlier run's leases are taken at once.
        .with_exclusive_store(exclusive)
        .with_sandbox(sandbox);
        worker.on_qr = on_qr;
        worker.allow_private_urls = config.allow_private_urls;
        worker.media = media;
        worker_task = Some(tokio::spawn(Arc::new(worker).run(
            events_rx,
            inbound_rx,
            stop_rx.clone(),
        )));
        let dispatcher = Arc::new(wa_worker::webhooks::Dispatcher::new(
            store_for_events.clone(),
            wa_worker::webhooks::DispatcherConfig {
                schedule: config.worker.webhook_schedule.clone(),
                timeout: config.worker.webhook_timeout,
                allow_private_urls: config.allow_private_urls,
                concurrency: 64,
            },
        )?);
        let (finish_tx, finish_rx) = watch::channel(false);
        if let Some(events) = committed {
            delivering = Some((
                finish_tx,
                tokio::spawn(wa_worker::webhooks::committed::run(
                    dispatcher.clone(),
                    queue_for_events.clone(),
                    events,
                    finish_rx,
                )),
            ));
        }
        dispatcher_task = Some(if config.aws.events_queue_url.is_some() {
            // AWS data path: nudges on the events queue drive the other deliveries.
            let sweep = tokio::spawn(wa_worker::webhooks::sweeper(
                store_for_events,
                queue_for_events.clone(),
                std::time::Duration::from_secs(60),
                stop_rx.clone(),
            ));
            let consume = wa_worker::webhooks::consume(dispatcher, queue_for_events, stop_rx);
            tokio::spawn(async move {
                consume.await;
                let _ = sweep.await;
            })
        } else {
            tokio::spawn(dispatcher.run(stop_rx))
        });
    }
    tracing::info!(
        provider = ?config.worker.provider,
        worker = config.run_worker,
        "state in {}",
        config.data_dir.display()
    );
    let state = ctx.into_state();
    let sends_task = config.aws.sends_queue_url.is_some().then(|| {
        tracing::info!("consuming event-driven sends from the sends queue");
        tokio::spawn(wa_fn_messages::sends::consume(
            state.clone(),
            state.queue.clone(),
            stop_rx_sends,
        ))
    });
    let (app, _) = router(state, config.max_body_bytes);
    metrics::spawn_upkeep();
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (WA_LISTEN)", config.listen))?;
    let addr = listener.local_addr()?;
    let limits = connection_limits(&config);
    tracing::info!(
        max_connections = limits.max_connections,
        header_timeout_ms = limits.timeouts.header.as_millis() as u64,
        idle_timeout_secs = limits.timeouts.idle.as_secs(),
        "connection limits"
    );
    tracing::info!(
        %addr,
        data_dir = %config.data_dir.display(),
        "wa-server listening on http://{addr} (docs at http://{addr}/docs)"
    );
    connections::serve(listener, app, limits, shutdown)
        .await
        .context("server failed")?;
    let _ = stop_tx.send(true);
    if let Some(task) = worker_task {
        let _ = task.await;
    }
    // The worker has stopped: what it committed last is delivered now.
    if let Some((finish, task)) = delivering {
        let _ = finish.send(true);
        let _ = task.await;
    }
    if let Some(task) = dispatcher_task {
        let _ = task.await;
    }
    if let Some(task) = sends_task {
        let _ = task.await;
    }
    tracing::info!("wa-server stopped");
    Ok(())
}

/// Draws a new QR in the terminal so a person can scan it from the console.
fn draw_qr(device: &Device) {
    let Some(qr) = &device.qr else { return };
    let Ok(code) = qrcode::QrCode::new(qr.code.as_bytes()) else {
        return;
    };
    let art = code
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build();
    eprintln!(
        "\nScan with WhatsApp (Linked devices → Link a device) to link device \"{}\" ({}), valid until {}:\n{art}\n",
        device.device_name,
        device.device_id,
        wa_core::time::format(qr.expires_at)
    );
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received, draining requests");
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    use wa_queue::LocalQueue;
    use wa_store::SqliteStore;

    fn app() -> Router {
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let queue = Arc::new(LocalQueue::in_memory(5).unwrap());
        let jwt = JwtConfig::new("0123456789abcdef0123456789abcdef", None, None).unwrap();
        router(
            Context::new(store, queue, jwt, false).into_state(),
            1024 * 1024,
        )
        .0
    }

    async fn get(uri: &str) -> (axum::http::StatusCode, String, Vec<u8>) {
        let res = app()
            .oneshot(axum::http::Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let ct = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let status = res.status();
        (
            status,
            ct,
            res.into_body().collect().await.unwrap().to_bytes().to_vec(),
        )
    }

    /// Every route is described, and every error answer points at the envelope schema.
    #[tokio::test]
    async fn openapi_describes_every_route() {
        let (s, ct, body) = get("/openapi.json").await;
        assert_eq!(s, 200);
        assert_eq!(ct, "application/json");
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let expected = [
            ("/health", vec!["get"]),
            ("/apps", vec!["get", "post"]),
            ("/apps/{app_id}", vec!["get", "patch", "delete"]),
            ("/apps/{app_id}/token", vec!["post"]),
            ("/apps/{app_id}/webhook-secret", vec!["post"]),
            ("/devices", vec!["get", "post"]),
            ("/devices/deploy", vec!["post"]),
            ("/devices/{device_id}", vec!["get", "delete"]),
            ("/devices/{device_id}/qr", vec!["get", "post"]),
            ("/devices/{device_id}/pair-code", vec!["post"]),
            ("/devices/{device_id}/disconnect", vec!["post"]),
            ("/devices/{device_id}/reconnect", vec!["post"]),
            ("/devices/{device_id}/presence", vec!["get", "put"]),
            ("/devices/{device_id}/chats/{jid}/presence", vec!["post"]),
            ("/devices/{device_id}/profile", vec!["get"]),
            ("/devices/{device_id}/groups", vec!["get", "post"]),
            ("/devices/{device_id}/groups/join", vec!["post"]),
            (
                "/devices/{device_id}/groups/{group_jid}",
                vec!["get", "patch"],
            ),
            (
                "/devices/{device_id}/groups/{group_jid}/participants",
                vec!["post"],
            ),
            (
                "/devices/{device_id}/groups/{group_jid}/invite",
                vec!["get"],
            ),
            (
                "/devices/{device_id}/groups/{group_jid}/invite/revoke",
                vec!["post"],
            ),
            (
                "/devices/{device_id}/groups/{group_jid}/leave",
                vec!["post"],
            ),
            ("/devices/{device_id}/contacts/check", vec!["post"]),
            ("/devices/{device_id}/messages", vec!["get", "post"]),
            (
                "/devices/{device_id}/messages/{message_id}",
                vec!["get", "delete", "patch"],
            ),
            (
                "/devices/{device_id}/messages/{message_id}/revoke",
                vec!["post"],
            ),
            (
                "/devices/{device_id}/messages/{message_id}/read",
                vec!["post"],
            ),
            ("/media", vec!["get"]),
            ("/webhooks/deliveries", vec!["get"]),
            ("/webhooks/deliveries/{delivery_id}/retry", vec!["post"]),
        ];
        let paths = doc["paths"].as_object().unwrap();
        assert_eq!(paths.len(), expected.len(), "{:?}", paths.keys());
        for (path, methods) in expected {
            let item = &paths[path];
            for m in methods {
                let op = &item[m];
                assert!(op.is_object(), "{m} {path} is described");
                if path != "/health" {
                    let responses = op["responses"].as_object().unwrap();
                    let errors: Vec<_> = responses
                        .iter()
                        .filter(|(code, _)| code.starts_with('4') || code.starts_with('5'))
                        .collect();
                    assert!(!errors.is_empty(), "{m} {path} lists its errors");
                    for (code, r) in errors {
                        assert_eq!(
                            r["content"]["application/json"]["schema"]["$ref"],
                            "#/components/schemas/ErrorResponse",
                            "{m} {path} {code}"
                        );
                    }
                    assert!(op["security"].is_array(), "{m} {path} names its credential");
                }
            }
        }
        let mut ids: Vec<_> = paths
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .filter_map(|op| op["operationId"].as_str())
            .collect();
        let described = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), described, "operation ids are unique: {ids:?}");
        assert!(ids.contains(&"check_contacts"), "{ids:?}");
        let schemas = &doc["components"]["schemas"];
        for name in [
            "ErrorResponse",
            "ErrorDetail",
            "CreateApp",
            "PatchApp",
            "AppView",
        ] {
            assert!(schemas[name].is_object(), "schema {name}");
        }
        // The conversation fields of sends and messages.
        let send = &schemas["SendRequest"]["properties"];
        for field in [
            "reply_to",
            "mentions",
            "message_id",
            "emoji",
            "question",
            "options",
            "selectable_count",
        ] {
            assert!(send[field].is_object(), "SendRequest.{field}");
        }
        let types = schemas["MessageType"]["enum"].as_array().unwrap();
        for t in ["reaction", "poll"] {
            assert!(types.contains(&serde_json::json!(t)), "MessageType {t}");
        }
        let view = &schemas["MessageView"]["properties"];
        assert!(view["reply_to"].is_object() && view["mentions"].is_object());
        assert!(schemas["ReplyTo"].is_object() && schemas["ReplyToView"].is_object());
        assert!(doc["components"]["securitySchemes"]["tenant_jwt"].is_object());
        assert!(doc["components"]["securitySchemes"]["app_token"].is_object());
    }

    #[tokio::test]
    async fn docs_page_is_served_offline() {
        let (s, ct, body) = get("/docs/").await;
        assert_eq!(s, 200);
        assert!(ct.starts_with("text/html"));
        let html = String::from_utf8(body).unwrap();
        assert!(html.contains("/openapi.json"));
        assert!(!html.contains("cdn"), "no CDN: assets are embedded");
        let (s, _, js) = get("/docs/swagger-ui-bundle.js").await;
        assert_eq!(s, 200);
        assert!(js.len() > 100_000);
    }
}
