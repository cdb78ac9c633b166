//! The `wa-worker` binary on the data directory of a `wa-server` started with
//! `WA_WORKER=0`: it takes over a linked device's session, sends what the API accepted,
//! answers what only the session can (groups, profile, the sandbox's routes: asked through
//! the queue), and stops cleanly on SIGTERM; then those asks end in 504.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::devices::{
    app_token, call, get_ok, linked_device, sandbox_records, send_text, wait_for, wait_sent,
};
use crate::support::{BIN, Process, Server, str_at, wait_until};

const SECRET: (&str, &str) = ("WA_JWT_SECRET", "e2e-secret-e2e-secret-e2e-secret-e2e");

/// The `wa-worker` binary of this build (same target directory and profile as `wa-server`).
/// It belongs to another package, which this test target does not build: the test command
/// (`scripts/test`) builds every binary of the workspace first. Building it from here would
/// wait for the build directory's lock that the running `cargo test` holds, and build it
/// with other features than the workspace's.
fn worker_binary() -> PathBuf {
    let bin = Path::new(BIN)
        .parent()
        .expect("the binary's directory")
        .join("wa-worker");
    assert!(
        bin.exists(),
        "{} is missing: build the workspace's binaries first (cargo build --workspace --bins; \
         scripts/test does it)",
        bin.display()
    );
    bin
}

/// A running `wa-worker`, killed when dropped; its log lines are kept.
pub struct WorkerProcess {
    process: Process,
    logs: Arc<Mutex<Vec<String>>>,
}

impl WorkerProcess {
    fn start(data_dir: &Path) -> WorkerProcess {
        WorkerProcess::start_with(data_dir, &[])
    }

    /// A worker on `data_dir` with `env` besides the sandbox's settings.
    pub fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> WorkerProcess {
        let mut child = Command::new(worker_binary())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("WA_DATA_DIR", data_dir)
            .env("WA_PROVIDER", "sandbox")
            .env("WA_SEND_RATE", "0")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the wa-worker binary starts");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        WorkerProcess {
            process: Process::new(child),
            logs,
        }
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        self.process.kill9();
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.process
            .terminate(Duration::from_secs(30))
            .unwrap_or_else(|| panic!("wa-worker did not stop after SIGTERM:\n{}", self.logs()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wa_worker_serves_a_server_without_its_worker() {
    // A device linked by a server with its own worker, which then stops.
    let mut first = Server::start(&[SECRET, ("WA_PROVIDER", "sandbox")]);
    let t = app_token(&first).await;
    let id = linked_device(&first, &t, "handed over").await;
    assert!(first.terminate().success());

    let api = Server::start_in(
        &first.data_dir,
        &[
            SECRET,
            ("WA_PROVIDER", "sandbox"),
            ("WA_WORKER", "0"),
            ("WA_QUERY_WAIT_MS", "5000"),
        ],
    );
    let mut worker = WorkerProcess::start(&first.data_dir);
    // The worker resumes the session it finds linked: the device shows `connecting` from
    // the restore on, so `connected` counts only once the restore has begun (before it,
    // the status is the one the first server left).
    wait_until(
        "the session was never resumed",
        Duration::from_secs(30),
        || worker.logs().contains("resuming session"),
        || worker.logs(),
    )
    .await;
    wait_for(&api, &t, &id, Duration::from_secs(30), |d| {
        d["status"] == "connected"
    })
    .await;
    // What only the session answers is asked of wa-worker through the queue.
    let (s, v) = call(&api, "GET", &format!("/devices/{id}/groups"), &t, None).await;
    assert_eq!(s, 200, "{v}\n{}", worker.logs());
    assert!(v["data"]["count"].as_u64().is_some_and(|n| n >= 2), "{v}");
    let v = get_ok(
        &api,
        &t,
        &format!("/devices/{id}/profile?jid=%2B15550001111"),
    )
    .await;
    assert_eq!(v["data"]["profile"]["phone_number"], "15550001111");
    // Checking numbers, answered by wa-worker's session; a message later arriving from a
    // LID it handed out carries the sender's number.
    let (s, v) = call(
        &api,
        "POST",
        &format!("/devices/{id}/contacts/check"),
        &t,
        Some(json!({"phone_numbers": ["+15551230002", "15550001234"]})),
    )
    .await;
    assert_eq!(s, 200, "{v}\n{}", worker.logs());
    let contacts = &v["data"]["contacts"];
    assert_eq!(contacts[0]["jid"], "15551230002@s.whatsapp.net", "{v}");
    assert_eq!(contacts[1]["on_whatsapp"], false, "{v}");
    let lid = str_at(&v, "/data/contacts/0/lid");
    let (s, v) = call(
        &api,
        "POST",
        &format!("/sandbox/devices/{id}/inbound"),
        &t,
        Some(json!({"from": lid, "text": "from a checked LID"})),
    )
    .await;
    assert_eq!(s, 200, "{v}\n{}", worker.logs());
    let mid = str_at(&v, "/data/message/message_id");
    let v = get_ok(&api, &t, &format!("/devices/{id}/messages/{mid}")).await;
    assert_eq!(
        (
            &v["data"]["message"]["from"],
            &v["data"]["message"]["from_phone"]
        ),
        (&json!(lid), &json!("15551230002")),
        "{v}"
    );
    // Typing in a chat and the device's own presence, carried out by wa-worker's session.
    let typing = format!("/devices/{id}/chats/15550001111/presence");
    let (s, v) = call(
        &api,
        "POST",
        &typing,
        &t,
        Some(json!({"state": "composing"})),
    )
    .await;
    assert_eq!(s, 204, "{v}\n{}", worker.logs());
    let own = format!("/devices/{id}/presence");
    let (s, v) = call(
        &api,
        "PUT",
        &own,
        &t,
        Some(json!({"presence": "available"})),
    )
    .await;
    assert_eq!(s, 204, "{v}");
    let (s, v) = send_text(
        &api,
        &t,
        &id,
        "15550001111",
        "from the API, sent by wa-worker",
    )
    .await;
    // Nobody in the API process is woken by the send: it answers once its wait is over.
    assert!(s == 200 || s == 202, "{s}: {v}");
    let mid = str_at(&v, "/data/message/message_id");
    wait_sent(&api, &t, &id, &mid, Duration::from_secs(30)).await;
    // WhatsApp (the sandbox, in the worker's process) received it once.
    let log = std::fs::read_to_string(
        first
            .data_dir
            .join("sandbox/sent")
            .join(format!("{id}.jsonl")),
    )
    .unwrap();
    assert_eq!(log.lines().filter(|l| l.contains(&mid)).count(), 1, "{log}");
    let sent = format!("/sandbox/devices/{id}/sent");
    let records = sandbox_records(&api, &t, &id, "sent").await;
    assert!(
        records.iter().any(|r| r["message_id"] == mid.as_str()),
        "{records:?}"
    );
    let actions: Vec<_> = records
        .iter()
        .filter(|r| r["message_id"] == "")
        .map(|r| {
            (
                r["type"].clone(),
                r["to"].clone(),
                r["state"].clone(),
                r["presence"].clone(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            (
                json!("chat_presence"),
                json!("15550001111@s.whatsapp.net"),
                json!("composing"),
                Value::Null
            ),
            (
                json!("presence"),
                json!(""),
                Value::Null,
                json!("available")
            ),
        ],
        "{records:?}"
    );
    // The sessions, asked of wa-worker too: the first server's, then wa-worker's under the
    // next epoch.
    let sessions = sandbox_records(&api, &t, &id, "sessions").await;
    let last = sessions.last().unwrap();
    assert!(sessions.len() >= 2, "{sessions:?}");
    assert!(last["closed_at"].is_null(), "{sessions:?}");
    assert!(
        last["epoch"].as_u64() > sessions[0]["epoch"].as_u64(),
        "{sessions:?}"
    );
    assert_ne!(last["worker_id"], sessions[0]["worker_id"], "{sessions:?}");
    assert!(worker.terminate().success(), "{}", worker.logs());
    // No worker: the ask waits WA_QUERY_WAIT_MS, then 504.
    let (s, v) = call(&api, "GET", &sent, &t, None).await;
    assert_eq!(s, 504, "{v}");
    assert_eq!(v["error"]["code"], "upstream_timeout", "{v}");
    assert!(
        worker.logs().contains("worker stopped"),
        "{}",
        worker.logs()
    );
    assert!(!worker.logs().contains("panicked"), "{}", worker.logs());
}
