//! The AWS data path on one machine: `wa-server` with `WA_TABLE_NAME` and the queue URLs
//! runs on DynamoDB and SQS (a moto server started by the test): an App, a device scanned
//! through the sandbox, a send over HTTP and one through the sends queue, the signed
//! webhooks of both, and a hopeless producer message in the dead-letter queue with its
//! reason. No SQLite file is made.

use std::time::Duration;

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use serde_json::{Value, json};

use crate::devices::{call, create_app, wait_for};
use crate::support::{BIN, Server};
use crate::webhooks::{Receiver, SECRET};

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

fn sqs(endpoint: &str) -> aws_sdk_sqs::Client {
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
    let prefix = format!("e2e-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let table = format!("{prefix}-state");
    let url = |name: &str| format!("{endpoint}/123456789012/{prefix}-{name}");
    let (commands, events, sends) = (url("commands.fifo"), url("events.fifo"), url("sends"));
    let aws_env: Vec<(&str, &str)> = vec![
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", wa_testkit::moto::REGION),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("WA_TABLE_NAME", &table),
        ("WA_COMMANDS_QUEUE_URL", &commands),
        ("WA_EVENTS_QUEUE_URL", &events),
        ("WA_SENDS_QUEUE_URL", &sends),
    ];

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
    let (ok, jwt, err) = server.cli(&["token", "--tenant", "aws"], &[SECRET]);
    assert!(ok, "{err}");
    let body = json!({"name": "on-aws", "webhook_url": format!("http://127.0.0.1:{}/hook", receiver.port)});
    let app = create_app(&server, jwt.trim(), body).await;
    receiver.set("secret", app["webhook_secret"].as_str().unwrap());
    let app_id = app["app"]["app_id"].as_str().unwrap().to_owned();
    let token = app["app_token"].as_str().unwrap().to_owned();

    let (s, v) = call(
        &server,
        "POST",
        "/devices",
        &token,
        Some(json!({"device_name": "d1"})),
    )
    .await;
    assert!(s == 201 || s == 202, "{v}");
    let device = v["data"]["device"]["device_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, v) = call(
        &server,
        "POST",
        &format!("/sandbox/devices/{device}/scan"),
        &token,
        Some(json!({"wa_number": "15551230001"})),
    )
    .await;
    assert!(s < 300, "{v}");
    wait_for(&server, &token, &device, Duration::from_secs(20), |d| {
        d["status"] == "connected"
    })
    .await;

    // Over HTTP: the worker sends through the SQS commands queue, the handler sees it.
    let (s, v) = call(
        &server,
        "POST",
        &format!("/devices/{device}/messages"),
        &token,
        Some(json!({"to": "15550001111", "text": "over http"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["message"]["status"], "sent");
    let http_id = v["data"]["message"]["message_id"]
        .as_str()
        .unwrap()
        .to_owned();

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
            let sent: Vec<&Value> = got
                .iter()
                .filter(|r| r["answered"] == 204 && r["body"]["event"] == "message")
                .filter(|r| r["body"]["payload"]["status"] == "sent")
                .collect();
            sent.iter()
                .any(|r| r["body"]["payload"]["message_id"] == http_id.as_str())
                && sent
                    .iter()
                    .any(|r| r["body"]["payload"]["text"] == "over sqs")
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
    let (s, v) = call(
        &server,
        "GET",
        &format!("/devices/{device}/messages"),
        &token,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
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
    let reason = dead
        .message_attributes()
        .and_then(|a| a.get("wa-reason"))
        .and_then(|r| r.string_value())
        .unwrap_or_default();
    assert!(reason.contains("validation_error"), "reason: {reason}");

    // The state is in DynamoDB, not in a local database.
    assert!(!server.data_dir.join("wa.db").exists());
}
