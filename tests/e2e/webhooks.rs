//! Webhooks through the real binary: every event type arrives signed and verifies with the
//! Standard Webhooks reference library; a receiver that answers 503 or is down, and a server
//! restart in between, lose nothing; a failed delivery is replayed.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::{Value, json};

use crate::devices::{call, create_app, poll, post_device, scan, send_text, tenant_jwt, wait_for};
use crate::support::{Server, str_at};

/// The Python that has the `standardwebhooks` package (`scripts/test` makes `.venv`).
pub fn python() -> String {
    std::env::var("WA_TEST_PYTHON").unwrap_or_else(|_| {
        let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python");
        if Path::new(venv).exists() {
            venv.to_owned()
        } else {
            "python3".to_owned()
        }
    })
}

pub struct Receiver {
    dir: PathBuf,
    child: Option<Child>,
    pub port: u16,
}

impl Receiver {
    pub fn start(dir: &Path, port: u16) -> Receiver {
        let _ = std::fs::remove_file(dir.join("port"));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/e2e/receiver.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(dir)
            .arg(port.to_string())
            .spawn()
            .expect("python runs the receiver");
        for _ in 0..200 {
            if let Ok(p) = std::fs::read_to_string(dir.join("port")) {
                return Receiver {
                    dir: dir.to_path_buf(),
                    child: Some(child),
                    port: p.trim().parse().unwrap(),
                };
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "the webhook receiver did not start (is `standardwebhooks` installed? run scripts/test)"
        );
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Creates the App `name` of the tenant `tenant` with its webhooks sent here, and gives
    /// this receiver the App's secret; returns the answer's `data`.
    pub async fn app(&self, server: &Server, tenant: &str, name: &str) -> Value {
        let jwt = tenant_jwt(server, tenant);
        let hook = format!("http://127.0.0.1:{}/hook", self.port);
        let app = create_app(server, &jwt, json!({"name": name, "webhook_url": hook})).await;
        self.set("secret", app["webhook_secret"].as_str().unwrap());
        app
    }

    pub fn set(&self, name: &str, value: &str) {
        std::fs::write(self.dir.join(name), value).unwrap();
    }

    pub fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("received.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits until `pred` holds for what was received.
    pub async fn wait(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let got = self.received();
            if pred(&got) {
                return got;
            }
            if std::time::Instant::now() > deadline {
                let events: Vec<_> = got.iter().map(|r| r["body"]["event"].clone()).collect();
                panic!("{what}: not received in time; got {events:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

fn delivered_ok(got: &[Value]) -> HashSet<String> {
    got.iter()
        .filter(|r| r["answered"] == 204)
        .map(|r| r["webhook_id"].as_str().unwrap().to_owned())
        .collect()
}

fn events_of(got: &[Value]) -> HashSet<String> {
    got.iter()
        .filter(|r| r["answered"] == 204)
        .map(|r| r["body"]["event"].as_str().unwrap().to_owned())
        .collect()
}

pub const SECRET: (&str, &str) = ("WA_JWT_SECRET", "e2e-secret-e2e-secret-e2e-secret-e2e");

/// A sandbox server that sends at once and may deliver webhooks to a loopback receiver.
pub const HOOKED_SANDBOX: [(&str, &str); 4] = [
    SECRET,
    ("WA_PROVIDER", "sandbox"),
    ("WA_SEND_RATE", "0"),
    ("WA_ALLOW_PRIVATE_URLS", "1"),
];

fn env() -> Vec<(&'static str, &'static str)> {
    let mut env = HOOKED_SANDBOX.to_vec();
    env.extend([
        ("WA_WEBHOOK_RETRY_SCHEDULE", "300ms,300ms,600ms,1s,1s,2s"),
        ("WA_WEBHOOK_TIMEOUT_SECS", "2"),
    ]);
    env
}

/// Whether the received webhooks `got` that `keep` keeps report two messages `sent`: the
/// message `message_id` and one of the text `text`.
pub fn both_sent(
    got: &[Value],
    keep: impl Fn(&Value) -> bool,
    message_id: &str,
    text: &str,
) -> bool {
    let sent: Vec<&Value> = got
        .iter()
        .filter(|r| keep(r) && r["body"]["event"] == "message")
        .filter(|r| r["body"]["payload"]["status"] == "sent")
        .collect();
    sent.iter()
        .any(|r| r["body"]["payload"]["message_id"] == message_id)
        && sent.iter().any(|r| r["body"]["payload"]["text"] == text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_signed_nothing_lost_failed_ones_replayed() {
    let rdir = tempfile::tempdir().unwrap();
    let mut receiver = Receiver::start(rdir.path(), 0);
    let mut server = Server::start(&env());
    let app = receiver.app(&server, "hooks", "hooks").await;
    let t = app["app_token"].as_str().unwrap().to_owned();

    // Every event type.
    let (_, v) = post_device(&server, &t, "hooked").await;
    let id = str_at(&v, "/data/device/device_id");
    let sb = |p: &str| format!("/sandbox/devices/{id}/{p}");
    scan(&server, &t, &id, "15551230001").await;
    let (s, v) = send_text(&server, &t, &id, "15550001111", "out").await;
    assert_eq!(s, 200, "{v}");
    let out = str_at(&v, "/data/message/message_id");
    call(
        &server,
        "POST",
        &sb("receipt"),
        &t,
        Some(json!({"message_id": out, "status": "delivered"})),
    )
    .await;
    call(
        &server,
        "POST",
        &sb("receipt"),
        &t,
        Some(json!({"message_id": out, "status": "read"})),
    )
    .await;
    let (s, _) = send_text(&server, &t, &id, "15550000502", "fails").await;
    assert_eq!(s, 502);
    let (_, v) = call(
        &server,
        "POST",
        &sb("inbound"),
        &t,
        Some(json!({"from": "915550003333@lid", "text": "hi"})),
    )
    .await;
    let inbound = str_at(&v, "/data/message/message_id");
    let jpeg = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        [0xFFu8, 0xD8, 0xFF, 0xE0, 0, 0x10],
    );
    let (s, v) = call(&server, "POST", &sb("inbound"), &t, Some(json!({"from": "15550004444", "type": "image", "mime_type": "image/jpeg", "data_base64": jpeg}))).await;
    assert_eq!(s, 200, "{v}");
    call(
        &server,
        "POST",
        &sb("revoke"),
        &t,
        Some(json!({"message_id": inbound})),
    )
    .await;
    call(
        &server,
        "POST",
        &sb("presence"),
        &t,
        Some(json!({"jid": "15550001111", "presence": "available", "chat_state": "composing"})),
    )
    .await;
    call(
        &server,
        "POST",
        &format!("/devices/{id}/disconnect"),
        &t,
        None,
    )
    .await;
    call(
        &server,
        "POST",
        &format!("/devices/{id}/reconnect"),
        &t,
        None,
    )
    .await;
    wait_for(&server, &t, &id, Duration::from_secs(10), |d| {
        d["status"] == "connected"
    })
    .await;
    call(
        &server,
        "POST",
        &sb("drop"),
        &t,
        Some(json!({"reason": "logged_out"})),
    )
    .await;
    call(&server, "DELETE", &format!("/devices/{id}"), &t, None).await;
    let all = [
        "device_qr_generated",
        "device_connected",
        "device_disconnected",
        "device_logged_out",
        "device_destroyed",
        "message",
        "message_failed",
        "receipt",
        "message_revoked",
        "presence",
        "chat_presence",
    ];
    let got = receiver
        .wait("every event type", Duration::from_secs(30), |g| {
            all.iter().all(|e| events_of(g).contains(*e))
        })
        .await;
    for r in &got {
        assert_eq!(r["verified"], true, "signature verifies: {r}");
        assert_eq!(r["webhook_id"], r["x_wa_request_id"]);
        assert_eq!(r["webhook_id"], r["body"]["request_id"]);
        for k in ["event", "app_id", "device_id", "timestamp", "payload"] {
            assert!(!r["body"][k].is_null(), "envelope has {k}: {r}");
        }
    }
    let by_event = |e: &str| {
        got.iter()
            .filter(|r| r["body"]["event"] == e)
            .map(|r| r["body"]["payload"].clone())
            .collect::<Vec<_>>()
    };
    let inbound_msgs: Vec<_> = by_event("message")
        .into_iter()
        .filter(|p| p["direction"] == "inbound")
        .collect();
    assert!(
        inbound_msgs
            .iter()
            .any(|p| p["from"] == "915550003333@lid" && p["from_phone"] == "15550003333")
    );
    let media = inbound_msgs
        .iter()
        .find(|p| p["type"] == "image")
        .expect("inbound image event");
    assert!(media["media_path"].as_str().unwrap().starts_with("media/"));
    assert!(
        media["media_sha256"].is_string()
            && media["media_size"] == 6
            && media["mime_type"] == "image/jpeg"
    );
    assert!(
        by_event("message")
            .iter()
            .any(|p| p["direction"] == "outbound" && p["message_id"] == out.as_str())
    );
    assert!(
        by_event("device_connected")
            .iter()
            .any(|p| p["wa_number"] == "15551230001" && p["linked_at"].is_string())
    );
    assert!(
        by_event("device_qr_generated")
            .iter()
            .all(|p| p["qr"]["code"].is_string() && p["qr_expires_at"].is_string())
    );
    let receipts: Vec<_> = by_event("receipt")
        .iter()
        .map(|p| p["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(receipts, ["delivered", "read"], "in order");
    // Per-device order: the device's events arrive in the order they happened.
    let seq: Vec<_> = got
        .iter()
        .filter(|r| r["body"]["device_id"] == id.as_str() && r["answered"] == 204)
        .map(|r| r["body"]["event"].as_str().unwrap().to_owned())
        .collect();
    let pos = |e: &str| seq.iter().position(|x| x == e).unwrap();
    assert!(pos("device_qr_generated") < pos("device_connected"));
    assert!(pos("device_connected") < pos("device_logged_out"));
    assert!(pos("device_logged_out") < pos("device_destroyed"));

    // A second device for what follows.
    let (_, v) = post_device(&server, &t, "second").await;
    let dev = str_at(&v, "/data/device/device_id");
    scan(&server, &t, &dev, "15551230009").await;
    let presence = |n: u32| json!({"jid": format!("1555000{n:04}"), "presence": "available"});

    // The receiver answers 503 for a while: the same webhook-id comes again until it is taken.
    let delivered_jids = |g: &[Value]| -> HashSet<String> {
        g.iter()
            .filter(|r| r["answered"] == 204 && r["body"]["event"] == "presence")
            .filter_map(|r| r["body"]["payload"]["jid"].as_str().map(str::to_owned))
            .collect()
    };
    receiver.set("mode", "503");
    for n in 0..3 {
        call(
            &server,
            "POST",
            &format!("/sandbox/devices/{dev}/presence"),
            &t,
            Some(presence(n)),
        )
        .await;
    }
    receiver
        .wait("503 attempts", Duration::from_secs(10), |g| {
            g.iter().filter(|r| r["answered"] == 503).count() >= 2
        })
        .await;
    receiver.set("mode", "ok");
    let got = receiver
        .wait("after the 503s", Duration::from_secs(20), |g| {
            (0..3).all(|n| delivered_jids(g).contains(&format!("1555000{n:04}@s.whatsapp.net")))
        })
        .await;
    let refused: HashSet<_> = got
        .iter()
        .filter(|r| r["answered"] == 503)
        .map(|r| r["webhook_id"].as_str().unwrap().to_owned())
        .collect();
    let ok_ids = delivered_ok(&got);
    assert!(
        refused.iter().all(|id| ok_ids.contains(id)),
        "every refused delivery came again under the same webhook-id"
    );

    // The receiver is down, and the server restarts meanwhile: nothing is lost.
    receiver.stop();
    let mut expected = Vec::new();
    for n in 10..13 {
        call(
            &server,
            "POST",
            &format!("/sandbox/devices/{dev}/presence"),
            &t,
            Some(presence(n)),
        )
        .await;
        expected.push(format!("1555000{n:04}@s.whatsapp.net"));
    }
    // Session events are stored in order, each presence with its event: once the last one
    // is shown, every event is in the outbox.
    poll(
        &server,
        &t,
        &format!("/devices/{dev}/presence?jid=15550000012"),
        Duration::from_secs(30),
        |v| v["data"]["presence"]["presence"] == "available",
    )
    .await;
    assert!(server.terminate().success());
    let server = Server::start_in(&server.data_dir.clone(), &env());
    for n in 13..15 {
        wait_for(&server, &t, &dev, Duration::from_secs(10), |d| {
            d["status"] == "connected"
        })
        .await;
        call(
            &server,
            "POST",
            &format!("/sandbox/devices/{dev}/presence"),
            &t,
            Some(presence(n)),
        )
        .await;
        expected.push(format!("1555000{n:04}@s.whatsapp.net"));
    }
    let port = receiver.port;
    let receiver = Receiver::start(rdir.path(), port);
    let got = receiver
        .wait("after the outage", Duration::from_secs(30), |g| {
            let jids = delivered_jids(g);
            expected.iter().all(|e| jids.contains(e))
        })
        .await;
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in got.iter().filter(|r| r["answered"] == 204) {
        *per_id
            .entry(r["webhook_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert!(per_id.values().all(|n| *n == 1), "each event taken once");

    // Exhausted: failed, listed, replayed under the same id.
    receiver.set("mode", "500");
    call(
        &server,
        "POST",
        &format!("/sandbox/devices/{dev}/presence"),
        &t,
        Some(presence(99)),
    )
    .await;
    let v = poll(
        &server,
        &t,
        "/webhooks/deliveries?status=failed",
        Duration::from_secs(30),
        |v| !v["data"]["deliveries"][0].is_null(),
    )
    .await;
    let failed = v["data"]["deliveries"][0].clone();
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["attempts"], 7, "1 + the 6 retries of the schedule");
    assert_eq!(failed["last_status_code"], 500);
    let fid = failed["delivery_id"].as_str().unwrap().to_owned();
    receiver.set("mode", "ok");
    let (s, v) = call(
        &server,
        "POST",
        &format!("/webhooks/deliveries/{fid}/retry"),
        &t,
        None,
    )
    .await;
    assert_eq!(
        (s, v["data"]["delivery"]["status"].as_str()),
        (200, Some("pending")),
        "{v}"
    );
    receiver
        .wait("the replay", Duration::from_secs(10), |g| {
            delivered_ok(g).contains(&fid)
        })
        .await;
    let (s, v) = call(
        &server,
        "POST",
        &format!("/webhooks/deliveries/{fid}/retry"),
        &t,
        None,
    )
    .await;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("conflict")));
    let (s, v) = call(&server, "POST", "/webhooks/deliveries/nope/retry", &t, None).await;
    assert_eq!(
        (s, v["error"]["details"]["field"].as_str()),
        (400, Some("delivery_id"))
    );
}
