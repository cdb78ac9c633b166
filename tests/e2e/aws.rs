//! The AWS data path on one machine: `wa-server` with `WA_TABLE_NAME` and the queue URLs
//! runs on DynamoDB and SQS (a moto server started by the test): an App, a device scanned
//! through the sandbox, a send over HTTP and one through the sends queue, the signed
//! webhooks of both, and a hopeless producer message in the dead-letter queue with its
//! reason. No SQLite file is made.

use std::time::Duration;

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use serde_json::json;

use crate::devices::{get_ok, post_device, scan, send_text, wait_for};
use crate::support::{BIN, Server, str_at};
use crate::webhooks::{Receiver, SECRET, both_sent};

/// The environment of a `wa-server` on the moto server at `endpoint` with the table `table`
/// (callers add the queues and the bucket they use).
pub fn moto_env<'a>(endpoint: &'a str, table: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", wa_testkit::moto::REGION),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("WA_TABLE_NAME", table),
    ]
}

/// A prefix for one test's own resources on the moto server: `kind`, `-` and a random id.
pub fn moto_prefix(kind: &str) -> String {
    format!(
        "{kind}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// The URL on the moto server of the queue `{prefix}-{name}`.
pub fn queue_url(prefix: &str, name: &str) -> String {
    let endpoint = wa_testkit::moto::endpoint();
    format!("{endpoint}/123456789012/{prefix}-{name}")
}

/// Runs `wa-server aws-init` with only `env`; answers what it printed (it must succeed).
pub fn aws_init(env: &[(&str, &str)]) -> String {
    let out = std::process::Command::new(BIN)
        .arg("aws-init")
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "aws-init: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The reason a dead letter carries (its `wa-reason` attribute), empty when it has none.
pub fn dead_letter_reason(m: &aws_sdk_sqs::types::Message) -> &str {
    m.message_attributes()
        .and_then(|a| a.get("wa-reason"))
        .and_then(|r| r.string_value())
        .unwrap_or_default()
}

pub fn sqs(endpoint: &str) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(wa_testkit::moto::REGION))
        .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_on_dynamodb_and_sqs() {
    let endpoint = wa_testkit::moto::endpoint();
    let prefix = moto_prefix("e2e");
    let table = format!("{prefix}-state");
    let url = |name: &str| queue_url(&prefix, name);
    let (commands, events, sends) = (url("commands.fifo"), url("events.fifo"), url("sends"));
    let mut aws_env = moto_env(endpoint, &table);
    aws_env.extend([
        ("WA_COMMANDS_QUEUE_URL", commands.as_str()),
        ("WA_EVENTS_QUEUE_URL", events.as_str()),
        ("WA_SENDS_QUEUE_URL", sends.as_str()),
    ]);

    // `wa-server aws-init` makes the table and the queues.
    let stdout = aws_init(&aws_env);
    assert!(stdout.contains(&format!("table {table}")), "{stdout}");
    assert!(stdout.contains(&sends), "{stdout}");

    let rdir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(rdir.path(), 0);
    let mut env = aws_env.clone();
    env.extend([
        SECRET,
        ("WA_PROVIDER", "sandbox"),
        ("WA_SEND_RATE", "0"),
        ("WA_ALLOW_PRIVATE_URLS", "1"),
        ("WA_WEBHOOK_RETRY_SCHEDULE", "300ms,1s"),
    ]);
    let server = Server::start(&env);
    let app = receiver.app(&server, "aws", "on-aws").await;
    let app_id = app["app"]["app_id"].as_str().unwrap().to_owned();
    let token = app["app_token"].as_str().unwrap().to_owned();

    let (s, v) = post_device(&server, &token, "d1").await;
    assert!(s == 201 || s == 202, "{v}");
    let device = str_at(&v, "/data/device/device_id");
    let (s, v) = scan(&server, &token, &device, "15551230001").await;
    assert!(s < 300, "{v}");
    wait_for(&server, &token, &device, Duration::from_secs(20), |d| {
        d["status"] == "connected"
    })
    .await;

    // Over HTTP: the worker sends through the SQS commands queue, the handler sees it.
    let (s, v) = send_text(&server, &token, &device, "15550001111", "over http").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["message"]["status"], "sent");
    let http_id = str_at(&v, "/data/message/message_id");

    // Through the sends queue, twice with one key (a producer's retry), plus a hopeless one.
    let client = sqs(endpoint);
    let job = json!({
        "app_id": app_id,
        "device_id": device,
        "idempotency_key": "order-42",
        "message": {"to": "15550002222", "type": "text", "text": "over sqs"},
    })
    .to_string();
    for body in [job.as_str(), job.as_str(), "{\"app_id\": 1}"] {
        client
            .send_message()
            .queue_url(&sends)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    let got = receiver
        .wait("both sends' webhooks", Duration::from_secs(60), |got| {
            both_sent(got, |r| r["answered"] == 204, &http_id, "over sqs")
        })
        .await;
    assert!(
        got.iter().all(|r| r["verified"] == true),
        "every webhook verifies: {got:?}"
    );
    assert!(
        got.iter().any(|r| r["body"]["event"] == "device_connected"),
        "{got:?}"
    );
    // One key, one message.
    let v = get_ok(&server, &token, &format!("/devices/{device}/messages")).await;
    let texts: Vec<&str> = v["data"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        texts.iter().filter(|t| **t == "over sqs").count(),
        1,
        "{texts:?}"
    );
    assert!(texts.contains(&"over http"), "{texts:?}");

    // The hopeless message is in the dead-letter queue with its reason.
    let dlq = url("sends-dlq");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let r = client
            .receive_message()
            .queue_url(&dlq)
            .message_attribute_names("All")
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        if let Some(m) = r.messages.unwrap_or_default().into_iter().next() {
            break m;
        }
        assert!(std::time::Instant::now() < deadline, "nothing in {dlq}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(dead.body(), Some("{\"app_id\": 1}"));
    let reason = dead_letter_reason(&dead);
    assert!(reason.contains("validation_error"), "reason: {reason}");

    // The state is in DynamoDB, not in a local database.
    assert!(!server.data_dir.join("wa.db").exists());
}
