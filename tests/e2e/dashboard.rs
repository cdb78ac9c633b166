//! The web dashboard in headless Chromium: `functions/local/tests/dashboard/run.mjs`
//! (playwright-core) signs in with an App token, links a device through the sandbox, sends a
//! message, shows an error and replays a failed webhook delivery, on the real binary.
//!
//! Needs node, Chromium (`WA_TEST_CHROMIUM`, default `/usr/bin/chromium`) and the harness's
//! `node_modules`, all of which `bash scripts/test` installs. Screenshots of every step go to
//! `target/dashboard-screenshots/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::devices::create_app;
use crate::support::Server;

const SECRET: &str = "e2e-secret-e2e-secret-e2e-secret-e2e";

fn harness_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard")
}

/// `target/dashboard-screenshots`, emptied.
fn screenshot_dir() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is inside the target directory")
        .to_path_buf();
    let dir = target.join("dashboard-screenshots");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What the harness needs, or a message saying how to get it.
fn prerequisites() -> Result<PathBuf, String> {
    let harness = harness_dir();
    if !harness
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return Err(format!(
            "{}/node_modules is missing: run `bash scripts/test` (it runs \
             `npm ci --prefix functions/local/tests/dashboard`), or that npm command yourself",
            harness.display()
        ));
    }
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Err("`node` (20 or newer) is not on PATH; the dashboard test runs with it".into());
    }
    let chromium = PathBuf::from(
        std::env::var("WA_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
    );
    if !chromium.exists() {
        return Err(format!(
            "Chromium is missing at {}: `apt-get install chromium` (bash scripts/test does it), \
             or point WA_TEST_CHROMIUM at a Chromium binary",
            chromium.display()
        ));
    }
    Ok(chromium)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium() {
    let chromium = match prerequisites() {
        Ok(c) => c,
        Err(msg) => panic!("dashboard e2e cannot run: {msg}"),
    };
    // Deliveries to a closed loopback port fail at once; a short schedule makes them `failed`
    // within a second, so the page has a failed delivery to replay.
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let server = Server::start(&[
        ("WA_JWT_SECRET", SECRET),
        ("WA_PROVIDER", "sandbox"),
        ("WA_SEND_RATE", "0"),
        ("WA_ALLOW_PRIVATE_URLS", "1"),
        ("WA_WEBHOOK_RETRY_SCHEDULE", "50ms"),
        ("WA_WEBHOOK_TIMEOUT_SECS", "2"),
    ]);
    let (ok, jwt, err) = server.cli(
        &["token", "--tenant", "dashboard"],
        &[("WA_JWT_SECRET", SECRET)],
    );
    assert!(ok, "{err}");
    let body = json!({"name": "Dashboard e2e", "webhook_url": format!("http://127.0.0.1:{closed_port}/hook")});
    let app = create_app(&server, &jwt, body).await;
    let token = app["app_token"].as_str().unwrap().to_owned();

    let shots = screenshot_dir();
    let mut cmd = Command::new("node");
    cmd.current_dir(harness_dir())
        .arg("run.mjs")
        .arg(&server.base)
        .arg(&token)
        .arg(&shots)
        .env("WA_TEST_CHROMIUM", &chromium);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("node starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the dashboard test failed ({}); screenshots in {}\n--- node stdout\n{stdout}\n--- node stderr\n{stderr}\n--- server logs\n{}",
        out.status,
        shots.display(),
        server.logs()
    );
    let pngs = std::fs::read_dir(&shots)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "png"))
        })
        .count();
    assert!(
        pngs >= 8,
        "a screenshot per step, found {pngs} in {}",
        shots.display()
    );
}
