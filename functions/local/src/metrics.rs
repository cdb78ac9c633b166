//! `GET /metrics`: every metric of the process in the Prometheus text format.
//!
//! The recorder is installed once per process (the first `router()` call); building more
//! routers in one process (tests) reuses it. The gauges (queue depth, devices by status) are
//! refreshed from the queue and the store on every scrape. No authentication, like /health:
//! serve it to the monitoring network only. The names are in `wa_core::metrics`.

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use wa_api::AppState;
use wa_core::metrics as m;

/// How long a scrape may spend refreshing the gauges before it answers with their last values.
const REFRESH_BUDGET: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's Prometheus recorder (idempotent) and returns its handle. If another
/// recorder was installed first, nothing is recorded here and `/metrics` stays empty
/// (logged).
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(m::HTTP_REQUEST_DURATION_SECONDS.into()),
                    m::HTTP_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(m::SEND_LATENCY_SECONDS.into()),
                        m::SEND_BUCKETS,
                    )
                })
                .expect("the bucket lists are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /metrics will be empty");
            }
            // A recorder is in place for good: the HTTP metrics may keep their handles.
            wa_api::metrics::cache_handles();
            describe();
            handle
        })
        .clone()
}

/// How often recorded histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Folds the histogram samples recorded since the last scrape into their buckets every few
/// seconds until the process ends: the recorder keeps every sample until then, so without
/// scrapes its memory would grow with every request.
pub fn spawn_upkeep() {
    let handle = install();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP_EVERY).await;
            handle.run_upkeep();
        }
    });
}

/// The HELP lines.
fn describe() {
    metrics::describe_counter!(
        m::HTTP_REQUESTS_TOTAL,
        "HTTP requests answered, by route template, method and status"
    );
    metrics::describe_histogram!(
        m::HTTP_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Time to answer an HTTP request, by route template and method"
    );
    metrics::describe_counter!(
        m::SENDS_TOTAL,
        "Outbound sends by outcome: sent, failed (with code), canceled, rate_limited (retried)"
    );
    metrics::describe_histogram!(
        m::SEND_LATENCY_SECONDS,
        Unit::Seconds,
        "Time from a send's acceptance to WhatsApp's acceptance, measured by the worker"
    );
    metrics::describe_gauge!(
        m::QUEUE_DEPTH,
        "Messages in a queue: visible (waiting) or in_flight (received, not yet deleted)"
    );
    metrics::describe_gauge!(
        m::QUEUE_OLDEST_AGE_SECONDS,
        Unit::Seconds,
        "Age of the oldest message of a queue (0 when empty)"
    );
    metrics::describe_counter!(
        m::WEBHOOK_ATTEMPTS_TOTAL,
        "Webhook delivery attempts by outcome: delivered, retry, failed, skipped"
    );
    metrics::describe_gauge!(m::DEVICES, "Devices of every App by status");
    // The outcomes exist from the start (at 0), so rates and alerts need no "absent" case.
    for outcome in [
        m::SendOutcome::Sent,
        m::SendOutcome::Canceled,
        m::SendOutcome::RateLimited,
    ] {
        metrics::counter!(m::SENDS_TOTAL, "outcome" => outcome.as_str()).increment(0);
    }
    for outcome in ["delivered", "retry", "failed", "skipped"] {
        metrics::counter!(m::WEBHOOK_ATTEMPTS_TOTAL, "outcome" => outcome).increment(0);
    }
}

/// `GET /metrics`.
pub async fn scrape(State(ctx): State<AppState>) -> Response {
    let handle = install();
    m::refresh_gauges(&*ctx.store, &*ctx.queue, REFRESH_BUDGET).await;
    handle.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    use wa_api::Context;
    use wa_core::auth::JwtConfig;
    use wa_core::queue::{Command, enqueue};
    use wa_queue::LocalQueue;
    use wa_store::SqliteStore;

    async fn call(app: &axum::Router, uri: &str) -> (StatusCode, String, String) {
        let res = app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let ct = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, ct, String::from_utf8(body.to_vec()).unwrap())
    }

    /// The value of the first sample of `name` whose labels include every one of `labels`.
    fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
            .find(|l| labels.iter().all(|want| l.contains(want)))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[tokio::test]
    async fn metrics_show_route_templates_and_queue_depth() {
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let queue = Arc::new(LocalQueue::in_memory(5).unwrap());
        let jwt = JwtConfig::new("0123456789abcdef0123456789abcdef", None, None).unwrap();
        let ctx = Context::new(store, queue.clone(), jwt, false).into_state();
        let (app, _) = crate::router(ctx.clone(), 1024 * 1024);
        // A second router in the same process shares the recorder.
        let (again, _) = crate::router(ctx, 1024 * 1024);

        let device = "0190a0b0-0000-7000-8000-000000000001";
        let (s, _, _) = call(&app, &format!("/devices/{device}")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, _, _) = call(&again, "/no/such/route/0190a0b0").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        enqueue(
            &*queue,
            Command::Disconnect {
                device_id: device.parse().unwrap(),
            },
        )
        .await
        .unwrap();

        let (s, ct, text) = call(&app, "/metrics").await;
        assert_eq!(s, StatusCode::OK);
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        let requests = "wa_http_requests_total";
        let n = sample(
            &text,
            requests,
            &[
                r#"route="/devices/{device_id}""#,
                r#"method="GET""#,
                r#"status="401""#,
            ],
        );
        assert!(n.is_some_and(|n| n >= 1.0), "{text}");
        let n = sample(
            &text,
            requests,
            &[r#"route="unmatched""#, r#"status="404""#],
        );
        assert!(n.is_some_and(|n| n >= 1.0), "{text}");
        assert!(!text.contains(device), "raw paths never become labels");
        assert!(
            !text.contains("/no/such/route"),
            "raw paths never become labels"
        );
        assert!(
            sample(
                &text,
                "wa_http_request_duration_seconds_bucket",
                &[r#"route="/devices/{device_id}""#, r#"le="0.005""#],
            )
            .is_some(),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                "wa_queue_depth",
                &[r#"queue="commands""#, r#"state="visible""#]
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                "wa_queue_depth",
                &[r#"queue="commands""#, r#"state="in_flight""#]
            ),
            Some(0.0)
        );
        assert!(
            sample(
                &text,
                "wa_queue_oldest_age_seconds",
                &[r#"queue="commands""#]
            )
            .is_some()
        );
        assert_eq!(
            sample(&text, "wa_devices", &[r#"status="connected""#]),
            Some(0.0)
        );
        assert!(text.contains("# HELP wa_http_requests_total"));

        // The scrape itself is counted under its own route.
        let (_, _, text) = call(&again, "/metrics").await;
        assert!(sample(&text, requests, &[r#"route="/metrics""#]).is_some_and(|n| n >= 1.0));
    }
}
