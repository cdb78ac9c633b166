//! Observability through the real binary: one send followed by its request id from the API's
//! log lines to the worker's, and the Prometheus metrics it leaves behind.

use std::time::Duration;

use serde_json::{Value, json};

use crate::devices::{app_token, linked_device};
use crate::support::{Server, poll_until, send, str_at};

const ENV: [(&str, &str); 3] = [
    ("WA_JWT_SECRET", "e2e-secret-e2e-secret-e2e-secret-e2e"),
    ("WA_PROVIDER", "sandbox"),
    ("WA_SEND_RATE", "0"),
];

/// The JSON log lines whose span is `span` and whose span carries `request_id`.
fn lines_of(server: &Server, span: &str, request_id: &str) -> Vec<Value> {
    server
        .logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["span"]["name"] == span && l["span"]["request_id"] == request_id)
        .collect()
}

/// The value of the first sample of `name` whose line contains every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_send_is_followed_by_its_request_id_from_api_to_worker() {
    let server = Server::start(&ENV);
    let token = app_token(&server).await;
    let device_id = linked_device(&server, &token, "traced").await;
    let request_id = format!("trace-send-{}", uuid::Uuid::new_v4());
    let (s, id, v) = send(
        server
            .http
            .post(server.url(&format!("/devices/{device_id}/messages")))
            .bearer_auth(&token)
            .header("x-request-id", &request_id)
            .json(&json!({"to": "+15550001111", "text": "follow me"})),
    )
    .await;
    assert_eq!((s, id.as_str()), (200, request_id.as_str()), "{v}");
    let message_id = str_at(&v, "/data/message/message_id");

    // The API side: the access line of the request names the App, the device and the message.
    let lines = || {
        let api = lines_of(&server, "request", &request_id);
        let worker = lines_of(&server, "command", &request_id);
        let finished = api.iter().any(|l| l["message"] == "request finished");
        let sent = worker.iter().any(|l| l["message"] == "sent");
        (finished && sent).then_some((api, worker))
    };
    let (api, worker) = poll_until(
        "log lines missing (a request finished and a command sent)",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || std::future::ready(lines()),
        || format!("logs:\n{}", server.logs()),
    )
    .await;
    let access = api
        .iter()
        .find(|l| l["message"] == "request finished")
        .unwrap();
    assert_eq!(access["span"]["device_id"], device_id.as_str(), "{access}");
    assert_eq!(
        access["span"]["message_id"],
        message_id.as_str(),
        "{access}"
    );
    assert!(
        uuid::Uuid::parse_str(access["span"]["app_id"].as_str().unwrap_or_default()).is_ok(),
        "{access}"
    );
    assert_eq!(access["route"], "/devices/{device_id}/messages", "{access}");
    assert!(
        api.iter()
            .any(|l| l["message"] == "send accepted" && l["message_id"] == message_id.as_str()),
        "{api:?}"
    );

    // The worker side: the command's span carries the same request id, device and message.
    let sent = worker.iter().find(|l| l["message"] == "sent").unwrap();
    assert_eq!(sent["span"]["device_id"], device_id.as_str(), "{sent}");
    assert_eq!(sent["span"]["message_id"], message_id.as_str(), "{sent}");
    assert_eq!(sent["message_id"], message_id.as_str(), "{sent}");
    for l in &worker {
        assert_eq!(l["span"]["message_id"], message_id.as_str(), "{l}");
    }

    // The metrics the send left behind.
    let res = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let text = res.text().await.unwrap();
    let counted = |name, labels: &[&str]| sample(&text, name, labels).unwrap_or(0.0);
    assert!(
        counted("wa_sends_total", &[r#"outcome="sent""#]) >= 1.0,
        "{text}"
    );
    assert!(
        counted("wa_send_latency_seconds_count", &[]) >= 1.0,
        "{text}"
    );
    assert!(
        counted(
            "wa_http_requests_total",
            &[
                r#"route="/devices/{device_id}/messages""#,
                r#"method="POST""#,
                r#"status="200""#
            ]
        ) >= 1.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, "wa_devices", &[r#"status="connected""#]),
        Some(1.0),
        "{text}"
    );
    assert!(sample(&text, "wa_queue_depth", &[r#"queue="commands""#]).is_some());
    assert!(!text.contains(&device_id), "ids never become labels");
}
